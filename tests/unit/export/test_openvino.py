"""OpenVINO export: plain OpenVINO loads it, fp32 agrees with the torch model, int8 is calibrated on texts
(the run's training data or --calibration-data), and predict/evaluate/serve take the folder without torch."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lora_sentiment.cli import main
from lora_sentiment.export.folder import ExportedClassifier
from lora_sentiment.export.writing import export_openvino
from lora_sentiment.opening import open_predictor

pytest.importorskip("openvino", reason="the openvino extra")  # installed by .ci/run: these tests run in CI

TEXTS = ["A wonderful, moving film.", "Dull and far too long.", "It was fine. " * 60]


@pytest.fixture(scope="module")
def openvino_exports(tmp_path_factory, trained_run):
    folder = tmp_path_factory.mktemp("openvino")
    fp32 = export_openvino(trained_run, folder / "fp32", log=lambda _: None)
    int8 = folder / "int8"
    # Calibrated on the run's own training data (its --data), 32 texts.
    assert main(["export", str(trained_run), str(int8), "--format", "openvino", "--quantize", "int8",
                 "--calibration-samples", "32"]) == 0  # fmt: skip
    return fp32, int8


@pytest.mark.slow
def test_plain_openvino_loads_it_and_agrees_with_torch(openvino_exports, trained_classifier):
    import openvino

    fp32, int8 = openvino_exports
    compiled = openvino.Core().compile_model(str(fp32 / "openvino_model.xml"), "CPU")
    assert [p.get_any_name() for p in compiled.inputs] == ["input_ids", "attention_mask"]
    expected = trained_classifier.predict_proba(TEXTS)
    exact = ExportedClassifier.open(fp32, precision="fp32")
    assert exact.precision == "fp32" and exact.device == "cpu (openvino)"
    np.testing.assert_allclose(exact.predict_scores(TEXTS), expected, atol=1e-4)
    default = ExportedClassifier.open(fp32)  # bf16 where the CPU has it
    np.testing.assert_allclose(default.predict_scores(TEXTS), expected, atol=0.05)
    quantized = ExportedClassifier.open(int8)
    assert quantized.precision == "int8" and quantized.predict_scores(TEXTS).shape == (3, 2)
    assert (int8 / "openvino_model.bin").stat().st_size < (fp32 / "openvino_model.bin").stat().st_size / 2
    info = json.loads((int8 / "export.json").read_text())
    assert info["format"] == "openvino" and info["quantization"] == "int8"


def test_attention_is_one_fused_op_per_layer(openvino_exports, trained_classifier):
    """Converted from torch, not through ONNX: each layer's attention stays OpenVINO's ScaledDotProductAttention
    (one fused kernel), in the int8 model too, where the ONNX graph spelled it out in MatMul / Softmax / Select."""
    import openvino

    config = trained_classifier.model.config
    layers = getattr(config, "n_layers", None) or config.num_hidden_layers
    for folder in openvino_exports:
        ops = [op.get_type_name() for op in openvino.Core().read_model(str(folder / "openvino_model.xml")).get_ops()]
        assert ops.count("ScaledDotProductAttention") == layers
        assert "Softmax" not in ops and "IsNaN" not in ops


def test_predict_evaluate_and_serve_take_it_without_torch(tmp_path, openvino_exports, small_csv, capsys):
    from fastapi.testclient import TestClient

    from lora_sentiment.export.folder import export_info
    from lora_sentiment.serving.app import create_app

    fp32, int8 = openvino_exports
    out = tmp_path / "out.csv"
    script = (
        "import sys; from lora_sentiment.cli import main; "
        f"code = main(['predict', {str(int8)!r}, '--input', {str(small_csv)!r}, '--output', {str(out)!r}, "
        "'--no-progress']); assert not {'torch', 'transformers'} & set(sys.modules), 'torch or transformers'; "
        "sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    written = pd.read_csv(out)
    assert {"predicted_label", "predicted_label_name", "probability", "prob_Positive"} <= set(written.columns)
    assert len(written) == 96
    assert main(["evaluate", str(fp32), "--data", str(small_csv), "--json", "--precision", "fp32"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 96
    served = open_predictor(int8)
    assert served.session._request is None  # compiled on first use
    with TestClient(create_app(served, run_info=export_info(int8))) as client:
        assert served.session._request is not None  # by the server's start, not by its first client
        assert client.post("/predict", json={"texts": ["Great."]}).status_code == 200
        assert client.get("/info").json()["export"]["format"] == "openvino"


@pytest.mark.slow
def test_calibration_data_flag(tmp_path, trained_run, small_csv, capsys):
    out = tmp_path / "int8"
    base = ["export", str(trained_run), str(out), "--format", "openvino"]
    assert main([*base, "--calibration-data", str(small_csv)]) == 2  # only int8 is calibrated
    assert "--calibration-data is for --format openvino --quantize int8" in capsys.readouterr().err
    assert main([*base, "--quantize", "int8", "--calibration-data", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.csv" in err and "--calibration-data" in err and len(err.splitlines()) == 1
    texts_only = tmp_path / "texts.csv"
    pd.read_csv(small_csv)[["text"]].head(20).to_csv(texts_only, index=False)
    assert main([*base, "--quantize", "int8", "--calibration-data", str(texts_only)]) == 0
    assert open_predictor(out).predict(TEXTS)[0].label_name in ("Negative", "Positive")


@pytest.mark.slow  # two int8 exports
def test_int8_scope_flag(tmp_path, trained_run, capsys):
    """`--int8-scope no-output-projections` keeps each layer's output projections in float (NNCF's ignored scope);
    it means nothing without OpenVINO int8 and is refused there in one line."""
    import openvino

    out = tmp_path / "int8"
    base = ["export", str(trained_run), str(out), "--format", "openvino", "--int8-scope", "no-output-projections"]
    onnx = ["export", str(trained_run), str(out), "--format", "onnx", "--quantize", "int8", *base[5:]]
    assert main(base) == 2 and main(onnx) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lora-sentiment: error: --int8-scope is for --format openvino --quantize int8"] * 2
    assert main([*base, "--quantize", "int8", "--calibration-samples", "16"]) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["quantization"] == "int8" and info["int8_scope"] == "no-output-projections"
    model = openvino.Core().read_model(str(out / "openvino_model.xml"))
    quantized = {op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "FakeQuantize"}
    inputs_of = lambda name: {  # noqa: E731
        port.get_source_output().get_node().get_friendly_name()
        for op in model.get_ops() if op.get_friendly_name() == name for port in op.inputs()
    }  # fmt: skip
    projections = [op.get_friendly_name() for op in model.get_ops()
                   if op.get_type_name() == "MatMul" and ".out_lin/" in op.get_friendly_name()]  # fmt: skip
    query = [op.get_friendly_name() for op in model.get_ops()
             if op.get_type_name() == "MatMul" and ".q_lin/" in op.get_friendly_name()]  # fmt: skip
    assert projections and query
    assert all(not (inputs_of(name) & quantized) for name in projections)  # float inputs
    assert all(inputs_of(name) & quantized for name in query)  # int8 inputs


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda f: (f / "openvino_model.xml").unlink(), "openvino_model.xml is missing"),
        (lambda f: (f / "openvino_model.xml").write_text("<net>broken"), "damaged export"),
        (lambda f: (f / "export.json").write_text('{"format": "tflite"}'), "damaged export"),
    ],
)
def test_a_damaged_openvino_export_is_one_line(tmp_path, openvino_exports, capsys, damage, needle):
    folder = tmp_path / "export"
    shutil.copytree(openvino_exports[0], folder)
    damage(folder)
    assert main(["predict", str(folder), "Some text."]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and needle in err.splitlines()[-1], err


def test_openvino_precision_follows_the_cpu_class_and_its_caps(openvino_exports, monkeypatch):
    """OpenVINO ignores ONEDNN_MAX_CPU_ISA; the session asks our classifier too, so a capped machine stands in for
    a class without bf16 units (f32), and a machine without bf16 units never gets bf16 from `auto`."""
    from lora_sentiment.export.engines.openvino import OpenVinoSession
    from lora_sentiment.modeling import cpu

    fp32, _ = openvino_exports
    model_file = fp32 / "openvino_model.xml"
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ("recorded", ("avx2", "avx512f", "avx512_vnni", "avx512_bf16")))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    assert OpenVinoSession(model_file, 1, "auto").compute == "fp32"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ("recorded", ("avx2", "avx512f", "avx512_vnni")))
    assert OpenVinoSession(model_file, 1, "auto").compute == "fp32"
    assert OpenVinoSession(model_file, 1, "fp32").compute == "fp32"


@pytest.mark.slow  # converts MiniLM, two processes
def test_a_session_that_ran_batches_side_by_side_is_freed_without_hanging(tmp_path, minilm_path):
    """Freeing the throughput-compiled model after a job, again and again in one process (with torch loaded, as in
    the int8 check), on MiniLM converted as the engine converts it: with AsyncInferQueue's Python callback this
    hung in every one of 6 such processes (the stream threads waited for the GIL the freeing thread held)."""
    import openvino
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lora_sentiment.export.engines.onnx import logits_module, trace_inputs

    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2).eval()
    names, sample = trace_inputs(model, AutoTokenizer.from_pretrained(minilm_path))
    with torch.no_grad():
        converted = openvino.convert_model(
            logits_module(model, names), example_input={n: sample[n] for n in names},
            input=[(n, openvino.PartialShape([-1, -1]), openvino.Type.i64) for n in names],
        )  # fmt: skip
    openvino.save_model(converted, str(tmp_path / "openvino_model.xml"), compress_to_fp16=False)
    script = (
        "import gc, numpy as np, torch; from lora_sentiment.export.engines.openvino import OpenVinoSession\n"
        "rng = np.random.default_rng(0)\n"
        "ids = rng.integers(1000, 20000, (32, 128))\n"
        f"feeds = {{n: ids if n == 'input_ids' else np.zeros_like(ids) + (n == 'attention_mask') for n in {names!r}}}\n"
        "batches = [feeds] * 7\n"
        "for _ in range(3):\n"
        f"    session = OpenVinoSession({str(tmp_path / 'openvino_model.xml')!r}, 2, None)\n"
        "    assert len(session.map(batches)) == 7 and session._streams is not None\n"
        "    del session; gc.collect()\n"
    )
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]


def test_many_batches_run_side_by_side_and_come_back_in_order(openvino_exports, monkeypatch):
    """A job's batches go to a second compile on OpenVINO's throughput streams; each batch's logits are the ones
    one request gives it, in the job's order (batches of different lengths finish out of order), and a single
    batch or a single thread stays on the one latency request."""
    fp32, _ = openvino_exports
    texts = [f"{'Great. ' * (i % 7 + 1)}Film number {i} was {'good' if i % 2 else 'bad'}." for i in range(40)]
    side_by_side = ExportedClassifier.open(fp32, precision="fp32", threads=2)
    one_request = ExportedClassifier.open(fp32, precision="fp32", threads=1)
    expected = one_request.predict_scores(texts, batch_size=4)
    assert one_request.session._streams is None
    np.testing.assert_allclose(side_by_side.predict_scores(texts, batch_size=4), expected, atol=1e-6)
    assert side_by_side.session._streams is not None  # the throughput compile ran the 10 batches
    assert side_by_side.session._request is None  # and the one-request model was never compiled
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:  # callers on threads share the session's requests, one job at a time
        jobs = [pool.submit(side_by_side.predict_scores, texts, 4) for _ in range(8)]
        for job in jobs:
            np.testing.assert_allclose(job.result(), expected, atol=1e-6)
    monkeypatch.setattr("lora_sentiment.export.folder.MAP_BATCHES", 3)  # groups of 3, 3, 3 and a last one alone
    np.testing.assert_allclose(side_by_side.predict_scores(texts, batch_size=4), expected, atol=1e-6)
    single = ExportedClassifier.open(fp32, precision="fp32", threads=2)
    assert single.session._request is None and single.session._streams is None  # opening compiles nothing
    np.testing.assert_allclose(single.predict_scores(texts[:4], batch_size=4), expected[:4], atol=1e-6)
    assert single.session._streams is None
