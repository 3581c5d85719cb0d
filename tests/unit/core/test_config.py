from pathlib import Path

import pytest

from lora_sentiment.config import PRESETS, TrainConfig, build_config
from lora_sentiment.errors import UserError


def test_defaults_are_the_documented_recipe():
    config = TrainConfig()
    assert config.model == "distilbert-base-uncased"
    assert config.data == "imdb"
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (8, 32, 0.0)
    assert config.lora_targets is None  # resolved per architecture
    assert config.truncation == "head+tail" and config.max_length == "auto" and config.tokens == 512
    assert config.head_token_count == 128
    assert config.examples is None  # the tutorial's five for IMDB, else the data's own (data/examples.py)
    assert config.epochs == "auto" and config.head_init == "random"


def test_preset_reproduces_the_tutorial():
    config = build_config(preset="imdb-truncated")
    assert (config.max_train_samples, config.max_eval_samples) == (1000, 1000)
    assert (config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets) == (4, 32, 0.01, ["q_lin"])
    assert (config.learning_rate, config.batch_size, config.epochs, config.weight_decay) == (1e-3, 4, 10, 0.01)
    assert config.truncation == "tail" and config.max_length == 512 and config.head_init == "random"


def test_precedence_defaults_preset_file_flags(tmp_path: Path):
    file = tmp_path / "run.yaml"
    file.write_text("preset: imdb-truncated\nlearning-rate: 0.002\nlora_r: 16\nlora_targets: q_lin,v_lin\n")
    config = build_config({"lora_r": 2}, config_file=file)
    assert config.learning_rate == 0.002  # file beats preset
    assert config.lora_r == 2  # flag beats file
    assert config.lora_targets == ["q_lin", "v_lin"]  # comma string split
    assert config.batch_size == 4  # preset beats default


def test_resolved_config_round_trips_through_yaml(tmp_path: Path):
    config = build_config({"lora_targets": ["query", "value"], "examples": ["a, b", "c"]})
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert build_config(config_file=path) == config


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"lora_r": 0}, "--lora-r"),
        ({"truncation": "middle"}, "--truncation"),
        ({"eval_fraction": 1.5}, "--eval-fraction"),
        ({"no_such_option": 1}, "--no-such-option"),
        ({"max_length": 64, "head_tokens": 100}, "--head-tokens"),
    ],
)
def test_bad_values_name_the_flag(overrides, needle):
    with pytest.raises(UserError, match=needle):
        build_config(overrides)


def test_bad_config_files(tmp_path: Path):
    with pytest.raises(UserError, match="config file not found"):
        build_config(config_file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="mapping"):
        build_config(config_file=bad)
    with pytest.raises(UserError, match="unknown --preset"):
        build_config(preset="nope")
    assert set(PRESETS) == {"imdb-truncated"}
    typo = tmp_path / "typo.yaml"  # pydantic said only "Extra inputs are not permitted"
    typo.write_text("learning_rat: 0.001\nfoo: 1\n")
    with pytest.raises(UserError, match=r"^--learning-rat: no such option; did you mean --learning-rate\?; "
                                        r"--foo: no such option$"):  # fmt: skip
        build_config(config_file=typo)
    other = tmp_path / "tune.yaml"  # another command's flags in a train config: said where they belong
    other.write_text("trials: 3\nscorer: tfidf\n")
    with pytest.raises(UserError, match=r"^--trials: no such option here; it is a flag of tune \(lora-sentiment tune "
                                        r"--trials \.\.\.\); --scorer: .* it is a flag of audit"):  # fmt: skip
        build_config(config_file=other)


def test_base_dropout_keep():
    assert build_config({"base_dropout": "keep"}).base_dropout is None
    assert build_config({"base_dropout": "0.05"}).base_dropout == 0.05
    assert build_config(preset="imdb-truncated").base_dropout is None  # the tutorial kept the model's dropout


def test_epochs_flag_takes_auto_or_a_number_on_the_command_line():
    """A union field (auto or a number) is a plain flag: argparse must not turn it into the literal's choices."""
    from lora_sentiment.cli import build_parser
    from lora_sentiment.cli.flags import from_args

    parser = build_parser()
    for given, expected in (("1", 1.0), ("2.5", 2.5), ("auto", "auto")):
        args = parser.parse_args(["train", "--epochs", given])
        assert from_args(args, TrainConfig).epochs == expected
    with pytest.raises(UserError, match="--epochs: must be auto or a positive number"):
        from_args(parser.parse_args(["train", "--epochs", "none"]), TrainConfig)


@pytest.mark.parametrize(
    ("flag", "good", "bad", "said"),
    [
        ("--learning-rate", (("2e-4", 2e-4), ("AUTO", "auto")), ("0", "fast"), "a positive learning rate"),
        ("--eval-fraction", (("0.1", 0.1), ("auto", "auto")), ("0", "1", "1.5", "half"), "a share between 0 and 1"),
        ("--eval-batch-size", (("8", 8), ("auto", "auto")), ("0", "2.5", "big"), "a positive whole number of texts"),
    ],
)
def test_auto_or_number_flags_take_auto_or_a_number(flag, good, bad, said):
    from lora_sentiment.cli import build_parser
    from lora_sentiment.cli.flags import from_args

    parser = build_parser()
    field = flag[2:].replace("-", "_")
    for given, expected in good:
        assert getattr(from_args(parser.parse_args(["train", flag, given]), TrainConfig), field) == expected
    assert getattr(TrainConfig(data="d.csv"), field) == "auto"  # the default
    for given in bad:
        with pytest.raises(UserError, match=f"{flag}: must be auto or {said}, not '{given}'"):
            from_args(parser.parse_args(["train", flag, given]), TrainConfig)


@pytest.mark.parametrize(
    "given, expected", [("auto", "auto"), ("AUTO", "auto"), ("300", 300), (256, 256), (256.0, 256)]
)
def test_max_length_is_auto_or_a_whole_number_of_tokens(given, expected):
    assert TrainConfig(max_length=given).max_length == expected


@pytest.mark.parametrize("given", ["8", "3.5", "long", True, 0])
def test_a_bad_max_length_names_the_flag(given):
    with pytest.raises(UserError, match="--max-length: must be auto or a whole number of tokens above 8"):
        build_config({"max_length": given})
