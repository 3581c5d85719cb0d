"""What the integration tests on real runs share."""

import json

import pytest


@pytest.fixture
def auto_and_torch_fp32():
    return _auto_and_torch_fp32


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
