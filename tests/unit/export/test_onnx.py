"""ONNX export: plain onnxruntime loads it, it agrees with the torch model, predict/evaluate/serve take the
folder wherever they take a run (without importing torch), and a damaged export is a one-line error."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lora_sentiment.cli import main
from lora_sentiment.export.folder import OnnxClassifier
from lora_sentiment.export.writing import export_onnx
from lora_sentiment.opening import open_predictor

TEXTS = ["A wonderful, moving film.", "Dull and far too long.", "It was fine. " * 60]


@pytest.fixture(scope="module")
def onnx_exports(tmp_path_factory, trained_run):
    folder = tmp_path_factory.mktemp("onnx")
    fp32 = export_onnx(trained_run, folder / "fp32", log=lambda _: None)
    int8 = export_onnx(trained_run, folder / "int8", quantize="int8", log=lambda _: None)
    return fp32, int8


def test_plain_onnxruntime_loads_it_and_agrees_with_torch(onnx_exports, trained_classifier):
    import onnxruntime

    fp32, int8 = onnx_exports
    session = onnxruntime.InferenceSession(str(fp32 / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]  # DistilBERT takes no segments
    expected = trained_classifier.predict_proba(TEXTS)
    assert np.allclose(OnnxClassifier.open(fp32).predict_scores(TEXTS), expected, atol=1e-4)
    quantized = OnnxClassifier.open(int8)
    assert quantized.precision == "int8" and quantized.predict_scores(TEXTS).shape == (3, 2)
    assert (int8 / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size
    info = json.loads((fp32 / "export.json").read_text())
    assert info["format"] == "onnx" and info["quantization"] == "none"


def test_the_graph_is_traced_with_eager_attention_and_the_model_keeps_its_own(tmp_path, trained_run):
    import onnx

    from lora_sentiment.export.engines.onnx import write_onnx
    from lora_sentiment.modeling.model import load_run_model
    from lora_sentiment.runs.run import Run

    model, tokenizer = load_run_model(Run.open(trained_run))
    own = model.config._attn_implementation
    assert own != "eager"
    write_onnx(model.eval(), tokenizer, tmp_path / "model.onnx", "none")
    ops = [node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    # SDPA spelled out guards its masked softmax with IsNaN in every layer; eager attention adds the mask
    assert "Softmax" in ops and "IsNaN" not in ops
    assert model.config._attn_implementation == own


def test_export_does_not_print_the_tracers_notes(tmp_path, trained_run):
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_onnx(trained_run, tmp_path / "fp32", log=lambda _: None)
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert not [w for w in caught if "advanced indexing" in str(w.message)]


@pytest.mark.slow  # an export and chunked predictions
def test_long_texts_in_chunks_agree_too(onnx_exports, trained_run):
    chunked = open_predictor(onnx_exports[0], long_text="chunks").predict_scores(TEXTS[-1:])
    torch_chunked = open_predictor(trained_run, long_text="chunks", precision="fp32").predict_scores(TEXTS[-1:])
    assert np.allclose(chunked, torch_chunked, atol=1e-4)


def test_predict_on_an_export_writes_the_run_columns_without_torch(tmp_path, onnx_exports, trained_run, small_csv):
    fp32, _ = onnx_exports
    from_run, from_export = tmp_path / "run.csv", tmp_path / "export.csv"
    assert (
        main(["predict", str(trained_run), "--input", str(small_csv), "--output", str(from_run), "--precision", "fp32"])
        == 0
    )
    script = (
        "import sys; from lora_sentiment.cli import main; "
        f"code = main(['predict', {str(fp32)!r}, '--input', {str(small_csv)!r}, '--output', {str(from_export)!r}, "
        "'--no-progress']); assert not {'torch', 'transformers'} & set(sys.modules), 'torch or transformers'; "
        "sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = pd.read_csv(from_run), pd.read_csv(from_export)
    assert list(a.columns) == list(b.columns) and (a.predicted_label == b.predicted_label).all()
    assert np.allclose(a.prob_Positive, b.prob_Positive, atol=1e-4)


def test_evaluate_and_serve_take_an_export(onnx_exports, small_csv, capsys):
    from fastapi.testclient import TestClient

    from lora_sentiment.export.folder import export_info
    from lora_sentiment.serving.app import create_app

    fp32, _ = onnx_exports
    assert main(["evaluate", str(fp32), "--data", str(small_csv), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["samples"] == 96 and 0 <= metrics["accuracy"] <= 1
    with TestClient(create_app(open_predictor(fp32), run_info=export_info(fp32))) as client:
        answer = client.post("/predict", json={"texts": ["Great."]}).json()["predictions"][0]
        info = client.get("/info").json()
    assert set(answer) == {"label", "label_name", "probability", "probabilities"}
    assert info["export"]["format"] == "onnx" and info["device"] == "cpu (onnxruntime)"


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json is missing"),
        (lambda f: (f / "labels.json").unlink(), "labels.json is missing"),
        (lambda f: (f / "model.onnx").write_bytes(b"not a model"), "damaged export"),
        (lambda f: (f / "export.json").write_text("{broken"), "damaged export"),
    ],
)
def test_a_damaged_export_is_one_line(tmp_path, onnx_exports, capsys, damage, needle):
    folder = tmp_path / "export"
    shutil.copytree(onnx_exports[0], folder)
    damage(folder)
    assert main(["predict", str(folder), "Some text."]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and needle in err.splitlines()[-1], err


def test_export_refusals(tmp_path, trained_run, capsys):
    assert main(["export", str(trained_run), str(tmp_path / "x"), "--quantize", "int8"]) == 2
    assert "--quantize needs --format onnx or openvino" in capsys.readouterr().err


def test_worker_processes_read_an_export_too(tmp_path, onnx_exports, small_csv):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    base = ["predict", str(onnx_exports[1]), "--input", str(small_csv), "--no-progress", "--chunk-size", "16"]
    assert main([*base, "--output", str(one)]) == 0
    assert main([*base, "--output", str(two), "--workers", "2"]) == 0
    a, b = pd.read_json(one, lines=True), pd.read_json(two, lines=True)
    assert a.id.tolist() == b.id.tolist() and (a.predicted_label == b.predicted_label).all()
