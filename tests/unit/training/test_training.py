"""training.py: the pieces of train() — the resolved config, the Trainer's arguments, the history and result."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lora_sentiment.config import TrainConfig
from lora_sentiment.modeling.model import load_classifier_model, load_tokenizer, resolve_config
from lora_sentiment.runs.run import Run
from lora_sentiment.runs.summary import summary
from lora_sentiment.training.recipe import train
from lora_sentiment.training.report import epoch_history
from lora_sentiment.training.schedule import plan
from lora_sentiment.training.trainer import training_arguments


def test_resolve_config_is_the_one_place_what_runs_is_decided(tiny_distilbert):
    requested = TrainConfig(model=tiny_distilbert, max_length=4096, resume=True)
    tokenizer = load_tokenizer(tiny_distilbert)
    model = load_classifier_model(tiny_distilbert, ["a", "b"], tokenizer=tokenizer)
    messages = []
    resolved = resolve_config(requested, model, tokenizer, messages.append)
    assert resolved.max_length == 128 and resolved.lora_targets == ["q_lin", "v_lin"] and resolved.resume is False
    assert resolved.problem_type == "single-label" and resolved.metric_for_best_model == "calibrated_loss"
    assert requested.max_length == 4096 and requested.lora_targets is None  # what was asked stays as asked
    assert requested.problem_type == "auto" and requested.metric_for_best_model == "auto"
    assert messages == ["--max-length 4096 is above this model's maximum; using 128."]


def test_training_arguments_follow_the_config(tmp_path):
    config = TrainConfig(batch_size=8, gradient_accumulation_steps=2, epochs=2, group_by_length=False, seed=3)
    args = training_arguments(config, plan(config, 160, 400), work_dir=tmp_path, precision="bf16")
    assert args.per_device_train_batch_size == 8 and args.gradient_accumulation_steps == 2
    assert args.per_device_eval_batch_size == 16  # --eval-batch-size auto on a CPU
    asked = config.model_copy(update={"eval_batch_size": 40})
    assert training_arguments(asked, plan(asked, 160, 400), tmp_path, "bf16").per_device_eval_batch_size == 40
    assert args.logging_steps == 2  # 10 optimizer steps per epoch, logged 5 times
    many = config.model_copy(update={"epochs": 36.0, "batch_size": 16, "gradient_accumulation_steps": 1})
    short = plan(many, 48, 299)  # 3 steps an epoch: not every one of the 108 steps logged
    assert short.steps == 108 and training_arguments(many, short, tmp_path, "fp32").logging_steps == 5
    assert args.bf16 and not args.fp16 and args.seed == 3 and args.train_sampling_strategy == "random"
    assert args.eval_strategy == "epoch" and args.load_best_model_at_end
    for metric, higher_is_better in (
        ("loss", False),
        ("calibrated_loss", False),
        ("f1_macro", True),
        ("mae", False),
        ("spearman", True),
    ):
        resolved = config.model_copy(update={"metric_for_best_model": metric})
        args = training_arguments(resolved, plan(resolved, 160, 400), work_dir=tmp_path, precision="fp32")
        assert args.metric_for_best_model == metric and args.greater_is_better is higher_is_better


def test_epoch_history_pairs_each_evaluation_with_its_mean_training_loss():
    log = [
        {"loss": 0.8, "epoch": 0.5, "step": 1},
        {"loss": 0.6, "epoch": 1.0, "step": 2},
        {"eval_loss": 0.5, "eval_accuracy": 0.7, "eval_runtime": 1.0, "epoch": 1.0, "step": 2},
        {"eval_loss": 0.4, "eval_accuracy": 0.8, "epoch": 2.0, "step": 4},
    ]
    assert epoch_history(log) == [
        {"epoch": 1.0, "step": 2, "train_loss": pytest.approx(0.7), "loss": 0.5, "accuracy": 0.7},
        {"epoch": 2.0, "step": 4, "train_loss": None, "loss": 0.4, "accuracy": 0.8},
    ]


def test_train_result_and_the_saved_config(tmp_path, tiny_distilbert, small_csv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(
        model=tiny_distilbert, data=str(small_csv), output_dir="run", max_length=32, epochs=1, batch_size=16,
        precision="fp32", examples=["Fine."],
    )  # fmt: skip
    result = train(config, log=lambda _: None)
    assert result.output_dir == Path("run") and result.label_names == ["Negative", "Positive"]
    assert [row["text"] for row in result.before] == [row["text"] for row in result.after] == ["Fine."]
    assert result.metrics.train.train_samples == 76 and result.metrics.final.samples == 20
    saved = (tmp_path / "run" / "training_config.yaml").read_text()
    assert "resume: false" in saved and "lora_targets:\n- q_lin\n- v_lin" in saved
    baseline = result.metrics.baseline
    assert baseline["model"] == "TF-IDF + logistic regression" and baseline["samples"] == 20
    assert 0 <= baseline["accuracy"] <= 1 and baseline["train_samples"] == 76 and baseline["seconds"] < 30
    card = (tmp_path / "run" / "README.md").read_text()
    assert "The plain baseline on the same split, TF-IDF + logistic regression" in card
    assert "This run vs the baseline on the same 20 texts: accuracy" in card and "(paired bootstrap)" in card
    assert "(95 % intervals, bootstrap over the texts)" in card
    assert result.metrics.train.kept == "best" and "On 20 evaluation texts (best epoch 1 by eval " in card


def test_a_fixed_schedule_says_it_kept_the_last_epoch_not_the_best(tmp_path, tiny_distilbert, small_csv):
    """20 evaluation texts are too few to choose epochs on, so `--epochs auto` keeps the last state: the card said
    "best epoch N by eval calibrated_loss" of it, which it was not."""
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "run"), max_length=32,
                         precision="fp32", examples=["Fine."])  # fmt: skip
    result = train(config, log=lambda _: None)
    card = (tmp_path / "run" / "README.md").read_text()
    assert result.metrics.train.kept == "last", result.metrics.train
    epoch = f"{result.metrics.final.epoch:g}"
    assert f"On 20 evaluation texts (the last epoch, {epoch}, kept: the schedule was fixed, as 20 evaluation" in card
    assert "best epoch" not in card


def test_runs_inside_other_commands_print_no_step_lines_and_no_empty_example_tables(
    tmp_path, tiny_distilbert, small_csv, capsys, monkeypatch
):
    """A fold of `audit` or `--folds`, a trial of `tune`: no examples asked, no Trainer dicts on stdout (five folds on
    60 texts printed 486 of them, and two headers over nothing each). Progress bars only where someone watches:
    stderr here is no terminal, so none."""
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "run"), max_length=32,
                         epochs=1, batch_size=16, precision="fp32", baseline="none", examples=[])  # fmt: skip
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config, log=messages.append, step_lines=False)
    # nor, from Python (the CLI hides FutureWarnings), peft's call of a deprecated transformers property
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    printed = capsys.readouterr()
    assert "{'loss'" not in printed.out and "it/s]" not in printed.err and "s/it]" not in printed.err
    assert not any("predictions:" in m for m in messages)
    asked = config.model_copy(update={"overwrite": True, "examples": ["Fine."]})
    train(asked, log=messages.append)  # `train` itself: the Trainer's lines, as in the tutorial
    printed = capsys.readouterr()
    assert "{'loss'" in printed.out and "it/s]" not in printed.err and "s/it]" not in printed.err
    assert "Tokenizing" not in printed.err
    assert sum("model predictions:" in m for m in messages) == 2
    from lora_sentiment.training import trainer

    monkeypatch.setattr(trainer, "bars_shown", lambda: True)  # a terminal: the bars, and still the lines
    train(asked, log=messages.append)
    printed = capsys.readouterr()
    assert "{'loss'" in printed.out and ("it/s]" in printed.err or "s/it]" in printed.err)


def test_no_baseline_when_asked(tmp_path, tiny_distilbert, small_csv):
    settings = dict(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "run"), max_length=32,
                    epochs=1, precision="fp32", baseline="none", examples=["Fine."])  # fmt: skip
    messages = []
    result = train(**settings, log=messages.append)  # the Python API takes TrainConfig's fields as keywords too
    assert result.metrics.baseline is None and not any("Baseline" in m for m in messages)
    assert result.output_dir == tmp_path / "run"


def test_train_takes_a_config_a_dict_or_keywords_and_refuses_anything_else():
    """A dict failed with "'dict' object has no attribute 'model'" from inside training."""
    from pydantic import ValidationError

    from lora_sentiment.training.recipe import train_config

    given = TrainConfig(data="reviews.csv", lora_r=4)
    assert train_config(given) is given
    assert train_config({"data": "reviews.csv", "lora_r": 4}) == given
    assert train_config(None, {"data": "reviews.csv", "lora_r": 4}) == given
    assert train_config(given, {"lora_r": 16}) == TrainConfig(data="reviews.csv", lora_r=16)
    with pytest.raises(ValidationError, match="lora_rank"):
        train_config({"data": "reviews.csv", "lora_rank": 4})
    with pytest.raises(TypeError, match="config must be a TrainConfig or a dict of its fields, not str"):
        train("reviews.csv")


def test_evaluation_texts_also_in_training_are_reported_where_the_scores_are(tmp_path, tiny_distilbert, small_csv):
    rows = pd.read_csv(small_csv)
    leaked = rows.head(3).assign(text=lambda d: d.text.str.upper() + "<br />")  # the same texts once normalised
    evaluation = tmp_path / "heldout.csv"
    pd.concat([leaked, rows.tail(1).assign(text="An unseen review of a film.")]).to_csv(evaluation, index=False)
    config = TrainConfig(
        model=tiny_distilbert, data=str(small_csv), eval_data=str(evaluation), output_dir=str(tmp_path / "run"),
        max_length=32, epochs=1, precision="fp32", baseline="none", examples=["Fine."],
    )  # fmt: skip
    messages = []
    result = train(config, log=messages.append)
    warning = "Warning: 3 of the 4 evaluation texts are also training texts"
    assert sum(m.startswith(warning) for m in messages) == 1
    assert result.metrics.overlap == {"evaluation_texts": 4, "in_training": 3, "short": 0}
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["overlap"]["in_training"] == 3
    assert "3 of the 4 evaluation texts are also training texts" in (tmp_path / "run" / "README.md").read_text()
    run = Run.open(tmp_path / "run")
    assert warning in summary(run.config, run.space, run.metrics)


def test_heads_start_at_the_training_labels(tiny_distilbert):
    from lora_sentiment.modeling.model import output_start, start_output_at
    from lora_sentiment.problems.space import LabelSpace

    tags = LabelSpace("multi-label", ["a", "b"])
    start = output_start(tags, np.array([[1, 0], [0, 0], [0, 0], [1, 1]]))
    assert np.allclose(start, [0.0, np.log(0.25 / 0.75)])  # tag a on half the texts, b on a quarter
    value = output_start(LabelSpace("regression", ["rating"]), np.array([2.0, 4.0, 9.0]))
    assert np.allclose(value, [5.0])
    assert output_start(LabelSpace("single-label", ["x", "y"]), np.array([0, 1])) is None
    tokenizer = load_tokenizer(tiny_distilbert)
    model = load_classifier_model(tiny_distilbert, LabelSpace("regression", ["rating"]), tokenizer=tokenizer)
    start_output_at(model, value)
    assert float(model.classifier.bias) == 5.0 and model.config.problem_type == "regression"


@pytest.mark.slow
def test_evaluation_inside_training_uses_sdpa_where_training_uses_eager(tmp_path, tiny_bert, small_csv, monkeypatch):
    """--attention auto trains small-head models in bf16 on a CPU with eager attention (a faster backward);
    evaluation has no backward, so it runs with SDPA, and training goes back to eager after it. --attention eager
    stays. In fp32 auto trains with SDPA throughout."""
    from transformers import Trainer

    seen, stepped = [], set()
    original, original_step = Trainer.evaluate, Trainer.training_step

    def spy(self, *args, **kwargs):
        seen.append(self.model.get_base_model().config._attn_implementation)
        return original(self, *args, **kwargs)

    def step_spy(self, model, *args, **kwargs):
        stepped.add(self.model.get_base_model().config._attn_implementation)
        return original_step(self, model, *args, **kwargs)

    monkeypatch.setattr(Trainer, "evaluate", spy)
    monkeypatch.setattr(Trainer, "training_step", step_spy)
    common = dict(model=tiny_bert, data=str(small_csv), max_length=64, epochs=2, batch_size=16, baseline="none",
                  precision="bf16")  # fmt: skip
    result = train(TrainConfig(**common, output_dir=str(tmp_path / "auto")), log=lambda _: None)
    assert seen == ["sdpa", "sdpa"] and stepped == {"eager"}  # epoch 2 trained with eager again
    assert set(result.seconds) == {"data", "baseline", "model", "train", "evaluate", "report", "save"}
    assert result.seconds["evaluate"] > 0 and result.seconds["train"] > 0
    seen.clear()
    train(TrainConfig(**common, attention="eager", output_dir=str(tmp_path / "eager")), log=lambda _: None)
    assert seen == ["eager", "eager"] and stepped == {"eager"}
    seen.clear(), stepped.clear()
    train(TrainConfig(**common | {"precision": "fp32"}, output_dir=str(tmp_path / "fp32")), log=lambda _: None)
    assert seen == ["sdpa", "sdpa"] and stepped == {"sdpa"}


@pytest.mark.parametrize("labels", [[1, 0, 1], [0.5, 2.0, -1.0], [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]])
@pytest.mark.parametrize("multiple", [None, 16])
def test_fast_padding_batches_equal_the_hf_collators(trained_classifier, labels, multiple):
    """Single-label ids, regression values and multi-label vectors: the same tensors, dtypes included."""
    from transformers import DataCollatorWithPadding

    from lora_sentiment.training.trainer import FastPadding

    tokenizer = trained_classifier.encoder.tokenizer
    encoded = tokenizer(["short", "a somewhat longer text here", "mid length"], return_token_type_ids=True)
    features = [{**{k: encoded[k][i] for k in encoded}, "label": labels[i]} for i in range(3)]
    expected = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)(features)
    got = FastPadding(tokenizer, pad_to_multiple_of=multiple)(features)
    assert set(got) == set(expected)
    for key in expected:
        assert got[key].dtype == expected[key].dtype and torch.equal(got[key], expected[key]), key
