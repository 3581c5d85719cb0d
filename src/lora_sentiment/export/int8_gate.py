"""int8 by default only where it keeps a run's answers. On a CPU with int8 dot-product units, `--engine auto`
also quantizes the run's compiled OpenVINO model (NNCF, calibrated on training texts, every linear layer) and lets
both predict texts of the run's evaluation split. The int8 model then answers with a
second look: a text whose int8 scores lie within the band of a decision boundary that int8's own changes could
cross (RECHECK_MARGIN times the largest change it made on those texts) is predicted again by the f32 model, so
int8 moves no answer it was seen able to move. It is used from then on when, with those re-checks, its answers
equal the f32 model's on at least AGREEMENT of the texts, its headline score is no worse by more than SCORE_DROP
and at most MAX_RECHECK of them needed the f32 model; otherwise the f32 model stays. The verdict is kept beside
the compiled model (`int8.json`), so a run pays the check once per runtime and retraining checks again.

The check costs about 40 s (MiniLM at 256 tokens) and int8 saves a few milliseconds a text, so a first `predict`
does not pay for it: it runs in the call that brings the texts predicted by the compiled model (counted in
`predicted.json`) to REPAY_TEXTS, and a job that large on its own checks at once.

Why a check per run and not a rule: int8 agreed with f32 on 97.6-98.2 % of a weak run's labels and 99.1-99.5 % of
a well-trained one's, and refused a multi-label and a regression run that bf16 keeps
(docs/benchmarks/cpu-classes.md); only the run's own texts can tell. Why the second look: on a MiniLM IMDB run that
int8 alone failed (98.75 % of 400 texts equal), its probabilities moved by at most 0.05, so every label it moved
lay within 0.1 of the boundary; re-checking the texts within twice that (6-7 % of them) made all 1,000 validation
answers equal f32's. Values (regression) have no boundary: there int8 must agree on its own. Why every layer:
with the second look, keeping the output projections in float (0.15 % of labels moved instead of 0.8 % on that
run) bought nothing the look does not, for a loop 1.1-1.3x slower (23.2 s against 17.9 s for 2,000 reviews alone,
24.6 s against 22.1 s with the look, the avx512-bf16 class), though every layer in int8 makes the look re-check
12 % of the texts instead of 7 %."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import claimed, staged_file
from ..data.quiet import quiet_datasets
from ..errors import UserError, first_line
from ..runs.run import Run
from .quiet import quiet_compile

AGREEMENT = 0.995  # what a default must keep (the bar for any engine against fp32)
SCORE_DROP = 0.005  # half a point of accuracy / F1 / Spearman
CHECK_TEXTS = 400  # 2 differing answers allowed; measured: 8 s of int8 and 15 s of f32 on the avx512-bf16 class
# The band re-checked is this many times the largest change int8 made on the check's texts: room for texts it
# moves more than any of those.
RECHECK_MARGIN = 2.0
# int8's loop ran 1.4-1.7x the bf16 model's (avx512-bf16 class) and about 2x f32's (avx512-vnni): past a fifth of
# the texts predicted twice it saves little.
MAX_RECHECK = 0.2
RULE = 2  # verdicts of an earlier rule are checked again (1: int8 on its own, no second look)
# Which linear layers go int8, tried in this order until one is kept (--int8-scope's values). Every layer is the
# faster (the loop with the look 1.1x); the output projections in float move less, so a weaker run's band is
# narrower: the suite's skewed-class MiniLM run needed the look on 24 % of its texts with every layer (refused),
# 8 % with them in float (kept). Values get no look, and every layer moved them more (68 % within the tolerance
# against 97 % on the suite's regression run), so regression tries only the second.
SCOPES = ("all", "no-output-projections")
CALIBRATION_TEXTS = 128  # 16 s to quantize MiniLM at 256 tokens; 256 texts took 26-28 s and agreed no better
# Texts the f32 compiled model predicts before the check is paid (ski rental: rent until the rent reaches the
# price). Measured at 256 tokens: the check 40-43 s, int8 4-8 ms a review faster than OpenVINO bf16 on the
# avx512-bf16 class and 17 ms faster than OpenVINO f32 on the avx512-vnni stand-in: repaid after 2,400-10,000.
REPAY_TEXTS = 4000
VERDICT_FILE = "int8.json"
COUNT_FILE = "predicted.json"
INT8_SUFFIX = "-int8"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Int8Verdict:
    kept: bool
    reason: str  # why not, or ""
    texts: int = 0  # evaluation texts both models predicted
    agreement: float | None = None
    metric: str | None = None
    f32: float | None = None
    int8: float | None = None
    largest_change: float | None = None  # of a probability (or value) by int8 alone, over the texts checked
    seconds: float = 0.0
    band: float | None = None  # texts this near a boundary are re-checked by the f32 model (None: no re-check)
    rechecked: float | None = None  # the share of the texts checked that were
    rule: int = RULE  # the rule it was decided by (a file without one: 1)
    scope: str | None = None  # the int8 model's (the last tried, where none was kept)

    def describe(self) -> str:
        if self.agreement is None:
            return f"note: int8 not used ({self.reason}); predicting with the unquantized model"
        same = f"answers equal to f32 on {self.agreement:.1%} of {self.texts} evaluation texts"
        scores = f", {self.metric} {self.int8:.3f} against {self.f32:.3f}" if self.f32 is not None else ""
        second = (f"; the {self.rechecked:.0%} nearest a boundary predicted again by the unquantized model"
                  if self.band is not None and self.rechecked is not None else "")  # fmt: skip
        if self.kept:
            return f"note: int8 kept for this run ({same}{scores}{second}; checked in {self.seconds:.0f} s)"
        return f"note: int8 not used ({same}{scores}: {self.reason}); predicting with the unquantized model"


def int8_or_f32(run: Run, f32: Path, log: Log, warn: Log, check: bool = True, texts: int | None = None) -> Path:
    """The run's int8 compiled model where its check passed, else `f32`. Never checked: checked now if `check` and
    the texts predicted so far plus `texts` (this job's, where known) reach REPAY_TEXTS."""
    from .folder import check_export, read_recheck

    int8 = f32.with_name(f32.name + INT8_SUFFIX)
    verdict = _read_verdict(f32 / VERDICT_FILE)
    if verdict is not None and verdict.kept:
        try:
            check_export(int8)
            if verdict.band is not None:
                read_recheck(int8)  # its f32 model and band, or the one-line error
            return int8
        except UserError as exc:
            warn(f"note: the int8 model in {int8} is damaged ({first_line(exc)}); checking int8 again")
            verdict = None
    if verdict is None and not check:
        return f32
    # A verdict of an earlier rule was paid for once: checked again at once (counting stopped with it).
    so_far = REPAY_TEXTS if verdict is None and (f32 / VERDICT_FILE).is_file() else predicted(f32)
    if verdict is None and so_far + (texts or 0) < REPAY_TEXTS:
        log(f"note: predicting with the unquantized model; int8 is checked once this run has predicted "
            f"{REPAY_TEXTS:,} texts ({so_far:,} so far)")  # fmt: skip
        return f32
    if verdict is None:
        seen = _file_bytes(f32 / VERDICT_FILE)  # none, or one whose int8 model is damaged (above)
        with claimed(int8, "the int8 model", wait=waiting_note("checking int8 for this run", log)):
            if _file_bytes(f32 / VERDICT_FILE) != seen:  # given by the job this one waited for
                verdict = _read_verdict(f32 / VERDICT_FILE)
            if verdict is None:
                log(f"note: checking once whether int8 keeps this run's answers (on up to {CHECK_TEXTS} evaluation "
                    "texts)...")  # fmt: skip
                verdict = _decide(run, f32, int8)
                with staged_file(f32 / VERDICT_FILE) as out:
                    json.dump(asdict(verdict), out, indent=2)
                log(verdict.describe())
    return int8 if verdict.kept else f32


def _file_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def waiting_note(work: str, log: Log) -> Callable[[str], None]:
    """What a job says while another process does `work` that it would otherwise do too (atomic.claimed's wait)."""
    return lambda holder: log(f"note: another process{f' ({holder})' if holder else ''} is {work}; waiting for it")


def predicted(f32: Path) -> int:
    """Texts the f32 compiled model at `f32` has predicted in jobs that counted them (count_predicted)."""
    return read_count(f32 / COUNT_FILE)


def read_count(path: Path) -> int:
    """The texts counted in `path` (0 where it is missing or unreadable: counting starts again)."""
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["texts"])
    except (OSError, ValueError, TypeError, KeyError):
        return 0


