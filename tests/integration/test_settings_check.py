"""Every command is `check` then `run`: what needs neither the data nor the model is refused by `check`, in one
line, before `run` reads a row, loads a model or writes a file. Each case below replaces the command's `run`
with a failure, so a refusal that came from the work instead of the check fails the test."""

from __future__ import annotations

import inspect
import socket
from importlib import import_module

import pytest

from lora_sentiment.cli import COMMANDS, main


def _module(command: str):
    return import_module(f"lora_sentiment.cli.{COMMANDS[command]}")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_is_a_check_then_a_run(command):
    module = _module(command)
    assert list(inspect.signature(module.check).parameters) == ["args"]
    assert len(inspect.signature(module.run).parameters) == 2  # (args, what check returned)


def _cases(run: str, data: str, busy_port: int) -> list[tuple[str, list[str], str]]:
    return [
        ("train", ["--data", "missing.csv"], "data file not found: missing.csv"),
        ("train", ["--data", data, "--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
        ("train", ["--data", data, "--report-to", "mlflow", "--mlflow-uri", "./mlruns"], "is a file store"),
        ("train", ["--data", data, "--output-dir", data], f"--output-dir {data} is a file"),
        ("tune", ["--data", data, "--storage", "sqlite:////no/such/dir/s.db"], "does not exist"),
        ("tune", ["--data", data, "--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
        ("audit", ["--data", "missing.csv"], "data file not found: missing.csv"),
        ("audit", ["--data", data, "--output-dir", run], "holds a training run"),
        ("audit", ["--data", data, "--write-clean", "no/such/dir/c.csv"], "does not exist"),
        ("audit", ["--data", data, "--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
        ("predict", [run, "--input", "missing.csv"], "input file not found: missing.csv"),
        ("predict", [run, "--input", data, "--output", "no/such/dir/o.csv"], "does not exist"),
        ("predict", [run, "--input", data, "--workers", "4096"], "is more than this machine's"),
        ("predict", ["no-such-run", "--text", "A film."], "no-such-run"),
        (
            "predict",
            [run, "--input", data, "--output", "o", "--runner", "ray", "--ray-address", "a b"],
            "is not a Ray address",
        ),  # fmt: skip
        ("evaluate", [run, "--data", "missing.csv"], "data file not found: missing.csv"),
        ("export", [run, data], f"{data} exists and is not empty"),
        (
            "export",
            [run, "out", "--format", "openvino", "--quantize", "int8", "--calibration-data", "missing.csv"],
            "data file not found: missing.csv",
        ),  # fmt: skip
        ("serve", [run, "--port", str(busy_port)], f"cannot listen on 127.0.0.1:{busy_port}"),
        ("serve", ["--runs-dir", "no-such-folder"], "--runs-dir no-such-folder is not a folder"),
        ("report", ["no-such-run"], "no-such-run"),
        ("bench", ["--data", "no-such-folder", "--model", "m"], "needs train.parquet and validation.parquet"),
        ("bench-engines", [run, "--data", data, "--output", "no/such/dir/r.json"], "does not exist"),
        ("bench-serve", [run, "--data", "missing.csv"], "--data missing.csv not found"),
        ("bench-serve", [run, "--data", data, "--text-column", "review"], "no column 'review' in data.csv"),
    ]


def test_bad_settings_are_refused_by_check_before_any_work(tmp_path, trained_run, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "A fine film.,1\nA dull film.,0\n" * 10)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases = _cases(str(trained_run), data.name, busy.getsockname()[1])
        before = sorted(tmp_path.rglob("*"))
        for command, flags, needle in cases:
            monkeypatch.setattr(_module(command), "run", lambda *a, c=command: pytest.fail(f"{c}: the work started"))
            argv = [command, *flags]
            if command in ("train", "tune", "audit"):
                argv += ["--model", "any-model"] if "--output-dir" in flags else ["--model", "any-model",
                                                                                 "--output-dir", "out"]  # fmt: skip
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and needle in err and err.startswith("lora-sentiment: error:"), (
                argv,
                err,
            )
            assert sorted(tmp_path.rglob("*")) == before, argv


def test_serve_from_python_checks_its_address_before_loading(trained_run, monkeypatch):
    """The Python API runs the same check: a port in use is found before any model loads."""
    from lora_sentiment.errors import UserError
    from lora_sentiment.serving import app

    monkeypatch.setattr(app, "open_models", lambda *a: pytest.fail("models loaded"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UserError, match="cannot listen on"):
            app.serve(str(trained_run), port=busy.getsockname()[1])
