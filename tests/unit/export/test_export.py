"""export.py: the merged model is a separate, complete folder, written atomically, or a one-line error."""

import json
import shutil

import pytest

from lora_sentiment.errors import UserError
from lora_sentiment.export.writing import export_merged
from lora_sentiment.runs.run import RECORD_FILES


def test_export_carries_the_run_records_and_a_card(tmp_path, trained_run):
    out = export_merged(trained_run, tmp_path / "merged", log=lambda _: None)
    for name in RECORD_FILES:
        if name != "labels.json":
            assert (out / name).read_bytes() == (trained_run / name).read_bytes()
    # The labels as the run records them; a temperature the run kept (whether it keeps one depends on the float
    # rounding of the machine that trained it) is folded into the export's weights, and its record says so.
    labels = json.loads((trained_run / "labels.json").read_text())
    if "calibration" in labels:
        labels["calibration"]["in_weights"] = True
    assert json.loads((out / "labels.json").read_text()) == labels
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "Negative", "1": "Positive"}
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert "training_config.yaml" in (out / "README.md").read_text()
    assert not (tmp_path / ".merged.partial").exists()


@pytest.mark.parametrize(
    "model, expected",
    [
        ("distilbert-base-uncased", "distilbert-base-uncased"),
        ("FacebookAI/roberta-base", "FacebookAI/roberta-base"),
        (
            "/home/me/.cache/huggingface/hub/models--FacebookAI--roberta-base/snapshots/e2da8e2f",
            "FacebookAI/roberta-base",
        ),
        ("/home/me/.cache/huggingface/hub/models--bert-base-uncased/snapshots/86b5e093", "bert-base-uncased"),
        ("/models/minilm", None),
    ],
)
def test_cards_name_the_base_model_as_the_hub_knows_it_or_not_at_all(model, expected):
    """The Hub checks a card's `base_model` against its models on upload: a local folder's path there is an error
    on the Hub and means nothing on another machine."""
    from lora_sentiment.runs.card import hub_model_id

    assert hub_model_id(model) == expected


def test_a_run_on_a_local_base_model_writes_no_base_model_metadata(trained_run, tmp_path):
    out = export_merged(trained_run, tmp_path / "merged", log=lambda _: None)
    for card in (trained_run / "README.md", out / "README.md"):
        front = card.read_text().split("---")[1]
        assert "library_name:" in front and "base_model" not in front  # the tiny model is a local folder


def test_export_refusals(tmp_path, trained_run):
    with pytest.raises(UserError, match="OUT_DIR must differ from RUN_DIR"):
        export_merged(trained_run, trained_run)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="--overwrite"):
        export_merged(trained_run, taken)
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]
    damaged = tmp_path / "damaged"
    shutil.copytree(trained_run, damaged)
    (damaged / "adapter_config.json").unlink()
    with pytest.raises(UserError, match="adapter_config.json is missing"):
        export_merged(damaged, tmp_path / "out")
    assert not (tmp_path / "out").exists()