def _read_verdict(path: Path) -> Int8Verdict | None:
    try:
        verdict = Int8Verdict(**{"rule": 1, **json.loads(path.read_text(encoding="utf-8"))})
    except (OSError, ValueError, TypeError):
        return None
    return verdict if verdict.rule == RULE else None


def _decide(run: Run, f32: Path, int8: Path) -> Int8Verdict:
    started = time.perf_counter()
    try:
        with quiet_datasets():
            texts, labels = check_rows(run)
    except Exception as exc:  # the data is gone, moved or offline: no check, so no int8
        return Int8Verdict(False, f"the run's evaluation data could not be read: {first_line(exc)}")
    from .engines.openvino import quantize_folder
    from .folder import RECHECK_FILE

    reference = reference_scores(f32, texts)  # once, whatever the scopes tried
    for scope in SCOPES if run.space.problem.has_boundary else SCOPES[1:]:
        with quiet_compile():
            quantize_folder(f32, int8, run, CALIBRATION_TEXTS, scope, (VERDICT_FILE, COUNT_FILE))
        verdict = compare(f32, int8, texts, labels, reference)
        if verdict.kept:
            break
    if not verdict.kept:
        shutil.rmtree(int8, ignore_errors=True)
    elif verdict.band is not None:
        with staged_file(int8 / RECHECK_FILE) as out:
            json.dump({"band": verdict.band, "model": f32.name}, out, indent=2)
    return Int8Verdict(**{**asdict(verdict), "seconds": time.perf_counter() - started, "scope": scope})


