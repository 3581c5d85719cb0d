"""export/compiled.py and the engine choice (opening.py): a run compiled once for OpenVINO and kept in the run
folder, reused, rebuilt when the run or the runtime changes, rebuilt with a notice when damaged, never
half-written; `--engine auto` picks it on CPUs where it is installed and falls back to torch elsewhere."""

import shutil

import numpy as np
import pytest

from lora_sentiment.errors import UserError
from lora_sentiment.export import compiled
from lora_sentiment.export.folder import ExportedClassifier
from lora_sentiment.inference.classifier import Classifier
from lora_sentiment.opening import choose_engine, open_predictor, resolve_engine_target
from lora_sentiment.options import LoadOptions

pytest.importorskip("openvino")

TEXTS = ["A wonderful, moving film.", "Dreadful from start to end.", "It was fine, I suppose."]


@pytest.fixture()
def run(tmp_path, trained_run):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns(compiled.CACHE_DIR))
    return copy


def _entries(run):
    return sorted(p.name for p in (run / compiled.CACHE_DIR).iterdir()) if (run / compiled.CACHE_DIR).exists() else []


def test_auto_compiles_once_and_agrees_with_torch(run, monkeypatch):
    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    notices = []
    first = resolve_engine_target(run, LoadOptions(), log=notices.append)
    assert (
        first.parent == run / compiled.CACHE_DIR
        and len(notices) == 1
        and "compiling the run for openvino once" in notices[0]
    )
    built = (first / "openvino_model.xml").stat().st_mtime_ns
    again = resolve_engine_target(run, LoadOptions(), log=notices.append)
    assert again == first and len(notices) == 1 and (first / "openvino_model.xml").stat().st_mtime_ns == built
    predictor = open_predictor(run, LoadOptions(precision="fp32"))
    assert isinstance(predictor, ExportedClassifier)
    torch_scores = Classifier.from_run(run, LoadOptions(precision="fp32", engine="torch")).predict_scores(TEXTS)
    np.testing.assert_allclose(predictor.predict_scores(TEXTS), torch_scores, atol=1e-4)
    assert [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != compiled.CACHE_DIR] == []


def test_a_compile_from_python_adds_no_warnings_of_transformers(tmp_path, tiny_bert, small_csv):
    """Python callers keep transformers' default verbosity (the CLI lowers it): compiling a run printed
    "`loss_type=None` was set in the config but it is unrecognized. Using the default loss: `ForCausalLMLoss`"
    (torch's tracer reads every attribute of the model, the loss_function property among them)."""
    import logging

    from transformers.utils import logging as hf_logging

    from lora_sentiment import TrainConfig, train
    from lora_sentiment.export.writing import export_run

    config = TrainConfig(model=tiny_bert, data=str(small_csv), output_dir=str(tmp_path / "run"), max_length=32,
                         epochs=1, precision="fp32", baseline="none", examples=[])  # fmt: skip
    run = train(config, log=lambda _: None).output_dir
    said: list[str] = []
    heard = logging.Handler(logging.WARNING)
    heard.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    hf_logging.warning_once.cache_clear()  # said once per process: said again here if anything says it
    hf_logging.get_logger().addHandler(heard)
    try:
        compiled.compiled_export(run, "openvino", log=lambda _: None)
        hf_logging.warning_once.cache_clear()
        export_run(run, tmp_path / "onnx", format="onnx", log=lambda _: None)
        assert hf_logging.get_verbosity() == hf_logging.WARNING  # the caller's setting, put back
    finally:
        hf_logging.get_logger().removeHandler(heard)
        hf_logging.set_verbosity(verbosity)
    assert not [message for message in said if "loss" in message], said


@pytest.mark.slow
def test_a_changed_run_or_runtime_is_compiled_again_and_the_stale_entry_goes(run, monkeypatch):
    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    first = resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    weights = run / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes())  # same bytes: same key
    assert resolve_engine_target(run, LoadOptions(), log=lambda _: None) == first
    labels = run / "labels.json"
    labels.write_text(labels.read_text() + "\n")  # the run changed
    second = resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    assert second != first and _entries(run) == [second.name]
    monkeypatch.setattr(compiled, "_version", lambda package: "99.0" if package == "openvino" else "1")
    third = resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    assert third not in (first, second) and _entries(run) == [third.name]


