"""A run compiled once for a faster engine and kept in the run folder (`RUN/.compiled/ENGINE-KEY/`), so
`predict RUN` with `--engine auto` pays the export once.

A job that counts its texts (files, Ray) or knows their number waits with the compile, as the int8 check does:
it predicts with torch until the run's texts reach REPAY_TEXTS (counted in `ENGINE-KEY.waiting.json` beside the
compiled models), so a first `predict` is never slower than torch's. Measured on one class (the Intel Xeon capped
to avx512-vnni) OpenVINO f32 was no faster than torch fp32 and the compile (10-15 s) was never repaid; on another
(the AMD EPYC) it was repaid within 2,000 reviews (docs/benchmarks/cpu-classes.md). A server and a predictor
opened from Python count nothing, so they compile at once.

The key hashes what the compiled model is made of: the run's adapter, head, labels and settings, the base model
(its files' sizes and times when it is a local folder), the runtime's version and this format's version. A stale
entry (retrained run, new runtime) is replaced; a damaged one is rebuilt with a one-line notice. It is written
through `export_run`, that is into a hidden folder renamed into place, so a crash never leaves half of one; a
process that finds another building it (two `predict` jobs, a server beside them) waits for that one and reads it
(atomic.claimed), rather than build it again over the other's half-written copy."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from ..atomic import claimed, staged_file
from ..errors import UserError, first_line
from ..runs.run import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LABELS_FILE, RUN_CONFIG_FILE, Run
from .int8_gate import COUNT_FILE, INT8_SUFFIX, VERDICT_FILE, read_count, waiting_note
from .quiet import quiet_compile

CACHE_DIR = ".compiled"
# Bump an engine's when what it writes changes, so its older entries are rebuilt (2: calibration folded into the
# output layer; OpenVINO 3: IR converted from torch, its attention one fused op; ONNX 4: traced with eager attention;
# 4 and 5: the last layer on the first token only, modeling/first_token.py).
LAYOUT = {"openvino": "4", "onnx": "5"}
_RUNTIME_PACKAGES = {"openvino": "openvino", "onnx": "onnxruntime"}
Log = Callable[[str], None]
Int8Use = Literal["no", "check", "if checked"]
WAITING_SUFFIX = ".waiting.json"
# Texts a run predicts with torch before it is compiled (ski rental, as for the int8 check). Measured at 256 tokens:
# the compile 10-15 s; OpenVINO saved about 9 ms a review over torch on the avx512-bf16 class (repaid after
# 1,100-1,700) and nothing on the Intel avx512-vnni stand-in; 4,000 keeps the 2,000-review first call
# torch's on both.
REPAY_TEXTS = 4000


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
    digest.update(
        f"{engine}:{_version(_RUNTIME_PACKAGES[engine])}:{_version('lora-sentiment')}:{LAYOUT[engine]}".encode()
    )
    return digest.hexdigest()[:16]


def compiled_export(run_dir: str | Path, engine: str, log: Log, warn: Log | None = None, *,
                    int8: Int8Use = "no", texts: int | None = None) -> Path | None:  # fmt: skip
    """The run compiled for `engine` ("openvino" or "onnx"), built now if it is missing, stale or damaged.
    `texts`: this job's, where the job counts them (0: a number not known yet); then None while the run's counted
    texts plus these do not yet repay a compile (torch answers). None `texts`: compiled now. `log`: what it is
    doing; `warn`: that a damaged entry is rebuilt (`log` unless given). `int8` (openvino): "check" its int8 model
    (once, when the texts predicted so far and this job's `texts` repay it) and use it where that keeps the run's
    answers (int8_gate.py); "if checked" use it only where an earlier check kept it."""
    warn = warn or log
    run = Run.open(run_dir)
    key = cache_key(run, engine)
    if texts is not None and _still_waiting(run, engine, key, texts, log):
        return None
    folder = _compiled(run, engine, key, log, warn)
    if int8 != "no" and engine == "openvino":
        from .int8_gate import int8_or_f32

        return int8_or_f32(run, folder, log, warn, check=int8 == "check", texts=texts)
    return folder


def count_predicted(model: str | Path, texts: int) -> None:
    """`texts` more predicted by `model`, where it is a compiled f32 model whose int8 is not yet checked, or a run
    folder waiting to be compiled (an export, an int8 model or a run that waits for nothing: nothing to count).
    Two jobs ending at once may lose one's count."""
    model = Path(model)
    if model.parent.name == CACHE_DIR:
        if model.name.endswith(INT8_SUFFIX) or (model / VERDICT_FILE).exists():
            return
        counts = [model / COUNT_FILE]
    else:
        counts = list((model / CACHE_DIR).glob(f"*{WAITING_SUFFIX}")) if (model / CACHE_DIR).is_dir() else []
    for count in counts:
        try:
            with staged_file(count) as out:
                json.dump({"texts": read_count(count) + texts}, out)
        except OSError:  # a read-only run folder: the compile or the check waits for a job that can count
            pass


def _still_waiting(run: Run, engine: str, key: str, texts: int, log: Log) -> bool:
    """No compiled model yet, and the run's counted texts plus this job's do not repay one: this job runs torch
    and the count file is there for count_predicted to add to."""
    cache = run.path / CACHE_DIR
    if (cache / f"{engine}-{key}").is_dir():
        return False
    waiting = cache / f"{engine}-{key}{WAITING_SUFFIX}"
    so_far = read_count(waiting)
    if so_far + texts >= REPAY_TEXTS:
        return False
    if not waiting.exists():  # said once a run, not on every small job
        _remove_stale(cache, engine)
        cache.mkdir(exist_ok=True)
        with staged_file(waiting) as out:
            json.dump({"texts": 0}, out)
        log(f"note: predicting with torch; the run is compiled for {engine} once it has predicted {REPAY_TEXTS:,} "
            "texts (a first job is never slowed by the compile)")  # fmt: skip
    return True


def _remove_stale(cache: Path, engine: str) -> None:
    """An older run's or runtime's compiled models and counts: never read again."""
    for stale in cache.glob(f"{engine}-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _compiled(run: Run, engine: str, key: str, log: Log, warn: Log) -> Path:
    from .writing import export_run

    folder = run.path / CACHE_DIR / f"{engine}-{key}"
    if _complete(folder, engine, warn):
        return folder
    with claimed(folder, "the compiled model", wait=waiting_note(f"compiling the run for {engine}", log)):
        if _complete(folder, engine, lambda _: None):  # built while this process waited (damage: said above)
            return folder
        _remove_stale(run.path / CACHE_DIR, engine)
        log(f"note: compiling the run for {engine} once (kept in {folder.parent}; later calls start from it)...")
        with quiet_compile():
            export_run(run.path, folder, format=engine, overwrite=True, log=lambda _: None)
    return folder


def _complete(folder: Path, engine: str, warn: Log) -> bool:
    from .folder import check_export

    if not folder.is_dir():
        return False
    try:
        check_export(folder)
        return True
    except UserError as exc:
        warn(f"note: the compiled {engine} model in {folder} is damaged ({first_line(exc)}); building it again")
        return False


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"
