"""`lora-sentiment audit`: which training labels are likely wrong, which texts are duplicated with conflicting
labels, which leak into the evaluation split. Reads top to bottom: check, load, score every text out of sample
(k folds), find, write.

The folder keeps audit.json (the settings and a fingerprint of the data), each fold's scores, and the outputs. The
same command again resumes: finished folds are read, not trained again; other settings or other data are refused
unless --overwrite starts over."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import check_writable, claimed, staged_file
from ..config import TrainConfig
from ..data.duplicates import few_words
from ..errors import UserError
from ..options import AuditOptions
from ..runs.run import AUDIT_STATE_FILE
from ..training import cross_fitting as fold_stage
from ..training.recipe import train, train_config
from .findings import Finding, duplicate_findings, issue_rows, label_findings, leak_findings
from .outputs import (
    CLEAN_FORMATS,
    ISSUES_FILE,
    PLOT_FILES,
    SUMMARY_FILE,
    screen,
    write_clean,
    write_issues,
    write_plot,
    write_summary,
)

Log = Callable[[str], None]

STATE_FILE = AUDIT_STATE_FILE
SCORER_NAMES = {"lora+tfidf": "LoRA fine-tuning and the TF-IDF baseline, averaged", "lora": "LoRA fine-tuning",
                "tfidf": "the TF-IDF baseline"}  # fmt: skip
REPEATS_DIR = "repeats"  # the second and later cross-fittings' folds (--repeats), one folder each
# What decides the folds' scores: a change to any other setting (the output folder, trackers) keeps the folds.
_NOT_SCORING = {"output_dir", "overwrite", "resume", "report_to", "mlflow_uri", "examples"}


@dataclass
class AuditResult:
    output_dir: Path
    summary: dict[str, Any]
    issues: list[dict[str, Any]]  # issues.csv's rows
    clean_file: Path | None
    rows: list[int]  # each audited text's row in the training file
    scores: np.ndarray  # [texts, outputs] each text's out-of-sample scores (probabilities, or the value)
    label_scores: np.ndarray  # [texts] how likely each given label is wrong (issues.csv's score for kind label)


def check_audit(config: TrainConfig, options: AuditOptions) -> None:
    """Everything that needs neither the data nor a model: the folder, the clean file's path and format."""
    from ..data.loading import check_source
    from ..hub import check_model_source
    from ..runs.run import ADAPTER_CONFIG_FILE

    folder = Path(config.output_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output-dir {folder} is a file; give audit a folder")
    if (folder / ADAPTER_CONFIG_FILE).exists():
        raise UserError(f"--output-dir {folder} holds a training run; give audit a folder of its own")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / STATE_FILE).exists() and not config.overwrite:
        raise UserError(f"--output-dir {folder} holds other files; choose an empty folder or pass --overwrite")
    check_writable(folder, "--output-dir", inside=True)
    check_model_source(config.model)
    check_source(config.data, "--data")
    if config.eval_data:
        check_source(config.eval_data, "--eval-data")
    if options.relabel and not options.write_clean:
        raise UserError("--relabel says how --write-clean treats label issues; add --write-clean FILE")
    if options.write_clean:
        clean = Path(options.write_clean).expanduser()
        if clean.suffix.lower() not in CLEAN_FORMATS:
            raise UserError(f"--write-clean {clean}: name a {', '.join(CLEAN_FORMATS)} file")
        if not clean.parent.is_dir():
            raise UserError(f"the folder of --write-clean {clean} does not exist; create it first")
        if clean.is_dir():
            raise UserError(f"--write-clean {clean} is a folder; give a file path (e.g. {clean / 'clean.csv'})")
        if clean.exists() and not config.overwrite:
            raise UserError(f"--write-clean {clean} exists; pass --overwrite to replace it or choose another file")
        check_writable(clean, "--write-clean")
    if options.runner == "ray":
        from ..modeling.ray_cluster import check_ray

        check_ray(options.ray_address, "--runner ray needs Ray: pip install 'lora-sentiment[ray]'")
    elif options.ray_address is not None:
        raise UserError("--ray-address is where --runner ray trains the folds; add --runner ray or drop it")
    if options.scorer == "auto" or fold_stage.trains_runs(options.scorer):  # every auto choice trains runs
        from ..modeling.device import default_device, resolve_precision

        resolve_precision(config.precision, default_device())


