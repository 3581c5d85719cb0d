"""The problem-type interface and its registry: what a run predicts — one class of several, any number of
tags, a number — decides its targets, loss, metrics, thresholds, answers, file columns, baseline and report.
Every stage asks `problem_type(name)` for these instead of branching on the name.

Adding a problem type: one module here with a subclass of `ProblemType`, and its line in `REGISTRY`
(docs/architecture.md has the checklist). Modules load on first use and import numpy alone at the top: the
registry is read by the settings and the CLI's --help, which must stay fast."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._face import Registry

if TYPE_CHECKING:
    import numpy as np

    from .abstention import Abstention
    from .calibration import Calibration
    from .confident import LabelIssues
    from .space import LabelSpace

# name (the --problem-type value) -> module in this package holding its `PROBLEM`. Order = --help's order.
REGISTRY: dict[str, str] = {
    "single-label": "single_label",
    "multi-label": "multi_label",
    "regression": "regression",
}


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown problem type {name!r}; registered: {', '.join(REGISTRY)}")


problem_type: Registry[ProblemType] = Registry(__package__, REGISTRY, "PROBLEM", _unknown)  # the type of a name


def problem_types() -> list[ProblemType]:
    return [problem_type(name) for name in REGISTRY]


class ProblemType:
    """One kind of target. Subclasses set the class attributes and implement the methods that raise."""

    name: ClassVar[str]  # the --problem-type value, also recorded in a run's labels.json
    hf_name: ClassVar[str]  # transformers' config.problem_type: picks the model's own loss and an export's
    metrics: ClassVar[tuple[str, ...]]  # every metric it computes, the first ones shown first
    headline: ClassVar[tuple[str, ...]]  # the two scores a user reads first (log line, report columns, card)
    best_metric: ClassVar[str]  # what --metric-for-best-model auto keeps the checkpoint by
    # computed at every evaluation to choose the kept epoch by, not reported with intervals like `metrics`
    selection_metrics: ClassVar[tuple[str, ...]] = ()
    curve_metric: ClassVar[str]  # drawn per epoch beside the loss
    lower_is_better: ClassVar[frozenset[str]] = frozenset()  # among `metrics`; the loss always is
    detection_order: ClassVar[int] = 99  # --problem-type auto asks each type's `claims` in this order
    claimed_because: ClassVar[str] = ""  # what the log says when auto picks it
    figure: ClassVar[str | None] = None  # the error plot of the kept epoch: "confusion_matrix" or "per_label_f1"
    # audit's plot (auditing/outputs.py): "noise_matrix" (P(true | given)), "tag_noise" or "residuals"
    audit_figure: ClassVar[str] = "noise_matrix"
    audit_noise_of: ClassVar[str] = ""  # what audit's estimated noise rate is a share of, where not of the texts
    has_boundary: ClassVar[bool] = False  # whether `near_boundary` names texts (a value has no boundary to cross)
    audit_scorer: ClassVar[str] = "lora"  # what audit's --scorer auto scores the folds with
    file_columns: ClassVar[tuple[str, ...]]  # what `predict --input` adds to each row
    stratified: ClassVar[bool] = False  # whether splits carved and samples drawn keep the class shares
    weighted: ClassVar[bool] = True  # whether --class-weights applies
    # --epochs auto's fewest optimizer steps, where this type needs more than MIN_STEPS (training/schedule.py)
    min_steps: ClassVar[int | None] = None
    named_after_column: ClassVar[bool] = False  # its one output is named after --label-column (a number)
    # How transformers.pipeline reads a merged export of this problem type (its card shows it).
    pipeline_call: ClassVar[str] = 'classify(["A wonderful, moving film."], truncation=True)'
    export_note: ClassVar[str] = ""  # what a merged export's card adds

    # ---- targets
    def claims(self, column: Any, *, separator: str | None, label_columns: Sequence[str] | None) -> bool:
        """--problem-type auto: whether a label column (pyarrow) of this shape is this problem type's."""
        return False

    def encode(self, ds: Any, where: str, *, names: Sequence[str] | None, given_names: Sequence[str] | None,
               separator: str | None) -> tuple[Any, list[str]]:  # fmt: skip
        """The `label` column as the model's targets, and the label names (matched to `names` when known)."""
        raise NotImplementedError

    def check_trainable(self, labels: np.ndarray, names: list[str], where: str) -> None:
        """Refuse training labels the model cannot learn from."""

    def untrained_note(self, labels: np.ndarray, names: list[str]) -> str:
        """A line on outputs no training text teaches (a class without texts, a tag never on); "" when none."""
        return ""

    def skew_note(self, labels: np.ndarray, names: list[str], weights: str) -> str:
        """A line on training classes too skewed for accuracy to say much; `weights`: --class-weights."""
        return ""

    def balance_by_default(self, labels: np.ndarray) -> bool:
        """Whether --class-weights auto weighs these training labels balanced."""
        return False

    def num_outputs(self, names: Sequence[str]) -> int:
        return len(names)

    # ---- training
    def balanced_weights(self, labels: np.ndarray, names: list[str]) -> np.ndarray:
        """--class-weights balanced."""
        raise NotImplementedError

    def weighted_loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        """The loss with --class-weights (torch tensors)."""
        raise NotImplementedError

    def output_start(self, labels: np.ndarray) -> np.ndarray | None:
        """Where the head's outputs start, from the training labels (None: where the model put them)."""
        return None

    def probe(
        self, features: np.ndarray, labels: np.ndarray, n_outputs: int, seed: int, intercept: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """A linear model of the targets on the frozen encoder's features (the output layer's inputs), as the
        output layer's (weight [n_outputs, features], bias [n_outputs]): the head starts where it ends (LP-FT).
        `intercept` False: the layer has no bias (GPT-2's score), so the model has none either (bias all 0)."""
        raise NotImplementedError

    # ---- scores and metrics
    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Logits to what users read: probabilities, or the value."""
        raise NotImplementedError

    def logits(self, scores: np.ndarray) -> np.ndarray:
        """`scores`' inverse: logits again (for calibration fitted on the scores a run kept)."""
        raise NotImplementedError

    def evaluate(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, *, detailed: bool) -> dict[str, Any]:
        """The run's metrics; `detailed` adds the per-label table and confusion matrix of the final report."""
        raise NotImplementedError

    def decided(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, threshold: float | None) -> LabelSpace:
        """The space as it will predict, with any decision rule fitted on these evaluation rows."""
        return space

    def decided_out_of_sample(
        self, labels: np.ndarray, scores: np.ndarray, threshold: float | None, seed: int
    ) -> dict[str, Any] | None:
        """Where `decided` fits a rule on the evaluation rows, the headline scores with each row decided by a rule
        fitted on other rows: what unseen texts will see. None where nothing is fitted."""
        return None

    def out_of_sample_decisions(self, labels: np.ndarray, scores: np.ndarray, seed: int) -> np.ndarray | None:
        """The answers `decided_out_of_sample` scores, as 0/1 scores that a threshold of 0.5 decides as they are: two
        models compared on them are compared as unseen texts will see them. None where nothing is fitted."""
        return None

    def same_answers(
        self, space: LabelSpace, reference: np.ndarray, other: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        """[n] whether `other`'s scores give each text the answer `reference`'s give (an engine or int8 against
        fp32); `labels`: the texts' targets, for a tolerance in their units."""
        raise NotImplementedError

    def near_boundary(self, space: LabelSpace, scores: np.ndarray, band: float) -> np.ndarray | None:
        """[n] the texts whose answer a change of at most `band` in any of their scores could move: those an int8
        model hands to the float one (export/int8_gate.py). None: the answers have no boundary (a value)."""
        return None

    # ---- calibration (calibration.py)
    def calibrate(self, labels: np.ndarray, logits: np.ndarray, coverage: float) -> Calibration:
        """Fitted on these evaluation rows: what turns the model's outputs into calibrated ones."""
        raise NotImplementedError

    def calibration_quality(self, labels: np.ndarray, logits: np.ndarray, fitted: Calibration,
                            halves: list[tuple[np.ndarray, Calibration]]) -> dict[str, Any]:  # fmt: skip
        """metrics.json's figures: what was fitted, and the quality before and after, each half of the rows
        (`halves`: [rows mask, the calibration fitted on the other rows]) scored by the other's fit."""
        raise NotImplementedError

    # ---- abstention (abstention.py)
    selective_metric: ClassVar[str]  # what `evaluate --min-confidence` (and the risk-coverage curve) scores
    selective_flag: ClassVar[str] = "min_confidence"  # the option that sets where answers stop (its field name)

    def confident_in(self, space: LabelSpace) -> bool:
        """Whether each answer of a run with `space` has a confidence of its own (for the risk-coverage curve)."""
        return True

    def confidence(self, scores: np.ndarray, space: LabelSpace) -> np.ndarray | None:
        """[n] how sure each answer is, higher surer, for the risk-coverage curve (None where not confident_in)."""
        return None

    def threshold(self, confidence: float) -> float:
        """The `selective_flag` value that keeps answers as sure as `confidence`."""
        return confidence

    def selective_score(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> float:
        raise NotImplementedError

    def abstains(self, scores: np.ndarray, space: LabelSpace, rule: Abstention) -> tuple[np.ndarray, Any]:
        """[n] abstained, and the per-tag uncertain mask where the problem type has tags (else None)."""
        raise NotImplementedError

    # ---- audit (confident.py): which given labels out-of-sample scores contradict
    def label_issues(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> LabelIssues:
        """Flags, ranking and suggestions from cross-fitted `scores` of the texts whose given targets are `labels`."""
        raise NotImplementedError

    def constant_scores(self, space: LabelSpace, labels: np.ndarray) -> np.ndarray:
        """[n_outputs] the scores of a guess that ignores the text, fitted on `labels` (what out-of-sample scores
        must beat for their flags to mean anything)."""
        raise NotImplementedError

    def issue_detail(self, score: float) -> str:
        """Why audit flagged a given label, from its issue score (confident.py's LabelIssues.score)."""
        return f"out-of-sample probability of the given label {1 - score:.3f}"

    def label_in_file(self, suggested: Any, current: Any, space: LabelSpace, separator: str | None,
                      column: Any) -> Any:  # fmt: skip
        """audit --relabel: a suggested target written the way the file gives its labels (`current`: the row's
        value; `column`: the file's whole label column, a pandas Series)."""
        raise NotImplementedError

    def label_text(self, label: Any, space: LabelSpace) -> str:
        """One encoded target as a person reads it (issues.csv's given and suggested columns)."""
        raise NotImplementedError

    def label_key(self, label: Any) -> Any:
        """A hashable form of one encoded target: duplicates whose keys differ conflict."""
        return int(label)

    # ---- answers
    def answer(self, row: np.ndarray, space: LabelSpace) -> dict[str, Any]:
        """One text's prediction as PredictionOut fields."""
        raise NotImplementedError

    def columns(self, scores: np.ndarray, present: np.ndarray, space: LabelSpace, fmt: str) -> dict[str, Any]:
        """Prediction columns for rows of a file (`present`: the rows with a text; the others stay empty)."""
        raise NotImplementedError

    # ---- baseline and report
    def baseline_model(self, seed: int) -> Any:
        """The scikit-learn estimator that goes after TF-IDF in the plain baseline."""
        raise NotImplementedError

    def baseline_targets(self, labels: np.ndarray) -> np.ndarray:
        return labels.astype(int)

    def baseline_scores(self, pipeline: Any, texts: list[str], space: LabelSpace) -> np.ndarray:
        return pipeline.predict_proba(texts)

    baseline_label: ClassVar[str]  # its name in the report: "logistic regression"

    def baseline_sample_weights(self, labels: np.ndarray, weights: np.ndarray | None) -> np.ndarray | None:
        """Each training text's weight in the baseline's fit, from the run's loss weights (None: unweighted)."""
        return None

    def describe_labels(self, names: Sequence[str]) -> str:
        """The card's `Labels:` line."""
        return ", ".join(f"{i} = {n}" for i, n in enumerate(names))

    def resampled_metrics(
        self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, index: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Every metric on each row of `index` ([rounds, n] text indices): {metric: [rounds]} (intervals.py);
        Pearson, which is no sum over texts and no headline metric, on the first OTHER_ROUNDS rows only."""
        raise NotImplementedError

    def support(self, labels: np.ndarray) -> np.ndarray | None:
        """How many of the texts `labels` are of each class, where the headline depends on it (single-label)."""
        return None

    def headline_metrics(self, support: Sequence[int] | None = None) -> tuple[str, ...]:
        """The headline for texts whose classes number `support` (`headline` unless the type says otherwise)."""
        return self.headline

    def headline_of(self, scores: dict[str, Any]) -> tuple[str, ...]:
        """The headline of a metrics record: its confusion matrix's rows count the classes of its texts."""
        matrix = scores.get("confusion_matrix")
        return self.headline_metrics([sum(row) for row in matrix] if matrix else None)

    def headline_text(self, scores: dict[str, Any]) -> str:
        """The log line's scores, each with its 95 % interval and the texts it rests on when known."""
        from .intervals import with_interval

        intervals, n = scores.get("intervals") or {}, scores.get("samples")
        parts = [f"{_pretty(m)} {with_interval(scores[m], intervals.get(m), n if i == 0 else None)}"
                 for i, m in enumerate(self.headline_of(scores))]  # fmt: skip
        return ", ".join(parts)


_PRETTY = {"accuracy": "Accuracy", "f1": "F1", "f1_macro": "Macro-F1", "f1_micro": "micro-F1", "mae": "MAE",
           "spearman": "Spearman"}  # fmt: skip


def _pretty(metric: str) -> str:
    return _PRETTY.get(metric, metric)


def per_label_table(labels: np.ndarray, predictions: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (single-label ids) or tag (multi-label 0/1 columns)."""
    import numpy as np
    from sklearn.metrics import precision_recall_fscore_support

    multi = np.asarray(labels).ndim == 2
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, average=None, labels=None if multi else list(range(len(names))), zero_division=0
    )
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support)
    }
