"""The benchmark's arithmetic (FLOPs checked against PyTorch's own counter) and a small end-to-end run."""

import json

import pytest
import torch

from lora_sentiment.bench.options import BenchOptions
from lora_sentiment.bench.speed import format_report, forward_flops, run_bench
from lora_sentiment.modeling.device import encoder_dims


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_distilbert"])
def test_analytic_flops_match_torch_flop_counter(request, fixture):
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        request.getfixturevalue(fixture), attn_implementation="eager"
    ).eval()
    lengths = [40, 17, 64]
    counted = 0
    for n in lengths:  # one sequence at a time: no padding, so every counted FLOP is a real token's
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=torch.randint(5, 1000, (1, n)))
        counted += counter.get_total_flops()
    assert forward_flops(model.config, lengths) == pytest.approx(counted, rel=0.02)


def test_encoder_dims_for_both_config_styles():
    from transformers import AutoConfig

    assert encoder_dims(AutoConfig.for_model("distilbert")) == (6, 768, 3072)
    assert encoder_dims(AutoConfig.for_model("bert")) == (12, 768, 3072)


@pytest.mark.slow
def test_bench_runs_side_by_side_on_a_small_workload(tmp_path, tiny_distilbert, imdb_frames):
    train, validation = imdb_frames
    train.head(48).to_parquet(tmp_path / "train.parquet")
    validation.head(24).to_parquet(tmp_path / "validation.parquet")
    options = BenchOptions(model=tiny_distilbert, data=str(tmp_path), max_length=64, distilbert_shaped=False,
                           train_samples=32, eval_samples=16, epochs=1.0)  # fmt: skip
    report = run_bench(options, log=lambda _: None)
    assert report["peak_flops"]["fp32"] > 1e9
    entry = next(v for k, v in report.items() if isinstance(v, dict) and "ratios" in v)
    for phase in ("train_baseline", "train_ours", "predict_baseline", "predict_ours"):
        assert entry[phase]["samples_per_second"] > 0 and entry[phase]["peak_rss_mb"] > 100
    assert entry["train_baseline"]["precision"] == "fp32" and entry["predict_baseline"]["precision"] == "fp32"
    assert all(ratio > 0 for ratio in entry["ratios"].values())
    assert 0 < entry["mfu"]["predict_ours"] < 1.5 and 0 < entry["mfu"]["train_ours"] < 1.5
    assert 0 <= entry["train_ours"]["accuracy"] <= 1
    assert "ours/baseline" in format_report(report)
    # The default engine, as `predict RUN` runs it in the bench's own processes: OpenVINO on every CPU class.
    default = "cpu (openvino)"
    assert entry["predict_ours"]["device"] == default
    assert f"predict ours: the default engine, {default}" in format_report(report)


@pytest.mark.slow
def test_bench_engines_measures_every_engine_side_by_side(tmp_path, trained_run, small_csv, capsys):
    """Every installed engine and the tutorial's way: steady loop and whole command, RSS, accuracy, ratios."""
    from lora_sentiment.cli import main

    out = tmp_path / "engines.json"
    assert (
        main(["bench-engines", str(trained_run), "--data", str(small_csv), "--rows", "24", "--output", str(out)]) == 0
    )
    report = json.loads(out.read_text())
    engines = ["the tutorial's way", "torch fp32", "torch", "default (first call)", "default", "onnx", "onnx int8",
               "openvino", "openvino int8"]  # fmt: skip
    assert [k for k in report if isinstance(report[k], dict) and "steady" in report[k]] == engines
    for name in engines:
        entry = report[name]
        assert entry["steady"]["samples_per_second"] > 0 and entry["whole_command"]["seconds"] > 0
        assert 0 <= entry["accuracy"] <= 1 and 0 <= entry["label_agreement_with_torch"] <= 1
        assert entry["whole_command"]["peak_rss_mb"] > 50
    assert report["the tutorial's way"]["whole_vs_tutorial"] == 1.0
    assert set(report["onnx int8"]["whole_command"]["stages"]) == {"start-up", "load", "read", "predict", "write"}
    # Without torch an export's whole command needs far less memory than the tutorial's torch process.
    assert report["onnx"]["whole_command"]["peak_rss_mb"] < report["the tutorial's way"]["whole_command"]["peak_rss_mb"]
    assert "openvino int8" in capsys.readouterr().out
    assert report["torch fp32"]["label_agreement_with_torch"] == 1.0  # the reference of the agreement column
    assert report["default"]["label_agreement_with_torch"] >= 0.95


