"""A run compiled once for a faster engine and kept in the run folder (`RUN/.compiled/ENGINE-KEY/`), so
`predict RUN` with `--engine auto` pays the export on its first call only.

The key hashes what the compiled model is made of: the run's adapter, head, labels and settings, the base model
(its files' sizes and times when it is a local folder), the runtime's version and this format's version. A stale
entry (retrained run, new runtime) is replaced; a damaged one is rebuilt with a one-line notice. It is written
through `export_run`, that is into a hidden folder renamed into place, so a crash never leaves half of one and
two processes building at once each end with a complete one."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from ..atomic import staged_file
from ..errors import UserError, first_line
from ..runs.run import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LABELS_FILE, RUN_CONFIG_FILE, Run
from .quiet import quiet_compile

CACHE_DIR = ".compiled"
# Bump when what is written changes, so older entries are rebuilt (2: calibration folded into the output layer).
LAYOUT = "2"
_RUNTIME_PACKAGES = {"openvino": "openvino", "onnx": "onnxruntime"}
Log = Callable[[str], None]
Int8Use = Literal["no", "check", "if checked"]


def cache_key(run: Run, engine: str) -> str:
    digest = hashlib.sha256()
    for name in (ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE, LABELS_FILE, RUN_CONFIG_FILE):
        digest.update(name.encode() + b"\0" + (run.path / name).read_bytes())
    base = Path(run.config.model).expanduser()
    if base.is_dir():  # a local base model: its files as they are now (not hashed: gigabytes on every call)
        for file in sorted(p for p in base.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(base)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        digest.update(f"hub:{run.config.model}".encode())
    digest.update(f"{engine}:{_version(_RUNTIME_PACKAGES[engine])}:{_version('lora-sentiment')}:{LAYOUT}".encode())
    return digest.hexdigest()[:16]


def compiled_export(run_dir: str | Path, engine: str, log: Log, warn: Log | None = None, *,
                    int8: Int8Use = "no", texts: int | None = None) -> Path:  # fmt: skip
    """The run compiled for `engine` ("openvino" or "onnx"), built now if it is missing, stale or damaged.
    `log`: what it is doing; `warn`: that a damaged entry is rebuilt (`log` unless given). `int8` (openvino):
    "check" its int8 model (once, when the texts predicted so far and this job's `texts` repay it) and use it
    where that keeps the run's answers (int8_gate.py); "if checked" use it only where an earlier check kept it."""
    warn = warn or log
    run = Run.open(run_dir)
    folder = _compiled(run, engine, log, warn)
    if int8 != "no" and engine == "openvino":
        from .int8_gate import int8_or_f32

        return int8_or_f32(run, folder, log, warn, check=int8 == "check", texts=texts)
    return folder


def count_predicted(model: str | Path, texts: int) -> None:
    """`texts` more predicted by `model`, where it is a compiled f32 model whose int8 is not yet checked (a run
    folder, an export or an int8 model: nothing to count). Two jobs ending at once may lose one's count."""
    from .int8_gate import COUNT_FILE, INT8_SUFFIX, VERDICT_FILE, predicted

    model = Path(model)
    if model.parent.name != CACHE_DIR or model.name.endswith(INT8_SUFFIX) or (model / VERDICT_FILE).exists():
        return
    try:
        with staged_file(model / COUNT_FILE) as out:
            json.dump({"texts": predicted(model) + texts}, out)
    except OSError:  # a read-only run folder: the check waits for a job that can count
        pass


def _compiled(run: Run, engine: str, log: Log, warn: Log) -> Path:
    from .folder import check_export
    from .writing import export_run

    folder = run.path / CACHE_DIR / f"{engine}-{cache_key(run, engine)}"
    if folder.is_dir():
        try:
            check_export(folder)
            return folder
        except UserError as exc:
            warn(f"note: the compiled {engine} model in {folder} is damaged ({first_line(exc)}); building it again")
    for stale in (run.path / CACHE_DIR).glob(f"{engine}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # an older run or runtime: never read again
    log(f"note: compiling the run for {engine} once (kept in {folder.parent}; later calls start from it)...")
    with quiet_compile():
        export_run(run.path, folder, format=engine, overwrite=True, log=lambda _: None)
    return folder


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"
