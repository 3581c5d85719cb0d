"""One Predictor protocol: a run on torch, an export without torch, and each run of a shared-base set answer the
same calls with the same information; one door opens each of them."""

from __future__ import annotations

import numpy as np

from lora_sentiment import LoadOptions, open_predictor
from lora_sentiment.export.writing import export_run
from lora_sentiment.inference.base import Predictor, PredictorSet

TEXTS = ["A wonderful, moving film.", "Dull and far too long."]


def test_a_run_an_export_and_a_set_member_are_predictors_that_agree(trained_run, small_csv, tmp_path):
    fp32 = LoadOptions(precision="fp32", engine="torch")
    run = open_predictor(trained_run, fp32)
    export = open_predictor(export_run(trained_run, tmp_path / "onnx", format="onnx", log=lambda _: None), fp32)
    both = open_predictor({"a": trained_run, "b": str(trained_run)}, fp32)
    assert isinstance(both, PredictorSet) and not isinstance(both, Predictor) and both.names == ["a", "b"]
    member = both["b"]
    for predictor in (run, export, member):
        assert isinstance(predictor, Predictor)
        info = predictor.info()
        assert set(info) == {"label_names", "problem_type", "thresholds", "long_text", "precision", "device"}
        assert info["label_names"] == ["Negative", "Positive"] and info["precision"] == "fp32"
        assert np.allclose(predictor.predict_scores(TEXTS), run.predict_scores(TEXTS), atol=1e-4)
        assert predictor.predict_proba(TEXTS).shape == (2, 2)
        assert [p.label_name for p in predictor.predict(TEXTS)] == [p.label_name for p in run.predict(TEXTS)]
        assert predictor.evaluate(str(small_csv), max_samples=20)["samples"] == 20
        _refuses_what_is_not_a_list_of_texts(predictor)
        _reads_any_iterable_of_texts_once(predictor)
    assert export.info()["device"] == "cpu (onnxruntime)" and run.info()["device"] == "cpu"
    compiled = open_predictor(trained_run, LoadOptions(precision="fp32", device="cpu"))  # --engine auto on a CPU
    assert compiled.info()["device"] == "cpu (openvino)"
    assert np.allclose(compiled.predict_scores(TEXTS), run.predict_scores(TEXTS), atol=1e-4)
    _refuses_what_is_not_a_list_of_texts(compiled)


def _refuses_what_is_not_a_list_of_texts(predictor) -> None:
    """One string was predicted a character at a time (nine answers for "Loved it."), and None failed deep in
    the tokenizer."""
    import pytest

    with pytest.raises(TypeError, match=r"not one string: predict\(\[text\]\)"):
        predictor.predict(TEXTS[0])
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        predictor.predict_scores([TEXTS[0], None])
    # A blank text was labelled with the model's guess about nothing, which `predict --text` and serve refuse.
    with pytest.raises(ValueError, match=r"texts\[1\] \(and 1 more\) is blank: there is nothing to label"):
        predictor.predict([TEXTS[0], " \u3000\n", "", TEXTS[1]])
    assert predictor.predict_scores([TEXTS[0], ""]).shape[0] == 2  # scores answer any string, as predict_proba's


def _reads_any_iterable_of_texts_once(predictor) -> None:
    """A generator was measured (no len()) and would have been read twice, for the scores and for the answers."""
    import pandas as pd

    expected = [p.label_name for p in predictor.predict(TEXTS)]
    assert [p.label_name for p in predictor.predict(t for t in TEXTS)] == expected
    assert [p.text for p in predictor.predict(iter(TEXTS))] == list(TEXTS)
    assert [p.label_name for p in predictor.predict(pd.Series(TEXTS))] == expected
    assert predictor.predict_scores(t for t in TEXTS).shape == (len(TEXTS), 2)


def test_load_options_are_checked_where_they_are_made(trained_run):
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="stride"):
        open_predictor(trained_run, stride=0)
    with pytest.raises(ValidationError, match="long_text"):
        LoadOptions(long_text="split")


def test_loading_a_run_from_python_prints_nothing(trained_run):
    """No load report of a 'newly initialized' head, no progress bar, no library warning: the head comes from
    the run a moment later, and a user reading that would think the run lost."""
    import subprocess
    import sys

    code = (
        "from lora_sentiment import load_classifier, load_classifiers, open_predictor; "
        f"load_classifier({str(trained_run)!r}); load_classifiers([{str(trained_run)!r}]); "
        f"open_predictor({str(trained_run)!r}).predict(['Fine.'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and (done.stdout, done.stderr) == ("", ""), done.stderr


def test_options_come_as_their_model_or_a_dict_with_keywords_over_them(trained_run):
    """`train` takes its config as a dict; the other entry points failed deep inside ("'dict' object has no attribute
    'engine'") when given their options as one, and dropped keywords given beside a model."""
    import pytest

    from lora_sentiment.options import EvalOptions

    as_dict = open_predictor(trained_run, {"precision": "fp32", "engine": "torch"})
    assert as_dict.info()["precision"] == "fp32" and as_dict.info()["device"] == "cpu"
    over = open_predictor(trained_run, LoadOptions(engine="torch"), precision="fp32")
    assert over.info()["precision"] == "fp32"  # the keyword was dropped when a model was given
    assert EvalOptions.of({"max_samples": 5}, {"seed": 3}) == EvalOptions(max_samples=5, seed=3)
    with pytest.raises(TypeError, match="options: give LoadOptions or a dict of its fields, not list"):
        open_predictor(trained_run, ["fp32"])
