"""IMDB star ratings as regression with the real pre-trained MiniLM, kept short (600 reviews, 64 tokens: Spearman
0.62 and MAE 2.08 against 0.69 and 1.87 at 128, in half the time), scored on held-out reviews, and the default
engine against torch fp32 on the predicted stars."""

from pathlib import Path

import pandas as pd
import pytest
from conftest import auto_and_torch_fp32

from lora_sentiment import TrainConfig, train

pytestmark = [pytest.mark.slow, pytest.mark.int8_default]


def test_star_ratings_as_regression(tmp_path, minilm_path, imdb_sample):
    config = TrainConfig(
        model=minilm_path, data=str(imdb_sample / "train.parquet"), eval_data=str(imdb_sample / "validation.parquet"),
        label_column="rating", problem_type="regression", max_train_samples=600, max_eval_samples=300,
        max_length=64, epochs=2, output_dir=str(tmp_path / "ratings"),
    )  # fmt: skip
    result = train(config, log=lambda _: None)
    final = result.metrics.final
    assert final["spearman"] > 0.5 and final["mae"] < 2.5, final
    predicted = [p.value for p in __import__("lora_sentiment").load_classifier(result.output_dir).predict(
        ["One of the best films ever made, a masterpiece.", "The worst film I have ever seen, utter garbage."]
    )]  # fmt: skip
    assert predicted[0] > predicted[1] + 2
    texts = pd.read_parquet(imdb_sample / "validation.parquet")["text"].head(300).tolist()
    auto, exact, (_, close) = auto_and_torch_fp32(Path(result.output_dir), texts)
    assert abs(auto - exact).max() < max(0.1, close), abs(auto - exact).max()  # stars, on a 1-10 scale
