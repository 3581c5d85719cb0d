"""The CLI end to end on tiny models: train, predict, evaluate, artifacts, and bad input."""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lora_sentiment.cli import main

FAST = [
    "--max-length",
    "64",
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--learning-rate",
    "1e-3",
    "--eval-batch-size",
    "32",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_distilbert, small_csv) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(
        [
            "train",
            "--model",
            tiny_distilbert,
            "--data",
            str(small_csv),
            "--output-dir",
            str(out),
            *FAST,
            "--examples",
            "Great fun.",
            "Dull, dull, dull.",
        ]
    )
    assert code == 0
    return out


def test_train_writes_a_standard_run_directory(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "training_config.yaml",
        "labels.json",
        "metrics.json",
        "README.md",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert "checkpoints" not in names and not any(p.name.endswith(".partial") for p in tiny_run.parent.iterdir())
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [1.0, 2.0]
    final = metrics["final"]
    assert {"accuracy", "f1", "precision", "recall", "roc_auc", "confusion_matrix", "loss"} <= set(final)
    assert sum(map(sum, final["confusion_matrix"])) == final["samples"]
    assert [r["text"] for r in metrics["examples"]["before"]] == ["Great fun.", "Dull, dull, dull."]
    adapter = json.loads((tiny_run / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q_lin", "v_lin"] and adapter["task_type"] == "SEQ_CLS"
    assert {"pre_classifier", "classifier"} <= set(adapter["modules_to_save"])
    card = (tiny_run / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: peft") and "Confusion matrix" in card
    assert json.loads((tiny_run / "labels.json").read_text())["label_names"] == ["Negative", "Positive"]


def test_plain_peft_loads_the_adapter_and_agrees(tiny_run, tiny_distilbert):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lora_sentiment import load_classifier

    tokenizer = AutoTokenizer.from_pretrained(tiny_run)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_distilbert, num_labels=2)
    model = PeftModel.from_pretrained(base, tiny_run).eval()
    texts = ["A wonderful, moving film.", "Terrible acting and a boring plot."]
    with torch.no_grad():
        expected = torch.softmax(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits, -1).numpy()
    ours = load_classifier(tiny_run, precision="fp32").predict_proba(texts)
    assert ours == pytest.approx(expected, abs=1e-5)


def test_predict_and_evaluate_commands(tiny_run, small_csv, capsys):
    assert main(["predict", str(tiny_run), "--text", "Loved it.", "Hated it. ☹", "--json"]) == 0
    printed = capsys.readouterr().out
    lines = [json.loads(line) for line in printed.splitlines()]
    assert [line["text"] for line in lines] == ["Loved it.", "Hated it. ☹"] and "☹" in printed  # as typed
    assert all(
        line["label_name"] in {"Negative", "Positive"} and abs(sum(line["probabilities"].values()) - 1) < 1e-5
        for line in lines
    )
    assert main(["evaluate", str(tiny_run), "--data", str(small_csv), "--json", "--precision", "fp32"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["samples"] == 96 and 0 <= metrics["accuracy"] <= 1
    low, high = metrics["intervals"]["accuracy"]
    assert low <= metrics["accuracy"] <= high
    assert set(metrics["intervals"]) == {"accuracy", "f1", "f1_macro", "precision", "recall", "roc_auc"}
    assert main(["evaluate", str(tiny_run), "--data", str(small_csv), "--precision", "fp32"]) == 0
    table = capsys.readouterr().out
    assert f"accuracy: {metrics['accuracy']:.4f} ({low:.4f}-{high:.4f})" in table and "95 % intervals" in table


def test_evaluate_two_runs_says_whether_their_difference_is_beyond_the_noise(tiny_run, small_csv, capsys):
    argv = ["evaluate", f"a={tiny_run}", f"b={tiny_run}", "--data", str(small_csv), "--precision", "fp32"]
    assert main([*argv, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    comparison = results["b"]["comparison_with_a"]  # one run twice: no difference, within the noise
    assert comparison["difference"] == 0 and not comparison["beyond_noise"] and comparison["texts"] == 96
    assert main(argv) == 0
    assert "b vs a on the same 96 texts: accuracy +0.0000" in capsys.readouterr().out


def test_evaluate_on_skewed_texts_leads_with_macro_f1(tiny_run, small_csv, tmp_path, capsys):
    import pandas as pd

    rows = pd.read_csv(small_csv)
    skewed = pd.concat([rows[rows.label == 0], rows[rows.label == 1].head(3)])  # 3 of 51 positive
    skewed.to_csv(tmp_path / "skewed.csv", index=False)
    argv = ["evaluate", str(tiny_run), "--data", str(tmp_path / "skewed.csv"), "--precision", "fp32"]
    assert main(argv) == 0
    assert [line.split(":")[0].strip() for line in capsys.readouterr().out.splitlines()[:2]] == ["f1_macro", "accuracy"]
    assert main([*argv[:2], f"b={tiny_run}", *argv[2:]]) == 0
    out = capsys.readouterr().out
    assert out.split()[1:3] == ["f1_macro", "accuracy"] and "on the same 51 texts: f1_macro +0.0000" in out


def test_the_0_2_form_of_predict_still_works_with_a_note(tiny_run, capsys):
    assert main(["predict", str(tiny_run), "Loved it.", "Hated it.", "--json"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["text"] for line in captured.out.splitlines()] == ["Loved it.", "Hated it."]
    assert "`predict RUN TEXT...` is deprecated; use `predict RUN --text TEXT...`" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--text", "A wonderful film.", "Dreadful."],
        ["--text", "A wonderful film.", "Dreadful.", "--json"],
        ["--json", "A wonderful film.", "Dreadful."],  # the 0.2 form, flags first: argparse alone refused it
        ["--text", "A wonderful film.", "--json", "--text", "Dreadful."],  # each --text adds (it kept the last)
    ],
)
def test_flags_and_texts_in_any_order(tiny_run, capsys, argv):
    assert main(["predict", str(tiny_run), *argv]) == 0
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == [
        "A wonderful film.",
        "Dreadful.",
    ]


def test_a_run_written_after_the_texts_is_named_in_the_error(tiny_run, capsys):
    """--text takes every value up to the next flag: the run after it was read as a text, and argparse said only
    that RUN was required."""
    with pytest.raises(SystemExit) as exited:
        main(["predict", "--text", "A wonderful film.", "Dreadful.", str(tiny_run)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "required: RUN; put it first (predict RUN --text TEXT...)" in err


def test_a_blank_text_is_refused_before_the_run_loads(tiny_run, capsys):
    """`--text "$REVIEW"` with the variable unset predicted the empty string as if it were a review."""
    assert main(["predict", str(tiny_run), "--text", "Loved it.", "  "]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--text: text 2 is empty" in err


def test_several_runs_predict_the_same_texts_side_by_side(tiny_run, capsys):
    argv = ["predict", f"a={tiny_run}", f"b={tiny_run}", "--text", "Loved it.", "--precision", "fp32", "--json"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["model"] for line in lines] == ["a", "b"]
    assert lines[0]["probabilities"] == pytest.approx(lines[1]["probabilities"], abs=1e-6)  # one run, twice
    assert main(["predict", str(tiny_run), "--text", "Loved it.", "--input", "x.csv"]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--text", "x", "--stride", "0"], "--stride: Input should be greater than 0"),
        (["--text", "x", "--precision", "fp64"], "invalid choice: 'fp64'"),
        (["--input", "x.csv", "--chunk-size", "0"], "--chunk-size: Input should be greater than 0"),
        (["--input", "x.csv", "--ray-address", "auto"], "--ray-address needs --runner ray"),
    ],
)
def test_predict_options_are_checked_before_any_work(tiny_run, capsys, argv, needle):
    with pytest.raises(SystemExit) if "invalid choice" in needle else contextlib.nullcontext():
        assert main(["predict", str(tiny_run), *argv]) == 2
    assert needle in capsys.readouterr().err


def test_export_names_the_engines_it_knows(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run), str(tmp_path / "out"), "--format", "tflite"]) == 2
    assert "unknown --format 'tflite'; choose one of: transformers, onnx, openvino" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_takes_its_folder_as_train_does_too(tiny_run, tmp_path, capsys):
    """--output-dir, as train, tune and audit name theirs; one folder, not two, and not none."""
    assert main(["export", str(tiny_run), "--format", "onnx"]) == 2
    assert "export needs the folder to write: lora-sentiment export RUN OUT_DIR" in capsys.readouterr().err
    assert main(["export", str(tiny_run), str(tmp_path / "a"), "--output-dir", str(tmp_path / "b")]) == 2
    assert "export got two folders" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert main(["export", str(tiny_run), "--output-dir", str(tmp_path / "out"), "--format", "onnx"]) == 0
    assert (tmp_path / "out" / "model.onnx").exists()


@pytest.mark.slow  # two training runs
def test_refuses_to_overwrite_and_replaces_with_overwrite(tiny_run, tiny_distilbert, small_csv, capsys):
    before = (tiny_run / "adapter_model.safetensors").read_bytes()
    args = [
        "train",
        "--model",
        tiny_distilbert,
        "--data",
        str(small_csv),
        "--output-dir",
        str(tiny_run),
        *FAST,
        "--epochs",
        "1",
    ]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tiny_run / "adapter_model.safetensors").read_bytes() == before
    assert main([*args, "--overwrite", "--seed", "3"]) == 0
    assert (tiny_run / "adapter_model.safetensors").read_bytes() != before
    assert len(json.loads((tiny_run / "metrics.json").read_text())["history"]) == 1


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--data", "missing.csv"], "not found"),
        (["--text-column", "review"], "columns are: id, text, label"),
        (["--lora-targets", "query"], "match no layer"),
        (["--lora-r", "0"], "--lora-r"),
        (
            ["--seed", "-3"],
            "--seed: Input should be greater than or equal to 0",
        ),  # was "cannot carve an evaluation split"
        (["--config", "nope.yaml"], "config file not found"),
        (["--model", "/no/such/model"], "--model"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, tiny_distilbert, small_csv, capsys, extra, needle
):
    out = tmp_path / "out"
    code = main(
        ["train", "--model", tiny_distilbert, "--data", str(small_csv), "--output-dir", str(out), *FAST, *extra]
    )
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # progress bars of model loading may come before it
    assert code == 2
    assert needle in last and last.startswith("lora-sentiment: error:") and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_predict_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "text"]) == 2
    assert "not a finished run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_hub_model_without_network_fails_fast_in_a_real_process(tmp_path, small_csv):
    """A real subprocess: no traceback, exit 2, within seconds, even without HF_HUB_OFFLINE."""
    import os
    import time

    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | {"HF_ENDPOINT": "http://127.0.0.1:9"}
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lora_sentiment",
            "train",
            "--model",
            "distilbert-base-uncased",
            "--data",
            str(small_csv),
            "--output-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "cannot reach the Hugging Face Hub" in result.stderr and "--model" in result.stderr
    assert time.monotonic() - start < 60
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # trains and reloads a GPT-2
def test_pad_token_path_trains_saves_and_reloads(tmp_path, tiny_gpt2_no_pad, small_csv):
    """A tokenizer without a pad token: [PAD] is added, embeddings resized, and the run reloads identically."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lora_sentiment import TrainConfig, load_classifier, train

    config = TrainConfig(
        model=tiny_gpt2_no_pad,
        data=str(small_csv),
        lora_targets=["c_attn"],
        output_dir=str(tmp_path / "gpt2"),
        max_length=64,
        epochs=1,
        batch_size=8,
        precision="fp32",
    )
    result = train(config, log=lambda _: None)
    assert result.metrics["train"]["added_pad_token"]
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    assert tokenizer.pad_token == "[PAD]"
    base = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2_no_pad, num_labels=2)
    base.resize_token_embeddings(len(tokenizer))
    base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, result.output_dir).eval()
    texts = ["short", "a somewhat longer review of a film"]
    with torch.no_grad():
        expected = torch.softmax(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits, -1).numpy()
    assert load_classifier(result.output_dir, precision="fp32").predict_proba(texts) == pytest.approx(
        expected, abs=1e-5
    )


@pytest.mark.slow  # two training runs
def test_roberta_and_multiclass_through_the_api(tmp_path, tiny_roberta, small_csv):
    import pandas as pd

    from lora_sentiment import TrainConfig, load_classifier, train

    frame = pd.read_csv(small_csv)
    frame["stars"] = ["low", "mid", "high"] * (len(frame) // 3)
    data = tmp_path / "three.jsonl"
    frame[["text", "stars"]].to_json(data, orient="records", lines=True)
    result = train(
        TrainConfig(
            model=tiny_roberta,
            data=str(data),
            label_column="stars",
            output_dir=str(tmp_path / "r"),
            max_length=512,
            epochs=1,
            batch_size=8,
        ),
        log=lambda _: None,
    )
    assert result.label_names == ["high", "low", "mid"]
    config = (result.output_dir / "training_config.yaml").read_text()
    assert "max_length: 126" in config  # clipped to the model's positions
    assert "- query" in config and "- value" in config
    predictions = load_classifier(result.output_dir).predict(["Some text."])
    assert predictions[0].label_name in {"high", "low", "mid"} and len(predictions[0].probabilities) == 3


def test_early_stopping_and_best_metric(tmp_path, tiny_distilbert, small_csv):
    """With a learning rate too small to change anything, accuracy never improves: patience 1 stops after epoch 2."""
    from lora_sentiment import TrainConfig, train

    config = TrainConfig(
        model=tiny_distilbert,
        data=str(small_csv),
        output_dir=str(tmp_path / "es"),
        max_length=32,
        epochs=6,
        batch_size=16,
        learning_rate=1e-12,
        warmup_ratio=0,
        early_stopping_patience=1,
        metric_for_best_model="accuracy",
        precision="fp32",
    )
    result = train(config, log=lambda _: None)
    assert [row["epoch"] for row in result.metrics["history"]] == [1.0, 2.0]
    assert result.metrics["final"]["epoch"] == 1.0  # the first of equal scores stays the best


@pytest.mark.slow  # a training run
def test_auto_trains_non_integer_scores_as_regression_and_says_so(tmp_path, tiny_distilbert, capsys):
    """Ratings divided by 10 (eight distinct values): no class ids, so --problem-type auto reads a number."""
    rows = "".join(f"review {i} {'great' if i % 2 else 'bad'},{(i % 8 + 3) / 10}\n" for i in range(40))
    (tmp_path / "scores.csv").write_text("text,label\n" + rows)
    argv = ["train", "--model", tiny_distilbert, "--data", str(tmp_path / "scores.csv"), "--output-dir",
            str(tmp_path / "run"), "--max-length", "32", "--epochs", "1"]  # fmt: skip
    assert main(argv) == 0
    assert "Problem type: regression, as the labels are numbers that are not all integers" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "labels.json").read_text())["problem_type"] == "regression"