@pytest.mark.slow
def test_a_damaged_entry_is_rebuilt_with_a_notice(run, monkeypatch):
    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    folder = resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    (folder / "openvino_model.xml").unlink()
    notices = []
    assert resolve_engine_target(run, LoadOptions(), log=notices.append) == folder
    assert "damaged" in notices[0] and (folder / "openvino_model.xml").is_file()


def test_a_failed_build_leaves_nothing_half_written(run, monkeypatch):
    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)

    def crash(*args, **kwargs):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr("lora_sentiment.export.engines.openvino.OpenVino.write", crash)
    with pytest.raises(RuntimeError):
        resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    assert _entries(run) == []  # neither a partial entry nor its hidden staging folder


def test_a_job_that_finds_another_building_the_same_model_waits_and_reads_it(run):
    """Two jobs that compiled one run at once shared its hidden staging folder: the later one removed the other's
    half-written copy. The later one now waits for the build and reads it instead of building it again."""
    import os
    import subprocess
    import sys
    import threading

    from lora_sentiment.atomic import claimed
    from lora_sentiment.export.writing import export_run
    from lora_sentiment.runs.run import Run

    folder = run / compiled.CACHE_DIR / f"openvino-{compiled.cache_key(Run.open(run), 'openvino')}"
    holding, waiting = threading.Event(), threading.Event()

    def build():  # another job, mid-build: it holds the claim until the second job waits
        with claimed(folder, "the compiled model"):
            holding.set()
            waiting.wait(120)
            export_run(run, folder, format="openvino", overwrite=True, log=lambda _: None)

    builder = threading.Thread(target=build)
    builder.start()
    holding.wait(10)
    code = f"from lora_sentiment.export import compiled as c; print(c.compiled_export({str(run)!r}, 'openvino', print))"
    second = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    while not lines or not (lines[-1] == "" or "waiting for it" in lines[-1]):  # "": it ended without waiting
        lines.append(second.stdout.readline())
    waiting.set()
    builder.join()
    out, _ = second.communicate(timeout=120)
    lines += out.splitlines()
    assert second.returncode == 0, lines
    assert f"note: another process ({os.getpid()}) is compiling the run for openvino; waiting for it\n" in lines
    assert not any("compiling the run for openvino once" in line for line in lines)  # read, not built again
    assert lines[-1].strip() == str(folder) and _entries(run) == [folder.name]


@pytest.mark.parametrize(
    ("cpu", "precision", "chosen"),
    [
        ("amx", "auto", "openvino"),  # its fused attention: 1.2-1.35x torch bf16 on AMX
        ("amx", "fp32", "openvino"),
        ("avx512-bf16", "auto", "openvino"),
        ("avx512-vnni", "auto", "openvino"),
        ("avx2", "auto", "openvino"),
    ],
)
def test_the_engine_choice_per_cpu_class(monkeypatch, cpu, precision, chosen):
    from lora_sentiment.modeling.cpu import CpuKind

    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    monkeypatch.setattr("lora_sentiment.modeling.cpu.this_cpu", lambda: CpuKind(cpu, cpu, None))
    assert choose_engine(LoadOptions(precision=precision)) == chosen


def test_the_engine_choice(monkeypatch):
    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    assert choose_engine(LoadOptions()) == "openvino"
    assert choose_engine(LoadOptions(engine="torch")) == "torch"
    assert choose_engine(LoadOptions(device="cuda:0")) == "torch"
    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: True)
    assert choose_engine(LoadOptions()) == "torch" and choose_engine(LoadOptions(device="cpu")) == "openvino"
    monkeypatch.setattr("lora_sentiment.export.engines.openvino.OpenVino.missing_modules", lambda self: ["openvino"])
    assert choose_engine(LoadOptions(device="cpu")) == "torch"  # auto falls back where the runtime is missing
    with pytest.raises(UserError, match=r"--engine openvino needs openvino: pip install 'lora-sentiment\[openvino\]'"):
        choose_engine(LoadOptions(engine="openvino"))


def test_several_runs_stay_on_torch(trained_run):
    with pytest.raises(UserError, match="--engine openvino runs one run at a time"):
        open_predictor({"a": trained_run, "b": trained_run}, LoadOptions(engine="openvino"))


