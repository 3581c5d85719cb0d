"""Multi-label on real data with the real pre-trained MiniLM, kept short (1,500 comments, 48 tokens): GoEmotions
against TF-IDF on the same comments, and the default engine against torch fp32 on every (comment, tag) decision."""

from pathlib import Path

import pandas as pd
import pytest
from conftest import auto_and_torch_fp32

from lora_sentiment import TrainConfig, train
from lora_sentiment.data.splits import load_labeled_data
from lora_sentiment.training.baseline import evaluate_baseline

pytestmark = [pytest.mark.slow, pytest.mark.int8_default]

GOEMOTIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "goemotions"


def test_goemotions_multi_label_beats_tfidf_on_the_same_comments(tmp_path, minilm_path):
    if not (GOEMOTIONS / "train.parquet").is_file():
        pytest.fail(f"the shared GoEmotions data is missing at {GOEMOTIONS}")
    config = TrainConfig(
        model=minilm_path, data=str(GOEMOTIONS / "train.parquet"), eval_data=str(GOEMOTIONS / "validation.parquet"),
        label_column="labels", max_train_samples=1500, max_eval_samples=500, max_length=48, epochs=2,
        batch_size=32, learning_rate=2e-3, output_dir=str(tmp_path / "goemotions"),
    )  # fmt: skip
    data = load_labeled_data(config, log=lambda _: None)
    assert data.space.problem_type == "multi-label" and len(data.space.names) == 28
    baseline = evaluate_baseline(data.train, data.eval, data.space)
    final = train(config, log=lambda _: None).metrics.final
    assert final["f1_macro"] > baseline["f1_macro"], (final["f1_macro"], baseline["f1_macro"])
    assert final["f1_micro"] > 0.4 and 0 <= final["hamming_loss"] < 0.1
    texts = pd.read_parquet(GOEMOTIONS / "validation.parquet")["text"].head(300).tolist()
    auto, exact, (agree, close) = auto_and_torch_fp32(Path(config.output_dir), texts)
    thresholds = __import__("lora_sentiment").open_predictor(config.output_dir).space.decision_thresholds()
    decisions = (auto >= thresholds) == (exact >= thresholds)  # every (text, tag) decision
    assert decisions.mean() >= agree and abs(auto - exact).max() < close, (decisions.mean(), abs(auto - exact).max())
