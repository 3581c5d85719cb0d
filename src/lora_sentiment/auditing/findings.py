"""The audit's findings as rows of issues.csv: label issues (from the problem type's `label_issues`), duplicates
within the training split whose labels conflict, and training texts that leak into the evaluation split."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.duplicates import Pair, duplicate_pairs, groups_of, leak_pairs
from ..problems.confident import LabelIssues
from ..problems.space import LabelSpace

COLUMNS = ("row", "kind", "score", "given", "suggested", "detail", "text")


@dataclass
class Finding:
    position: int  # index in the audited training split
    kind: str  # label | duplicate | leak
    score: float  # higher first within a kind
    suggested: Any  # encoded like the labels; None: no label to suggest (the row should go)
    detail: str


@dataclass
class Duplicates:
    pairs: list[Pair]
    groups: list[list[int]]
    conflicting: list[list[int]]  # groups whose labels differ
    findings: list[Finding] = field(default_factory=list)


def label_findings(issues: LabelIssues, space: LabelSpace) -> list[Finding]:
    rows = np.flatnonzero(issues.flagged)
    detail = space.problem.issue_detail
    return [
        Finding(int(i), "label", float(issues.score[i]), issues.suggested[i], detail(float(issues.score[i])))
        for i in rows[np.argsort(-issues.score[rows], kind="stable")]
    ]


def duplicate_findings(
    texts: list[str], labels: np.ndarray, rows: list[int], space: LabelSpace, threshold: float
) -> Duplicates:
    """Groups of equal or near-equal training texts; in a group whose labels differ, the rows off the group's most
    common label are flagged with it as the suggestion (on a tie every row is, with none)."""
    pairs = duplicate_pairs(texts, threshold)
    groups = groups_of(pairs, len(texts))
    problem = space.problem
    found = Duplicates(pairs, groups, [])
    for group in groups:
        keys = [problem.label_key(labels[i]) for i in group]
        if len(set(keys)) == 1:
            continue
        found.conflicting.append(group)
        ranked = Counter(keys).most_common()
        majority = ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else None
        source = next((i for i, key in zip(group, keys) if key == majority), None)
        for i, key in zip(group, keys):
            if majority is not None and key == majority:
                continue
            others = ", ".join(f"{rows[j]} ({problem.label_text(labels[j], space)})" for j in group if j != i)
            similarity = _similarity(pairs, i)
            suggestion = labels[source] if source is not None else None
            found.findings.append(Finding(i, "duplicate", similarity, suggestion, f"{_how(similarity)} row {others}"))
    return found


def _how(similarity: float) -> str:
    return "same text as" if similarity >= 1 else f"near-duplicate (Jaccard {similarity:.2f}) of"


def _similarity(pairs: list[Pair], i: int) -> float:
    return max((p.similarity for p in pairs if i in (p.first, p.second)), default=1.0)


def leak_findings(
    train_texts: list[str], eval_texts: list[str], eval_rows: list[int], threshold: float
) -> tuple[list[Pair], list[Finding]]:
    """Training rows whose text is (nearly) one of the evaluation split's: they inflate every score measured on it."""
    pairs = leak_pairs(train_texts, eval_texts, threshold)
    best: dict[int, Pair] = {}
    for pair in pairs:
        if pair.first not in best or pair.similarity > best[pair.first].similarity:
            best[pair.first] = pair
    findings = [
        Finding(i, "leak", p.similarity, None, f"{_how(p.similarity)} evaluation row {eval_rows[p.second]}")
        for i, p in sorted(best.items(), key=lambda item: -item[1].similarity)
    ]
    return pairs, findings


def issue_rows(findings: list[Finding], data: Any, space: LabelSpace) -> list[dict[str, Any]]:
    """issues.csv's rows: label issues first, then duplicates, then leaks; each kind by score."""
    texts, labels, rows = data["text"], np.asarray(data["label"]), data["row"]
    problem = space.problem
    order = {"label": 0, "duplicate": 1, "leak": 2}
    return [
        {"row": int(rows[f.position]), "kind": f.kind, "score": round(float(f.score), 4),
         "given": problem.label_text(labels[f.position], space),
         "suggested": "" if f.suggested is None else problem.label_text(f.suggested, space),
         "detail": f.detail, "text": texts[f.position]}
        for f in sorted(findings, key=lambda f: (order[f.kind], -f.score))
    ]  # fmt: skip