def test_the_cli_compiles_once_says_so_on_stderr_and_keeps_stdout_clean(run, capsys, monkeypatch):
    """A first small job answers with torch (the compile waits until the run's texts repay it) and says so once;
    the job that brings the count there compiles; later calls say nothing."""
    import json

    from lora_sentiment.cli import main

    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    monkeypatch.setattr(compiled, "REPAY_TEXTS", 5)
    assert main(["predict", str(run), "--json", "--text", *TEXTS]) == 0
    first = capsys.readouterr()
    assert [json.loads(line)["text"] for line in first.out.splitlines()] == TEXTS
    assert first.err.strip() == (
        "lora-sentiment: note: predicting with torch; the run is compiled for openvino once it has predicted 5 texts "
        "(a first job is never slowed by the compile)"
    )
    (waiting,) = _entries(run)
    assert waiting.endswith(compiled.WAITING_SUFFIX) and compiled.read_count(run / compiled.CACHE_DIR / waiting) == 3
    assert main(["predict", str(run), "--json", "--text", *TEXTS]) == 0  # 3 + 3 texts: this one compiles
    second = capsys.readouterr()
    assert second.err.strip().startswith("lora-sentiment: note: compiling the run for openvino once")
    assert "Warning" not in second.err  # the tracer's notes stay out of the user's terminal
    labels = [json.loads(line)["label"] for line in first.out.splitlines()]
    assert [json.loads(line)["label"] for line in second.out.splitlines()] == labels
    (folder,) = _entries(run)  # the count went with the wait
    assert main(["predict", str(run), "--json", "--text", *TEXTS]) == 0
    third = capsys.readouterr()
    assert third.out == second.out and third.err == ""


@pytest.mark.slow  # compiles twice
def test_a_file_job_counts_and_a_job_known_large_enough_compiles_at_once(run, tmp_path, monkeypatch):
    import io

    import pandas as pd

    from lora_sentiment.batch.files import predict_file

    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    monkeypatch.setattr(compiled, "REPAY_TEXTS", 5)
    csv_text = pd.DataFrame({"text": TEXTS}).to_csv(index=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(csv_text))  # stdin is read once: its rows are counted after
    predict_file(str(run), "-", str(tmp_path / "out1.jsonl"), input_format="csv", progress=False)
    (waiting,) = _entries(run)
    assert compiled.read_count(run / compiled.CACHE_DIR / waiting) == 3
    monkeypatch.setattr("sys.stdin", io.StringIO(csv_text))
    predict_file(str(run), "-", str(tmp_path / "out2.jsonl"), input_format="csv", progress=False)
    assert compiled.read_count(run / compiled.CACHE_DIR / waiting) == 6  # the job that reached 5 still ran torch
    assert resolve_engine_target(run, LoadOptions(), expected_texts=1, log=lambda _: None).parent.name == ".compiled"
    assert [p for p in _entries(run) if p.endswith(compiled.WAITING_SUFFIX)] == []

    for name, write in [("reviews.parquet", pd.DataFrame.to_parquet), ("reviews.csv", pd.DataFrame.to_csv)]:
        shutil.rmtree(run / compiled.CACHE_DIR)
        table = tmp_path / name  # 6 rows, known before the model opens (metadata; the field-count check's pass)
        write(pd.DataFrame({"text": TEXTS * 2}), table, index=False)
        predict_file(str(run), str(table), str(tmp_path / f"out-{name}.jsonl"), progress=False)
        (folder,) = _entries(run)
        assert folder.startswith("openvino-") and (run / compiled.CACHE_DIR / folder).is_dir(), name
    named = resolve_engine_target(run, LoadOptions(engine="openvino"), expected_texts=1)  # asked for: never waits
    assert named == run / compiled.CACHE_DIR / folder


def test_a_bad_file_fails_before_the_run_is_compiled(run, tmp_path, capsys, monkeypatch):
    """evaluate and predict read the data first: a bad file costs no compile and says one line."""
    from lora_sentiment.cli import main

    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    bad = tmp_path / "bad.csv"
    bad.write_text("review,stars\nGood,1\n")
    assert main(["evaluate", str(run), "--data", str(bad)]) == 2
    assert main(["predict", str(run), "--input", str(bad), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("lora-sentiment: error:") for line in err), err
    assert _entries(run) == [] and not (tmp_path / "o.csv").exists()


def test_engine_onnx_is_compiled_the_same_way(run):
    predictor = open_predictor(run, LoadOptions(engine="onnx", precision="fp32"))
    assert predictor.info()["device"] == "cpu (onnxruntime)" and _entries(run)[0].startswith("onnx-")
    torch_scores = Classifier.from_run(run, LoadOptions(precision="fp32", engine="torch")).predict_scores(TEXTS)
    np.testing.assert_allclose(predictor.predict_scores(TEXTS), torch_scores, atol=1e-4)