def check_rows(run: Run, n: int = CHECK_TEXTS, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """A seeded sample of the run's evaluation split, as training drew it: texts and encoded targets."""
    from ..data.splits import load_eval_split

    held_out = load_eval_split(run.config, run.space, log=lambda _: None)
    rows = np.random.default_rng(seed).permutation(len(held_out))[:n]
    picked = held_out.select(rows)
    return list(picked["text"]), np.asarray(picked["label"])


def reference_scores(f32: Path, texts: list[str]) -> np.ndarray:
    """The compiled model at `f32` on `texts` at fp32: the reference a default must keep to."""
    from .folder import ExportedClassifier

    return _in_chunks(ExportedClassifier.open(f32, precision="fp32"), texts)


def compare(f32: Path, int8: Path, texts: list[str], labels: np.ndarray, ours: np.ndarray) -> Int8Verdict:
    """The int8 model against the f32 one at fp32 (`ours`: its scores on `texts`, reference_scores); then the int8
    model's answers near a boundary (within RECHECK_MARGIN times the largest change it made here) replaced by the
    f32 model's as it predicts by default (bf16 where the CPU has it), as the int8 model will answer."""
    from .folder import ExportedClassifier

    candidate = ExportedClassifier.open(int8)
    theirs = _in_chunks(candidate, texts)
    space = candidate.space
    largest = _largest_change(ours, theirs)
    band = RECHECK_MARGIN * largest
    near = space.problem.near_boundary(space, theirs, band)
    if near is None:
        return scored(space, labels, ours, theirs)
    answered = theirs.copy()
    if near.any():
        unquantized = ExportedClassifier.open(f32)
        answered[near] = unquantized.predict_scores([texts[i] for i in np.flatnonzero(near)])
    return scored(space, labels, ours, answered, SecondLook(largest, band, float(near.mean())))


def _in_chunks(model: Any, texts: list[str], chunk: int = 64) -> np.ndarray:
    return np.concatenate([model.predict_scores(texts[start : start + chunk]) for start in range(0, len(texts), chunk)])


@dataclass(frozen=True)
class SecondLook:
    """How the int8 answers scored were re-checked: int8's largest change on its own, the band around a boundary
    whose texts the unquantized model predicted again, and the share of the texts that were."""

    largest_change: float
    band: float
    rechecked: float


def scored(space: Any, labels: np.ndarray, ours: np.ndarray, theirs: np.ndarray,
           second: SecondLook | None = None) -> Int8Verdict:  # fmt: skip
    """The verdict on f32 scores `ours` and int8 scores `theirs` (re-checked as `second` says) of the same texts,
    whose targets are `labels`."""
    problem = space.problem
    agreement = float(problem.same_answers(space, ours, theirs, labels).mean())
    metric = problem.headline_metrics(problem.support(labels))[0]
    f32 = float(problem.evaluate(space, labels, ours, detailed=False)[metric])
    int8 = float(problem.evaluate(space, labels, theirs, detailed=False)[metric])
    worse = (int8 - f32) if metric in problem.lower_is_better else (f32 - int8)
    reasons = [_too_few_equal()] if agreement < AGREEMENT - 1e-9 else []
    reasons += [f"{metric} {worse:.3f} worse, over the {SCORE_DROP} allowed"] if worse > SCORE_DROP + 1e-9 else []
    if second is not None and second.rechecked > MAX_RECHECK + 1e-9:
        reasons.append(f"{second.rechecked:.0%} of them near a boundary int8 could cross, over the "
                       f"{MAX_RECHECK:.0%} where it pays")  # fmt: skip
    change = _largest_change(ours, theirs) if second is None else second.largest_change
    looked = {"band": second.band, "rechecked": second.rechecked} if second is not None else {}
    return Int8Verdict(not reasons, "; ".join(reasons), len(labels), agreement, metric, f32, int8, change, **looked)


def _largest_change(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max()) if len(ours) else 0.0


def _too_few_equal() -> str:
    return f"answers equal on under {AGREEMENT:.1%}"
