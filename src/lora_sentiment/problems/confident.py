"""Which given labels out-of-sample scores contradict: confident learning (Northcutt, Jiang & Chuang, "Confident
Learning: Estimating Uncertainty in Dataset Labels", JAIR 70, 2021), written from the paper, and the residual rule
for numbers. (cleanlab implements the same paper but is AGPL-licensed; nothing here comes from it.)

Confident learning, in the paper's steps: each class j gets a threshold t_j, the mean probability of j over the texts
labelled j (its self-confidence); a text counts towards the confident joint C[given, j] for the likeliest class j
whose probability reaches t_j. C calibrated to the class counts and normalised is the estimated joint Q of given and
true labels, whose rows give each class's noise rate. Flagged ("C+NR", the paper's combination of the confident
joint's off-diagonal and pruning by noise rate): texts that the confident joint places off the diagonal and that
are among the n * Q[i, j] texts given i with the largest margin p_j - p_i, for every pair i != j."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A residual this many robust standard deviations (1.4826 x the median absolute deviation) from the median is
# "far outside" the cross-fitted residuals: Iglewicz & Hoaglin's cut-off for the modified z-score.
OUTLIER_Z = 3.5


@dataclass
class LabelIssues:
    """What confident learning (or the residual rule) says of each text's given label."""

    flagged: np.ndarray  # [n] bool: the given label is likely wrong
    score: np.ndarray  # [n] how likely wrong, higher first (1 - self-confidence; regression: |robust z|)
    suggested: list[Any]  # [n] the label the scores point to, encoded like the given labels
    summary: dict[str, Any] = field(default_factory=dict)  # per class / tag: texts, flagged, estimated noise rate


@dataclass
class ConfidentJoint:
    thresholds: np.ndarray  # [K] per-class mean self-confidence
    joint: np.ndarray  # [K, K] counts: given label (rows) x confidently-true label (columns)
    true_label: np.ndarray  # [n] the confident class per text, -1 where no class reached its threshold
    estimated: np.ndarray  # [K, K] Q: the calibrated joint, sums to 1


def confident_joint(probs: np.ndarray, labels: np.ndarray, floor: float = 0.0) -> ConfidentJoint:
    """`floor`: the least probability at which a text counts as a class other than its given one (tag_issues: 0.5,
    so that a tag's confident answer against the given one is also the likelier); its given class keeps the
    paper's threshold, so the rates of the given labels found right are the paper's."""
    n, k = probs.shape
    labels = labels.astype(int)
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=probs[np.arange(n), labels], minlength=k)
    # A class no text is given has no self-confidence: nothing can be confidently counted as it.
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    above = probs >= thresholds[None, :] - 1e-12
    if floor > 0:
        given = np.zeros_like(above)
        given[np.arange(n), labels] = True
        above &= given | (probs >= floor - 1e-12)
    true_label = np.where(above.any(axis=1), np.where(above, probs, -np.inf).argmax(axis=1), -1)
    joint = np.zeros((k, k), dtype=np.int64)
    counted = true_label >= 0
    np.add.at(joint, (labels[counted], true_label[counted]), 1)
    return ConfidentJoint(thresholds, joint, true_label, calibrated_joint(joint, counts))