def test_peak_rss_is_this_process_not_the_parent():
    """ru_maxrss survives fork + exec on Linux; the measurement must not report a big parent's peak."""
    import subprocess
    import sys

    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    child = "from lora_sentiment.measure import peak_rss_mb; print(peak_rss_mb())"
    measured = float(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout)
    assert measured < 250, measured
    del ballast


def test_the_tutorials_script_predicts_a_run_of_several_classes(tmp_path, tiny_runs, tiny_bert, imdb_frames):
    """bench-engines times any single-label run: the tutorial's script loads the head with the run's classes."""
    import pandas as pd

    from lora_sentiment.bench.tutorial import main

    rows = imdb_frames[1].head(12)[["text"]]
    rows.to_csv(tmp_path / "in.csv", index=False)
    script = [str(tiny_runs / "stars"), tiny_bert, str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "48"]
    assert main([*script, "4"]) == 0
    predicted = pd.read_csv(tmp_path / "out.csv")["predicted_label"]
    assert len(predicted) == 12 and predicted.between(0, 3).all()
    with pytest.raises(RuntimeError, match="size mismatch"):  # the head of 2 classes does not fit the run's 4
        main(script)


def test_bench_engines_reads_labels_as_evaluate_does(tmp_path, tiny_runs, imdb_frames):
    """The run's label column and names (or ids), a stratified sample of --rows; multi-label runs refused."""
    from conftest import stars

    from lora_sentiment import UserError
    from lora_sentiment.bench.engines import _labelled_rows, check_single_label
    from lora_sentiment.runs.run import Run

    rows = imdb_frames[1].head(60).assign(stars=lambda f: f.rating.map(stars))[["text", "label", "stars"]]
    rows.to_csv(tmp_path / "held_out.csv", index=False)
    run = Run.open(tiny_runs / "stars")
    frame = _labelled_rows(str(tmp_path / "held_out.csv"), 20, run)
    assert len(frame) == 20 and set(frame.columns) == {"text", "label"}
    names = dict(zip(rows.text, rows.stars))
    assert [run.space.names[label] for label in frame.label] == [names[text] for text in frame.text]
    check_single_label("single-label")
    with pytest.raises(UserError, match="single-label run \\(this one is multi-label; time its engines with"):
        check_single_label("multi-label")


def test_bench_checks_its_data_files_before_measuring(tmp_path):
    import pandas as pd

    from lora_sentiment import UserError
    from lora_sentiment.bench.speed import check_bench

    good = pd.DataFrame({"text": ["A fine film.", "Dull."], "label": [1, 0]})
    good.to_parquet(tmp_path / "validation.parquet")
    options = BenchOptions(data=str(tmp_path), model="m")
    for content, needle in [
        (b"not parquet", "could not read .*train.parquet as Parquet"),
        (good.rename(columns={"text": "review"}), "needs text and label columns; its columns: label, review"),
        (good.head(1), "train.parquet has 1 row\\(s\\)"),
    ]:
        if isinstance(content, bytes):
            (tmp_path / "train.parquet").write_bytes(content)
        else:
            content.to_parquet(tmp_path / "train.parquet")
        with pytest.raises(UserError, match=needle):
            check_bench(options)
    good.to_parquet(tmp_path / "train.parquet")
    assert check_bench(options)[0] == "m"


def test_the_tutorials_process_trains_the_full_last_layer(monkeypatch, tiny_bert):
    from lora_sentiment.bench.tutorial import process_like_tutorial
    from lora_sentiment.modeling import model as loader
    from lora_sentiment.training import recipe

    for module, name in ((loader, "read_first_token_only"), (recipe, "memory_callbacks")):
        monkeypatch.setattr(module, name, getattr(module, name))  # restored after the test
    tokenizer = loader.load_tokenizer(tiny_bert)
    ours = loader.load_classifier_model(tiny_bert, ["a", "b"], tokenizer=tokenizer)
    process_like_tutorial()
    tutorials = loader.load_classifier_model(tiny_bert, ["a", "b"], tokenizer=tokenizer)
    assert "forward" in ours.bert.encoder.layer[-1].__dict__  # ours: the first token only
    assert "forward" not in tutorials.bert.encoder.layer[-1].__dict__
    assert recipe.memory_callbacks() == []
