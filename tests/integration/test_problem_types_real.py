"""The new problem types on real data with the real pre-trained MiniLM, kept short (a few hundred texts,
short max length): multi-label GoEmotions against TF-IDF on the same comments, IMDB star ratings as
regression, and class weights on a skewed IMDB subset, scored on held-out reviews."""

import json
from pathlib import Path

import pandas as pd
import pytest

from lora_sentiment import TrainConfig, train
from lora_sentiment.data.splits import load_labeled_data
from lora_sentiment.training.baseline import evaluate_baseline

pytestmark = [pytest.mark.slow, pytest.mark.int8_default]

GOEMOTIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "goemotions"


def _auto_and_torch_fp32(run_dir, texts):
    """The default engine (`--engine auto` on this CPU: the run compiled for OpenVINO, int8 where this CPU has int8
    units and the run's check kept it) and torch in fp32, the reference of faithfulness, on the same texts; and
    whether the default is int8 (whose promise is the check's: 99.5 % of answers on the run's own evaluation
    texts; on 300 other texts, 98 % keeps a chance failure under 1 in 1,000, and the largest change its check saw,
    with room)."""
    from lora_sentiment import LoadOptions, open_predictor
    from lora_sentiment.export.int8_gate import INT8_SUFFIX, REPAY_TEXTS, VERDICT_FILE

    auto = open_predictor(run_dir, LoadOptions(device="cpu"), expected_texts=REPAY_TEXTS)  # a job that checks int8
    assert "openvino" in auto.info()["device"], auto.info()
    exact = open_predictor(run_dir, LoadOptions(engine="torch", precision="fp32"))
    limits = (0.995, 0.02)
    if auto.precision == "int8":
        compiled = next(p for p in (run_dir / ".compiled").iterdir() if not p.name.endswith(INT8_SUFFIX))
        verdict = json.loads((compiled / VERDICT_FILE).read_text())
        assert verdict["kept"] and verdict["agreement"] >= 0.995, verdict
        # With the second look (int8_gate.py) only a text int8 moves by more than the band can change its answer.
        limits = (0.99 if verdict.get("band") is not None else 0.98, 2 * verdict["largest_change"] + 0.02)
    return auto.predict_scores(texts), exact.predict_scores(texts), limits


def test_goemotions_multi_label_beats_tfidf_on_the_same_comments(tmp_path, minilm_path):
    if not (GOEMOTIONS / "train.parquet").is_file():
        pytest.fail(f"the shared GoEmotions data is missing at {GOEMOTIONS}")
    config = TrainConfig(
        model=minilm_path, data=str(GOEMOTIONS / "train.parquet"), eval_data=str(GOEMOTIONS / "validation.parquet"),
        label_column="labels", max_train_samples=1500, max_eval_samples=1000, max_length=48, epochs=2,
        batch_size=32, learning_rate=2e-3, output_dir=str(tmp_path / "goemotions"),
    )  # fmt: skip
    data = load_labeled_data(config, log=lambda _: None)
    assert data.space.problem_type == "multi-label" and len(data.space.names) == 28
    baseline = evaluate_baseline(data.train, data.eval, data.space)
    final = train(config, log=lambda _: None).metrics.final
    assert final["f1_macro"] > baseline["f1_macro"], (final["f1_macro"], baseline["f1_macro"])
    assert final["f1_micro"] > 0.4 and 0 <= final["hamming_loss"] < 0.1
    texts = pd.read_parquet(GOEMOTIONS / "validation.parquet")["text"].head(300).tolist()
    auto, exact, (agree, close) = _auto_and_torch_fp32(Path(config.output_dir), texts)
    thresholds = __import__("lora_sentiment").open_predictor(config.output_dir).space.decision_thresholds()
    decisions = (auto >= thresholds) == (exact >= thresholds)  # every (text, tag) decision
    assert decisions.mean() >= agree and abs(auto - exact).max() < close, (decisions.mean(), abs(auto - exact).max())


def test_star_ratings_as_regression(tmp_path, minilm_path, imdb_sample):
    config = TrainConfig(
        model=minilm_path, data=str(imdb_sample / "train.parquet"), eval_data=str(imdb_sample / "validation.parquet"),
        label_column="rating", problem_type="regression", max_train_samples=600, max_eval_samples=300,
        max_length=128, epochs=2, output_dir=str(tmp_path / "ratings"),
    )  # fmt: skip
    result = train(config, log=lambda _: None)
    final = result.metrics.final
    assert final["spearman"] > 0.5 and final["mae"] < 2.5, final
    predicted = [p.value for p in __import__("lora_sentiment").load_classifier(result.output_dir).predict(
        ["One of the best films ever made, a masterpiece.", "The worst film I have ever seen, utter garbage."]
    )]  # fmt: skip
    assert predicted[0] > predicted[1] + 2
    texts = pd.read_parquet(imdb_sample / "validation.parquet")["text"].head(300).tolist()
    auto, exact, (_, close) = _auto_and_torch_fp32(Path(result.output_dir), texts)
    assert abs(auto - exact).max() < max(0.1, close), abs(auto - exact).max()  # stars, on a 1-10 scale


def test_balanced_class_weights_lift_the_minority_class(tmp_path, minilm_path, imdb_frames, imdb_sample):
    train_rows, _ = imdb_frames
    skewed = pd.concat([train_rows[train_rows.label == 0].head(300), train_rows[train_rows.label == 1].head(33)])
    skewed.sample(frac=1, random_state=0)[["text", "label"]].to_parquet(tmp_path / "skewed.parquet")
    finals, logs = {}, {}
    for weights in ("none", "balanced"):
        config = TrainConfig(
            model=minilm_path, data=str(tmp_path / "skewed.parquet"),
            eval_data=str(imdb_sample / "validation.parquet"), max_eval_samples=200, max_length=96, epochs=2,
            class_weights=weights, output_dir=str(tmp_path / weights),
        )  # fmt: skip
        logs[weights] = []
        finals[weights] = train(config, log=logs[weights].append).metrics.final
    # The training texts are skewed (33 of 333 Positive), the evaluation texts even: said, and scored by accuracy.
    note = "Skewed classes: Positive is 33 of the 333 training texts (9.9%), Negative 90%."
    assert [line for line in logs["none"] if line.startswith(note) and "--class-weights auto or balanced" in line]
    assert [line for line in logs["balanced"] if line.startswith(note) and line.endswith("weighs them balanced.")]
    assert [line for line in logs["none"] if line.startswith("Accuracy ") and "Saved to" in line]
    recall = {w: f["per_label"]["Positive"]["recall"] for w, f in finals.items()}
    assert recall["balanced"] > recall["none"] + 0.1, recall
    assert finals["balanced"]["f1_macro"] > finals["none"]["f1_macro"], {w: f["f1_macro"] for w, f in finals.items()}
    texts = pd.read_parquet(imdb_sample / "validation.parquet")["text"].head(300).tolist()
    auto, exact, (agree, close) = _auto_and_torch_fp32(tmp_path / "balanced", texts)
    agreement = (auto.argmax(1) == exact.argmax(1)).mean()
    assert agreement >= agree and abs(auto - exact).max() < close, (agreement, abs(auto - exact).max())