def calibrated_joint(joint: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each row scaled to its class's count (the paper's eq. 2), then the whole normalised to sum to 1."""
    rows = joint.sum(axis=1, keepdims=True).astype(float)
    scaled = np.where(rows > 0, joint / np.maximum(rows, 1) * counts[:, None], 0.0)
    total = scaled.sum()
    return scaled / total if total > 0 else scaled


def noise_rates(estimated: np.ndarray) -> np.ndarray:
    """[K] the share of texts given each class whose true class is another (nan for a class never given)."""
    rows = estimated.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, 1 - np.diag(estimated) / rows, np.nan)


def prune_by_noise_rate(probs: np.ndarray, labels: np.ndarray, estimated: np.ndarray) -> np.ndarray:
    """[n] bool: for each pair given i / true j, the round(n * Q[i, j]) texts given i with the largest p_j - p_i."""
    n, k = probs.shape
    flagged = np.zeros(n, dtype=bool)
    for i in range(k):
        rows = np.flatnonzero(labels == i)
        for j in range(k):
            m = int(round(n * estimated[i, j]))
            if i == j or m == 0 or len(rows) == 0:
                continue
            margin = probs[rows, j] - probs[rows, i]
            flagged[rows[np.argsort(-margin, kind="stable")[:m]]] = True
    return flagged


def find_label_issues(probs: np.ndarray, labels: np.ndarray, floor: float = 0.0) -> tuple[np.ndarray, ConfidentJoint]:
    """[n] flagged by C+NR, and the confident joint it rests on (`floor`: as confident_joint's)."""
    labels = labels.astype(int)
    cj = confident_joint(probs, labels, floor)
    off_diagonal = (cj.true_label >= 0) & (cj.true_label != labels)
    return off_diagonal & prune_by_noise_rate(probs, labels, cj.estimated), cj


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return probs[np.arange(len(labels)), labels.astype(int)]


def normalized_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p_given - the largest other probability: below 0 where another class is likelier."""
    given = self_confidence(probs, labels)
    others = probs.copy()
    others[np.arange(len(labels)), labels.astype(int)] = -np.inf
    return given - others.max(axis=1)


def class_issues(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> LabelIssues:
    """Single-label: C+NR flags, ranked by self-confidence; the suggestion is the confident (else likeliest) class."""
    labels = labels.astype(int)
    flagged, cj = find_label_issues(probs, labels)
    suggested = np.where(cj.true_label >= 0, cj.true_label, probs.argmax(axis=1))
    rates = noise_rates(cj.estimated)
    counts = np.bincount(labels, minlength=len(names))
    per_class = {
        name: {"texts": int(counts[i]), "flagged": int((flagged & (labels == i)).sum()),
               "noise_rate": None if np.isnan(rates[i]) else round(float(rates[i]), 4),
               "threshold": None if np.isinf(cj.thresholds[i]) else round(float(cj.thresholds[i]), 4)}
        for i, name in enumerate(names)
    }  # fmt: skip
    summary = {
        "per_class": per_class,
        "confident_joint": {"given": names, "true": names, "counts": cj.joint.tolist()},
        "estimated_joint": np.round(cj.estimated, 5).tolist(),
        "estimated_noise_rate": round(float(1 - np.trace(cj.estimated)), 4),
    }
    return LabelIssues(flagged, 1 - self_confidence(probs, labels), suggested.tolist(), summary)


# A tag is a two-class problem whose "present" class is rare: the mean probability of the texts given it (the
# paper's threshold) can be a few per cent where the scorer barely knows the tag, and every text not given it that
# reaches that much then counts as "present" though the scorer calls it absent (GoEmotions, 2,000 comments, TF-IDF:
# 877 texts flagged as missing `grief`, given on 4). Counting a text as the answer other than its given one only
# from 0.5 counts only what the scorer finds likelier than not. Measured on 2,000 GoEmotions comments with one tag
# swapped on 10 % of them (benchmarks/audit_tag_noise.py): see docs/audit.md.
TAG_FLOOR = 0.5


def tag_issues(probs: np.ndarray, labels: np.ndarray, names: list[str], floor: float = TAG_FLOOR) -> LabelIssues:
    """Multi-label: each tag a two-class problem (absent / present) of its own, a text counted as the answer other
    than its given one only from `floor`; a text is flagged where any of its tags is, and the suggestion flips the
    flagged tags."""
    labels = (labels > 0.5).astype(int)
    flags = np.zeros_like(labels, dtype=bool)
    wrongness = np.zeros(labels.shape, dtype=float)
    per_tag = {}
    wrong_share = 0.0
    for t, name in enumerate(names):
        pair = np.stack([1 - probs[:, t], probs[:, t]], axis=1)
        flags[:, t], cj = find_label_issues(pair, labels[:, t], floor)
        wrongness[:, t] = 1 - self_confidence(pair, labels[:, t])
        rates = noise_rates(cj.estimated)
        wrong_share += float(1 - np.trace(cj.estimated)) / len(names)
        per_tag[name] = {
            "texts": int(labels[:, t].sum()),
            "flagged_missing": int((flags[:, t] & (labels[:, t] == 0)).sum()),  # likely present, not given
            "flagged_extra": int((flags[:, t] & (labels[:, t] == 1)).sum()),  # given, likely absent
            "noise_rate_given": None if np.isnan(rates[1]) else round(float(rates[1]), 4),
            "noise_rate_not_given": None if np.isnan(rates[0]) else round(float(rates[0]), 4),
        }
    suggested = np.where(flags, 1 - labels, labels).astype(np.float32)
    score = np.where(flags, wrongness, 0).max(axis=1)
    score = np.where(flags.any(axis=1), score, wrongness.max(axis=1) * 0.5)  # unflagged rows rank below flagged
    # The share of (text, tag) decisions, present or absent, estimated wrong.
    summary = {"per_tag": per_tag, "estimated_noise_rate": round(wrong_share, 4)}
    return LabelIssues(flags.any(axis=1), score, list(suggested), summary)


def residual_issues(
    predicted: np.ndarray, values: np.ndarray, z: float = OUTLIER_Z, banded: bool = True
) -> LabelIssues:
    """Regression: given values whose cross-fitted residual lies more than `z` robust standard deviations from the
    median residual of the texts predicted alike (the equal-mass bands of the predicted value that regression
    intervals use; all texts as one where they make fewer than two); the suggestion is the out-of-sample
    prediction. One spread for all texts flagged nothing on IMDB ratings with 10 % of them flipped to the other
    side: a bounded, two-humped scale leaves the middle predictions' residuals wide (docs/audit.md). `banded`
    False: one spread for all (the rule until 2026-12-06, kept for the benchmark that compares them)."""
    from .calibration import band_of, prediction_bands

    residual = values - predicted
    edges = prediction_bands(predicted) if banded else None
    band = band_of(edges, predicted) if edges is not None else np.zeros(len(residual), dtype=np.int64)
    bounds = [None, *(round(float(e), 4) for e in (edges if edges is not None else [])), None]
    robust_z = np.zeros_like(residual, dtype=float)
    bands = []
    for b in range(len(bounds) - 1):
        rows = band == b
        centre = float(np.median(residual[rows])) if rows.any() else 0.0
        spread = 1.4826 * float(np.median(np.abs(residual[rows] - centre))) if rows.any() else 0.0
        if spread > 0:
            robust_z[rows] = np.abs(residual[rows] - centre) / spread
        bands.append({"from": bounds[b], "to": bounds[b + 1], "texts": int(rows.sum()), "median": round(centre, 4),
                      "robust_sd": round(spread, 4), "flagged": int((robust_z[rows] > z).sum())})  # fmt: skip
    flagged = robust_z > z
    summary = {"residuals": {"cutoff_z": z, "bands": bands}, "estimated_noise_rate": round(float(flagged.mean()), 4)}
    return LabelIssues(flagged, robust_z, [float(p) for p in predicted], summary)
