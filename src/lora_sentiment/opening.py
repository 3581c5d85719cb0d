"""One door to every model this package makes: a run folder, an export folder, or several runs (a list, or a
dict of name -> folder) become a Predictor or a PredictorSet (inference/base.py). `predict`, `evaluate`, `serve`,
the file workers and Ray open models here and nowhere else. An export opens without importing torch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .export.engines import engine
from .export.folder import ExportedClassifier, check_export, export_info
from .export.int8_gate import CHECK_TEXTS
from .inference.base import LoadOptions
from .problems.abstention import Abstention, check_abstention
from .runs.run import is_export

if TYPE_CHECKING:
    from .inference.base import Predictor, PredictorSet

# The CLI shows its INFO lines on stderr (cli/__init__.py); from Python they show where logging is configured.
LOG = logging.getLogger("lora_sentiment")
Target = str | Path | Sequence[str | Path] | Mapping[str, str | Path]


def open_predictor(target: Target, options: LoadOptions | None = None, *, expected_texts: int | None = None,
                   **given: Any) -> Predictor | PredictorSet:  # fmt: skip
    """`target` as a predictor: one run (merged, the fast path) or export, or several runs sharing their bases.
    `given`: LoadOptions' fields (precision, device, long_text, stride, threads), as keywords. `expected_texts`:
    how many texts it will predict, where known: they are counted, and the run is compiled (and its int8 checked)
    once the counted texts repay it, not on a first small job (export/compiled.py, export/int8_gate.py)."""
    options = LoadOptions.of(options, given)
    if isinstance(target, (str, Path)):
        given_path = target
        target = resolve_engine_target(target, options, expected_texts=expected_texts)
        if expected_texts:
            from .export.compiled import count_predicted

            count_predicted(target, expected_texts)
        if is_export(target):
            exported = ExportedClassifier.open(target, options)  # on the CPU, whatever options.device says
            exported.run_path = Path(given_path)  # a run compiled for its engine is still the run that saw its texts
            return exported
        from .inference.classifier import load_classifier

        return load_classifier(target, options)
    if options.engine not in ("auto", "torch"):
        raise UserError(f"--engine {options.engine} runs one run at a time; several runs share their base in torch "
                        "(--engine torch or auto)")  # fmt: skip
    from .inference.shared_base import load_classifiers
    from .runs.run import parse_named_runs

    named = dict(target) if isinstance(target, Mapping) else parse_named_runs([str(t) for t in target])
    if not any(is_export(path) for path in named.values()):
        return load_classifiers(named, options)
    # An export holds its own, merged weights and is opened alone; a run beside its export is a comparison users
    # make (did the export keep the answers?). The other runs share their bases as ever; one alone is opened as
    # `predict RUN` opens it, its engine compiled once the texts repay it.
    opened = {name: open_predictor(path, options) for name, path in named.items() if is_export(path)}
    shared = {name: path for name, path in named.items() if name not in opened}
    if len(shared) == 1:
        ((name, path),) = shared.items()
        opened[name] = open_predictor(path, options, expected_texts=expected_texts)
    elif shared:
        together = load_classifiers(shared, options)
        opened.update({name: together[name] for name in shared})
    return SideBySide({name: opened[name] for name in named})


class SideBySide:
    """Runs and exports by name as one PredictorSet (`predict a b`, `evaluate a b`): each predicts on its own."""

    def __init__(self, members: dict[str, Predictor]):
        self.members = members

    @property
    def names(self) -> list[str]:
        return list(self.members)

    def __getitem__(self, name: str) -> Predictor:
        if name not in self.members:
            raise UserError(f"no model named {name!r}; models: {', '.join(self.members)}")
        return self.members[name]

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def predict_many(self, requests: Sequence[tuple[str | None, Sequence[str]]]) -> list[Any]:
        if any(name is None for name, _ in requests):
            raise UserError(f"{len(self.members)} models are loaded; name one of: {', '.join(self.members)}")
        return [self[str(name)].predict_scores(texts) for name, texts in requests]


def choose_engine(options: LoadOptions) -> str:
    """What runs a run folder's model: `options.engine`, or for `auto` the fastest faithful engine measured on
    CPUs (OpenVINO, fp32 or bf16 as torch would run: docs/benchmarks/cpu-classes.md), where it is installed;
    torch on GPUs and wherever OpenVINO is not. (On AMX torch was as fast as OpenVINO's IR converted from ONNX;
    the IR converted from torch, with its fused attention, ran 1.2-1.35x torch there: cpu-classes.md.)"""
    if options.engine != "auto":
        if options.engine != "torch":
            missing = engine(options.engine).missing_modules()
            if missing:
                raise UserError(f"--engine {options.engine} needs {', '.join(missing)}: pip install "
                                f"'lora-sentiment[{engine(options.engine).extra}]', or --engine torch")  # fmt: skip
        return options.engine
    on_gpu = options.device not in (None, "cpu") or (options.device is None and _has_gpu())
    if on_gpu or options.precision == "fp16" or engine("openvino").missing_modules():
        return "torch"
    return "openvino"


def tries_int8(options: LoadOptions) -> bool:
    """Whether `--engine auto` checks an int8 model of the run (export/int8_gate.py): on CPUs where int8 beats the
    unquantized compiled model (int8 dot-product units, not AMX), unless a precision was asked for."""
    from .modeling.cpu import this_cpu

    return options.engine == "auto" and options.precision == "auto" and this_cpu().int8_pays


def _has_gpu() -> bool:
    """An NVIDIA GPU is there (without importing torch, which an engine that runs the model does not need)."""
    return Path("/dev/nvidia0").exists() or Path("/dev/nvidiactl").exists()


def resolve_engine_target(target: str | Path, options: LoadOptions, log: Callable[[str], None] | None = None,
                          expected_texts: int | None = None, counted: bool = False) -> str | Path:  # fmt: skip
    """A run folder, or what it is compiled to for the chosen engine (built once); an export as it is.
    `predict`'s workers and Ray resolve this once, before they start, so the model is compiled once.
    `expected_texts`: this job's texts, where known; `counted`: the job counts them after (count_predicted). Either
    lets `auto` wait with the compile until the run's texts repay it (export/compiled.py): torch answers till then.
    An engine asked for by name is compiled at once."""
    if is_export(target) or not Path(target).is_dir():
        return target
    chosen = choose_engine(options)
    if chosen == "torch":
        return target
    from .export.compiled import compiled_export

    try:
        int8 = "check" if tries_int8(options) else "no"
        if int8 == "check" and expected_texts is not None and expected_texts < CHECK_TEXTS:
            int8 = "if checked"  # a few texts: int8 once a larger job has checked it, f32 until then
        job = expected_texts if expected_texts is not None else (0 if counted else None)  # 0: counted after
        if options.engine != "auto":
            job = None  # an engine asked for by name is compiled at once
        compiled = compiled_export(target, chosen, log or LOG.info, None if log else LOG.warning, int8=int8,
                                   texts=job)  # fmt: skip
        return target if compiled is None else compiled
    except OSError as exc:  # a read-only run folder: torch still answers
        LOG.warning(f"note: cannot keep a compiled model in {target} ({exc.strerror}); predicting with torch")
        return target


def job_target(target: str | Path, options: LoadOptions, expected_texts: int | None = None
               ) -> tuple[str | Path, LoadOptions]:  # fmt: skip
    """What a counted job (a file, its workers, Ray) opens, resolved once before it starts: the compiled model, or
    the run folder with torch where the compile still waits (so no worker compiles it on its own)."""
    resolved = resolve_engine_target(target, options, expected_texts=expected_texts, counted=True)
    if not is_export(resolved) and Path(resolved).is_dir():
        options = options.model_copy(update={"engine": "torch"})
    return resolved, options


def check_openable(path: str | Path, options: LoadOptions | None = None) -> None:
    """Fail with the one-line error now if `path` is neither a finished run nor a complete export, or cannot follow
    the abstention asked in `options`: before a worker pool, a Ray cluster or a server starts."""
    if is_export(path):
        check_export(path)
    else:
        from .runs.run import Run

        Run.open(path).check_base()
    rule = Abstention.of(options)
    if rule.active:
        check_abstention(records(path)[1], rule, str(path))


def records(path: str | Path) -> tuple[Any, Any]:
    """A run's or an export's TrainConfig and LabelSpace, read from its files without loading the model."""
    if is_export(path):
        from .export.folder import export_records

        return export_records(path)
    from .runs.run import Run

    run = Run.open(path)
    return run.config, run.space


def describe(path: str | Path) -> dict[str, Any]:
    """What /info tells of a run or an export: its recipe and its final evaluation."""
    if is_export(path):
        return export_info(path)
    from .runs.run import run_info

    return run_info(path)