def audit(config: TrainConfig, options: AuditOptions | None = None, *, log: Log = print, **given: Any) -> AuditResult:
    """Audit `config.data`'s training split with `config`'s train settings; write into `config.output_dir`.
    `given`: AuditOptions' fields, as keywords."""
    config, options = train_config(config), AuditOptions.of(options, given)
    with claimed(Path(config.output_dir), "--output-dir"):  # the folds resume from it: one audit at a time
        check_audit(config, options)
        return AuditRecipe(config, options, log).run()


class AuditRecipe:
    def __init__(self, config: TrainConfig, options: AuditOptions, log: Log):
        self.config, self.options, self.log = config, options, log
        self.folder = Path(config.output_dir).expanduser()
        self.seconds: dict[str, float] = {}

    def run(self) -> AuditResult:
        started = time.perf_counter()
        self.load()
        created = not self.folder.exists()
        self.open_folder()
        try:
            self.score()
        except BaseException:
            if created and not list(self.folder.glob(f"{fold_stage.FOLDS_DIR}/*/{fold_stage.SCORES_FILE}")):
                shutil.rmtree(self.folder, ignore_errors=True)  # nothing finished to resume from: leave no trace
            raise
        findings = self.find()
        result = self.write(findings)
        self.log(f"Audit finished in {time.perf_counter() - started:.0f} s; wrote {self.folder}")
        return result

    def load(self) -> None:
        from ..data.splits import load_audited_data

        data = load_audited_data(self.config, log=self.log)
        self.data, self.evaluation, self.space = data.train, data.eval, data.space
        self.labels = np.asarray(self.data["label"])
        self.scorer = self._resolved_scorer()
        fold_stage.check_fold_count(self.options.folds, self.labels, self.space)
        self._unweighted_unless_asked()

    def _unweighted_unless_asked(self) -> None:
        """--class-weights auto trains the folds unweighted. Confident learning reads their probabilities, which
        weights pull towards the rare class, so texts of the common class pass the rare class's threshold: on IMDB
        made 10 % positive with 5 % of its labels flipped (three draws), unweighted folds flagged at +0.11 to +0.22
        precision (LoRA; +0.09 to +0.18 with TF-IDF beside it), recall never worse beyond the noise (docs/audit.md).
        Stored resolved, so an audit whose folds were weighted is not resumed with unweighted ones."""
        if self.config.class_weights.strip().lower() != "auto":
            return
        if self.space.problem.weighted and self.space.problem.balance_by_default(self.labels):
            self.log("Skewed classes: the folds train unweighted, as confident learning reads their probabilities "
                     "(--class-weights balanced weighs them).")  # fmt: skip
        self.config = self.config.model_copy(update={"class_weights": "none"})

    def _resolved_scorer(self) -> str:
        """--scorer auto: the problem type's choice, without TF-IDF where it finds no words in the texts."""
        if self.options.scorer != "auto":
            return self.options.scorer
        scorer = self.space.problem.audit_scorer
        if "tfidf" in scorer.split("+"):
            from ..training.baseline import no_words_to_learn

            if why := no_words_to_learn(self.data["text"]):
                self.log(f"--scorer auto: TF-IDF has nothing to learn from in these texts ({why}); LoRA scores alone")
                return "lora"
        return scorer

    def open_folder(self) -> None:
        """A fresh folder, or the same audit resumed: refused when the settings or the data differ."""
        state = {"settings": self._settings(), "data": self._data_fingerprint()}
        path = self.folder / STATE_FILE
        if path.exists() and not self.config.overwrite:
            stored = json.loads(path.read_text(encoding="utf-8"))
            changed = [k for k in ("settings", "data") if stored.get(k) != state[k]]
            if changed:
                what = " and ".join("the data" if k == "data" else "other settings" for k in changed)
                raise UserError(
                    f"--output-dir {self.folder} holds an audit of {what}; run it with the same flags "
                    "and data to resume, pass --overwrite to start over, or choose another --output-dir"
                )
        elif self.folder.exists() and self.config.overwrite:  # what an audit writes, not the folder's other files
            for name in (STATE_FILE, fold_stage.FOLDS_DIR, REPEATS_DIR, ISSUES_FILE, SUMMARY_FILE,
                         *set(PLOT_FILES.values())):  # fmt: skip
                written = self.folder / name
                if written.is_dir():
                    shutil.rmtree(written)
                else:
                    written.unlink(missing_ok=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        with staged_file(path) as handle:
            json.dump(state, handle, indent=2, default=str)

    def _settings(self) -> dict[str, Any]:
        train = {k: v for k, v in self.config.model_dump(mode="json").items() if k not in _NOT_SCORING}
        settings = {"train": train, "folds": self.options.folds, "scorer": self.scorer}
        if "tfidf" in self.scorer.split("+") and self.config.class_weights.strip().lower() != "none":
            # TF-IDF folds follow --class-weights since 2026-12-07; a folder from before holds unweighted ones
            # under the same flags, refused on resume rather than mixed with weighted ones
            settings["tfidf_weighted"] = True
        return settings

    def _data_fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for text, label in zip(self.data["text"], self.labels.tolist()):
            digest.update(f"{text}\x00{label}\x01".encode())
        return digest.hexdigest()

    def score(self) -> None:
        """Every text's out-of-sample scores: the mean over --repeats cross-fittings, each with its own folds and
        seed. One fold model's own mistakes look like wrong labels; another seed's model makes others, while a wrong
        label contradicts both (measured in docs/audit.md, "Repeated cross-fitting")."""
        started = time.perf_counter()
        repeats, self.seconds_per_fold = self.options.repeats, {}
        scores = []
        for repeat in range(repeats):
            seed = (self.config.seed + repeat) % 2**32  # --seed's own range, which each fold's run checks
            fold = fold_stage.assign_folds(self.labels, self.space, self.options.folds, seed)
            folder = self.folder if repeat == 0 else self.folder / REPEATS_DIR / str(repeat + 1)
            config = self.config.model_copy(update={"seed": seed})
            job = fold_stage.FoldJob(self.data, self.evaluation, self.space, config, folder, self.scorer, fit=train)
            if repeats > 1:
                self.log(f"Cross-fitting {repeat + 1} of {repeats} (seed {seed})")
            fold_stage.write_evaluation(job)
            repeat_scores, seconds = fold_stage.cross_fitted_scores(job, fold, self.log, self.options)
            scores.append(repeat_scores)
            prefix = f"repeat-{repeat + 1}-" if repeat else ""
            self.seconds_per_fold.update({prefix + name: value for name, value in seconds.items()})
        self.scores = np.mean(scores, axis=0)
        self.seconds["scoring"] = round(time.perf_counter() - started, 2)
        self.quality = self.scorer_quality()

    def scorer_quality(self) -> dict[str, Any]:
        """The cross-fitted scores' headline metric against the given labels, beside a constant guess (class shares,
        tag rates, the mean): flags from scores no better than that guess say nothing, and the log says so."""
        from ..problems.metrics import evaluation_metrics

        problem, n = self.space.problem, len(self.labels)
        constant = problem.constant_scores(self.space, self.labels)
        scored = evaluation_metrics(self.space, self.labels, self.scores, detailed=False)
        guessed = evaluation_metrics(self.space, self.labels, np.tile(constant, (n, 1)), detailed=False)
        # The first headline metric a constant has (a rank correlation has none).
        headline = problem.headline_metrics(problem.support(self.labels))
        metric = next((m for m in headline if np.isfinite(guessed.get(m, np.nan))), headline[-1])
        value, guess = float(scored[metric]), float(guessed[metric])
        better = value < guess if metric in problem.lower_is_better else value > guess
        lossy = [m for m in problem.selection_metrics if m in problem.lower_is_better and m in scored and m in guessed]
        if not better and lossy and scored[lossy[0]] < guessed[lossy[0]]:
            # Skewed classes: scores that answer the common class to every text tie the guess on every decision,
            # yet can rank the texts well, and confident learning reads the scores (per-class thresholds), not the
            # decisions. Its cross-entropy (after a temperature) says whether they know more than the class shares.
            metric, value, guess, better = lossy[0], float(scored[lossy[0]]), float(guessed[lossy[0]]), True
        if not better:
            self.log(
                f"Warning: the folds' models score {metric} {value:.3f} out of sample, no better than a constant "
                f"guess ({guess:.3f}): their flags are not to be trusted; train longer (--epochs) or on more data"
            )
        return {"metric": metric, "value": round(float(value), 4), "constant_guess": round(float(guess), 4),
                "better_than_guess": bool(better)}  # fmt: skip

    def find(self) -> list[Finding]:
        started = time.perf_counter()
        self.issues = self.space.problem.label_issues(self.space, self.labels, self.scores)
        findings = label_findings(self.issues, self.space)
        texts, rows = list(self.data["text"]), list(self.data["row"])
        threshold = self.options.near_duplicates
        self.duplicates = duplicate_findings(texts, self.labels, rows, self.space, threshold)
        findings += self.duplicates.findings
        self.leaks = None
        if self.evaluation is not None:
            evaluation = self.evaluation
            self.leaks, leaked = leak_findings(texts, list(evaluation["text"]), list(evaluation["row"]), threshold)
            findings += leaked
        self.seconds["findings"] = round(time.perf_counter() - started, 2)
        return findings

    def write(self, findings: list[Finding]) -> AuditResult:
        rows = issue_rows(findings, self.data, self.space)
        summary = self.summary(findings)
        write_issues(self.folder / ISSUES_FILE, rows)
        figure = self.space.problem.audit_figure
        values = (self.scores[:, 0], self.labels.astype(float)) if figure == "residuals" else None
        write_plot(self.folder / PLOT_FILES[figure], self.space, summary, values)
        clean = None
        if self.options.write_clean:
            clean = Path(self.options.write_clean).expanduser()
            kept, dropped, relabelled = write_clean(clean, self.config, self.data, findings, self.options.relabel,
                                                    self.space)  # fmt: skip
            summary["clean_file"] = {"path": str(clean), "rows": kept, "dropped": dropped, "relabelled": relabelled}
            self.log(f"Wrote {clean}: {kept} rows ({dropped} dropped, {relabelled} relabelled)")
        write_summary(self.folder / SUMMARY_FILE, summary)
        self.log(screen(summary, rows))
        return AuditResult(self.folder, summary, rows, clean, list(self.data["row"]), self.scores, self.issues.score)

    def summary(self, findings: list[Finding]) -> dict[str, Any]:
        counts = {kind: sum(f.kind == kind for f in findings) for kind in ("label", "duplicate", "leak")}
        pairs = self.duplicates.pairs
        leaks = None
        if self.leaks is not None:
            exact = sum(p.exact for p in self.leaks)
            leaks = {"exact_pairs": exact, "near_pairs": len(self.leaks) - exact, "training_rows": counts["leak"],
                     "evaluation_rows": len({p.second for p in self.leaks}),
                     "short_text_pairs": sum(few_words(self.data["text"][p.first]) for p in self.leaks)}  # fmt: skip
        return {
            "texts": len(self.labels), "problem_type": self.space.problem_type, "label_names": self.space.names,
            "scorer": self.scorer, "scorer_name": SCORER_NAMES[self.scorer],
            "folds": self.options.folds, "repeats": self.options.repeats,
            "near_duplicate_threshold": self.options.near_duplicates,
            "scorer_quality": self.quality, "counts": counts, "labels": self.issues.summary,
            "duplicates": {"exact_pairs": sum(p.exact for p in pairs), "near_pairs": sum(not p.exact for p in pairs),
                           "groups": len(self.duplicates.groups),
                           "conflicting_groups": len(self.duplicates.conflicting),
                           "short_text_pairs": sum(few_words(self.data["text"][p.first]) for p in pairs)},
            "leaks": leaks, "seconds": {**self.seconds, **self.seconds_per_fold},
            "model": self.config.model if fold_stage.trains_runs(self.scorer) else None,
        }  # fmt: skip
