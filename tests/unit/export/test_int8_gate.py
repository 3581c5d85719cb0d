"""export/int8_gate.py: `--engine auto` uses a run's int8 model only after checking it against the f32 model on
the run's evaluation texts; the check waits until the texts predicted repay it; the verdict is kept, a refused int8
model is not, a damaged one is checked again, and CPUs without int8 units or an asked-for precision never try it.
A kept int8 model hands the texts near a boundary to the unquantized model."""

import json
import shutil

import numpy as np
import pytest

from lora_sentiment.export import compiled, int8_gate
from lora_sentiment.modeling.cpu import CpuKind
from lora_sentiment.opening import open_predictor, resolve_engine_target, tries_int8
from lora_sentiment.options import LoadOptions
from lora_sentiment.problems.space import LabelSpace

pytest.importorskip("nncf")
pytestmark = pytest.mark.int8_default

TEXTS = ["A wonderful, moving film.", "Dreadful from start to end."]


@pytest.fixture()
def run(tmp_path, trained_run, monkeypatch):
    monkeypatch.setattr("lora_sentiment.opening._has_gpu", lambda: False)
    monkeypatch.setattr("lora_sentiment.modeling.cpu.this_cpu", lambda: CpuKind("avx512-vnni", "avx512-vnni", None))
    monkeypatch.setattr(int8_gate, "REPAY_TEXTS", 0)  # checked on the first call, unless a test says otherwise
    monkeypatch.setattr(compiled, "REPAY_TEXTS", 0)  # and compiled on the first call
    monkeypatch.setattr(int8_gate, "MAX_RECHECK", 1.0)  # the tiny random model's answers all sit near a boundary
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns(compiled.CACHE_DIR))
    return copy


def _verdict(folder):
    return json.loads((folder / int8_gate.VERDICT_FILE).read_text())


def test_a_job_that_finds_another_checking_int8_waits_for_its_verdict(run, monkeypatch):
    """Two jobs reaching the check together both quantized into one hidden staging folder; the later one now waits
    and takes the verdict the first wrote."""
    import os
    import threading
    import time
    from dataclasses import asdict

    from lora_sentiment.atomic import claimed

    f32 = compiled.compiled_export(run, "openvino", log=lambda _: None)
    int8 = f32.with_name(f32.name + int8_gate.INT8_SUFFIX)
    notices, holding = [], threading.Event()

    def check_elsewhere():  # another job's check: it holds the claim until this one waits, then gives its verdict
        with claimed(int8, "the int8 model"):
            holding.set()
            while not notices:
                time.sleep(0.02)
            verdict = int8_gate.Int8Verdict(False, "answers changed on 9 of 60 texts")
            (f32 / int8_gate.VERDICT_FILE).write_text(json.dumps(asdict(verdict)))

    other = threading.Thread(target=check_elsewhere)
    other.start()
    holding.wait(10)
    monkeypatch.setattr(int8_gate, "_decide", lambda *a: pytest.fail("checked again"))
    assert int8_gate.int8_or_f32(compiled.Run.open(run), f32, notices.append, notices.append) == f32
    other.join()
    assert notices == [f"note: another process ({os.getpid()}) is checking int8 for this run; waiting for it"]


@pytest.mark.parametrize(
    ("cpu", "options", "tries"),
    [
        ("avx512-vnni", LoadOptions(), True),
        ("avx2-vnni", LoadOptions(), True),
        ("amx", LoadOptions(), False),  # int8 no faster than AMX's bf16: the check would not repay
        ("arm-dotprod", LoadOptions(), True),
        ("avx2", LoadOptions(), False),  # no int8 dot products: int8 barely pays
        ("avx512", LoadOptions(), False),
        ("avx512-vnni", LoadOptions(precision="fp32"), False),  # a precision asked for is kept
        ("avx512-vnni", LoadOptions(engine="openvino"), False),  # so is an engine
    ],
)
def test_who_tries_int8(monkeypatch, cpu, options, tries):
    monkeypatch.setattr("lora_sentiment.modeling.cpu.this_cpu", lambda: CpuKind(cpu, cpu, None))
    assert tries_int8(options) is tries


@pytest.mark.slow  # compiles and quantizes with NNCF
def test_int8_kept_when_its_answers_hold_then_reused_without_a_check(run, monkeypatch):
    monkeypatch.setattr(int8_gate, "AGREEMENT", 0.0)  # the tiny random model: make the bar one it passes
    monkeypatch.setattr(int8_gate, "SCORE_DROP", 1.0)
    notices = []
    chosen = resolve_engine_target(run, LoadOptions(), log=notices.append)
    assert chosen.name.endswith(int8_gate.INT8_SUFFIX) and len(notices) == 3, notices
    assert "checking once whether int8 keeps" in notices[1] and notices[2].startswith("note: int8 kept for this run")
    verdict = _verdict(chosen.with_name(chosen.name.removesuffix(int8_gate.INT8_SUFFIX)))
    assert verdict["kept"] and verdict["texts"] == 60 and verdict["metric"] == "accuracy"  # the run's 60 eval texts
    assert verdict["scope"] == "all"
    again = []
    assert resolve_engine_target(run, LoadOptions(), log=again.append) == chosen and again == []
    predictor = open_predictor(run)
    assert predictor.precision == "int8" and json.loads((chosen / "export.json").read_text())["int8_scope"] == "all"
    assert predictor.predict_scores(TEXTS).shape == (2, 2)


@pytest.mark.slow  # compiles and quantizes with NNCF
def test_int8_answers_near_a_boundary_come_from_the_unquantized_model(run, monkeypatch):
    """With a band wider than any score can move every answer is the unquantized model's; with none, int8's own."""
    from lora_sentiment.export.folder import RECHECK_FILE, ExportedClassifier

    monkeypatch.setattr(int8_gate, "AGREEMENT", 0.0)
    monkeypatch.setattr(int8_gate, "SCORE_DROP", 1.0)
    monkeypatch.setattr(int8_gate, "RECHECK_MARGIN", 1e6)
    chosen = resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    f32 = chosen.with_name(chosen.name.removesuffix(int8_gate.INT8_SUFFIX))
    verdict = _verdict(f32)
    assert verdict["kept"] and verdict["rechecked"] == 1.0 and verdict["band"] > 1 and verdict["rule"] == 2
    assert verdict["int8"] == verdict["f32"]  # every answer the unquantized model's
    assert json.loads((chosen / RECHECK_FILE).read_text())["model"] == f32.name
    predictor = open_predictor(run)
    assert predictor.precision == "int8" and predictor.info()["int8_recheck_band"] == verdict["band"]
    unquantized = ExportedClassifier.open(f32).predict_scores(TEXTS)
    np.testing.assert_array_equal(predictor.predict_scores(TEXTS), unquantized)
    (chosen / RECHECK_FILE).write_text(json.dumps({"band": 0.0, "model": f32.name}))
    alone = ExportedClassifier.open(chosen)
    int8_alone = alone.predict_scores(TEXTS)
    alone.recheck = None
    np.testing.assert_array_equal(int8_alone, alone.predict_scores(TEXTS))
    assert not np.array_equal(int8_alone, unquantized)  # so the first comparison could fail
    # --min-confidence's line is a boundary too: a text whose confidence sits on it is predicted again. (The tiny
    # random model's probabilities all sit near 0.5, where int8 may give both texts the same ones: text 1 is only
    # asked to keep int8's answer where it lies clear of both lines.)
    band = 1e-7
    (chosen / RECHECK_FILE).write_text(json.dumps({"band": band, "model": f32.name}))
    line = float(int8_alone[0].max())
    sure = ExportedClassifier.open(chosen, LoadOptions(min_confidence=line)).predict_scores(TEXTS)
    np.testing.assert_array_equal(sure[0], unquantized[0])
    clear = min(np.abs(int8_alone[1] - line).min(), np.abs(int8_alone[1] - (1 - line)).min()) > band
    if clear and abs(int8_alone[1, 1] - int8_alone[1, 0]) > 2 * band:
        np.testing.assert_array_equal(sure[1], int8_alone[1])


@pytest.mark.slow  # compiles and quantizes with NNCF
def test_int8_refused_keeps_f32_and_the_verdict_but_not_the_model(run, monkeypatch):
    monkeypatch.setattr(int8_gate, "AGREEMENT", 1.5)  # no model can pass
    notices = []
    chosen = resolve_engine_target(run, LoadOptions(), log=notices.append)
    assert not chosen.name.endswith(int8_gate.INT8_SUFFIX)
    assert notices[-1].startswith("note: int8 not used (answers equal to f32 on") and "unquantized model" in notices[-1]
    verdict = _verdict(chosen)
    assert not verdict["kept"] and verdict["texts"] == 60  # all of the run's 60 evaluation texts
    assert sorted(p.name for p in (run / compiled.CACHE_DIR).iterdir()) == [chosen.name]
    again = []
    assert resolve_engine_target(run, LoadOptions(), log=again.append) == chosen and again == []
    assert open_predictor(run).precision in ("fp32", "bf16")


@pytest.mark.slow
def test_a_damaged_int8_model_is_checked_again_with_a_notice(run, monkeypatch):
    monkeypatch.setattr(int8_gate, "AGREEMENT", 0.0)
    monkeypatch.setattr(int8_gate, "SCORE_DROP", 1.0)
    chosen = resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    (chosen / "openvino_model.xml").unlink()
    notices = []
    assert resolve_engine_target(run, LoadOptions(), log=notices.append) == chosen
    assert "damaged" in notices[0] and (chosen / "openvino_model.xml").is_file()
    (chosen / "recheck.json").write_text("{")  # its second look: damaged the same way
    notices = []
    assert resolve_engine_target(run, LoadOptions(), log=notices.append) == chosen
    assert "damaged recheck.json" in notices[0], notices
    assert json.loads((chosen / "recheck.json").read_text())["band"] >= 0


@pytest.mark.slow  # compiles and quantizes with NNCF, twice
def test_int8_refused_with_every_layer_is_tried_with_the_output_projections_in_float(run, monkeypatch):
    import dataclasses

    monkeypatch.setattr(int8_gate, "AGREEMENT", 0.0)
    monkeypatch.setattr(int8_gate, "SCORE_DROP", 1.0)
    tried, real, references = [], int8_gate.compare, []
    real_reference = int8_gate.reference_scores

    def compare(f32, int8, texts, labels, reference):
        tried.append(json.loads((int8 / "export.json").read_text())["int8_scope"])
        verdict = real(f32, int8, texts, labels, reference)
        return verdict if len(tried) > 1 else dataclasses.replace(verdict, kept=False, reason="refused for the test")

    def reference_scores(f32, texts):
        references.append(len(texts))
        return real_reference(f32, texts)

    monkeypatch.setattr(int8_gate, "compare", compare)
    monkeypatch.setattr(int8_gate, "reference_scores", reference_scores)
    chosen = resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    assert tried == ["all", "no-output-projections"] and chosen.name.endswith(int8_gate.INT8_SUFFIX)
    assert len(references) == 1  # the fp32 reference is predicted once for both scopes
    assert json.loads((chosen / "export.json").read_text())["int8_scope"] == "no-output-projections"
    assert _verdict(chosen.with_name(chosen.name.removesuffix(int8_gate.INT8_SUFFIX)))["scope"] == (
        "no-output-projections"
    )


def test_a_verdict_of_the_earlier_rule_is_checked_again_at_once(run, monkeypatch):
    """int8 alone was refused (or kept) under rule 1: the run is checked with the second look on its next job,
    without waiting for a count that stopped with that verdict; a verdict of today's rule is kept."""
    checked = []

    def decide(run, f32, int8):
        checked.append(f32)
        return int8_gate.Int8Verdict(False, "refused for the test")

    monkeypatch.setattr(int8_gate, "_decide", decide)
    monkeypatch.setattr(int8_gate, "REPAY_TEXTS", 10**9)  # never by the count
    f32 = resolve_engine_target(run, LoadOptions(), log=lambda _: None)
    assert checked == [] and not (f32 / int8_gate.VERDICT_FILE).exists()
    (f32 / int8_gate.VERDICT_FILE).write_text(json.dumps({"kept": False, "reason": "answers equal on under 99.5%"}))
    assert resolve_engine_target(run, LoadOptions(), log=lambda _: None) == f32 and checked == [f32]
    assert _verdict(f32)["rule"] == int8_gate.RULE
    assert resolve_engine_target(run, LoadOptions(), log=lambda _: None) == f32 and checked == [f32]


def test_without_the_evaluation_data_int8_is_not_used(run, tmp_path, monkeypatch):
    def gone(run):
        raise FileNotFoundError("eval.csv not found")

    monkeypatch.setattr(int8_gate, "check_rows", gone)
    notices = []
    chosen = resolve_engine_target(run, LoadOptions(), log=notices.append)
    assert not chosen.name.endswith(int8_gate.INT8_SUFFIX)
    assert notices[-1] == (
        "note: int8 not used (the run's evaluation data could not be read: eval.csv not found); predicting with the "
        "unquantized model"
    )


@pytest.mark.slow  # compiles and quantizes with NNCF
def test_a_few_texts_do_not_pay_for_the_check_but_use_its_verdict(run, tmp_path, capsys, monkeypatch):
    """`predict --text` (fewer texts than the check reads) uses int8 only once a larger job has checked it; a file
    job as large as the check's sample checks, and while it does stdout holds nothing but the answers (no NNCF
    progress bars) and stderr nothing but its notes."""
    from lora_sentiment.cli import main

    monkeypatch.setattr(int8_gate, "AGREEMENT", 0.0)
    monkeypatch.setattr(int8_gate, "SCORE_DROP", 1.0)
    assert main(["predict", str(run), "--json", "--text", *TEXTS]) == 0
    first = capsys.readouterr()
    (f32,) = (run / compiled.CACHE_DIR).iterdir()  # the f32 model only
    assert "checking once" not in first.err and not (f32 / int8_gate.VERDICT_FILE).exists()
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n".join(TEXTS) + "\n")
    monkeypatch.setattr("lora_sentiment.opening.CHECK_TEXTS", len(TEXTS))  # the file's 2 rows are counted first
    assert main(["predict", str(run), "--input", str(reviews), "--output", "-", "--no-progress"]) == 0
    checked = capsys.readouterr()
    assert [json.loads(line)["text"] for line in checked.out.splitlines()] == TEXTS
    assert "checking once whether int8" in checked.err and "Warning" not in checked.err
    assert all(
        line.startswith(("lora-sentiment: note:", "Predicted ", "Seconds: ")) for line in checked.err.splitlines()
    ), checked.err
    assert main(["predict", str(run), "--json", "--text", *TEXTS]) == 0
    later = capsys.readouterr()
    assert later.err == "" and [json.loads(line)["text"] for line in later.out.splitlines()] == TEXTS
    assert open_predictor(run, expected_texts=2).precision == "int8"


def test_the_check_reads_the_evaluation_split_without_progress_bars(run, tmp_path, capsys, monkeypatch, request):
    """The check runs inside a `predict` whose stderr carries one line about it: datasets' bars for reading the
    evaluation split (shown on a first read, as on a user's machine; the suite turns them off) stay out of it."""
    import importlib

    import datasets

    from lora_sentiment.runs.run import Run

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")  # nothing read before
    bars = importlib.import_module("datasets.utils.tqdm")  # the module (datasets.utils.tqdm names its class)
    monkeypatch.setattr(bars, "HF_DATASETS_DISABLE_PROGRESS_BARS", None)  # the suite's setting, read at import
    datasets.enable_progress_bars()
    request.addfinalizer(datasets.disable_progress_bars)

    class Read(Exception):
        pass

    def stop(*args, **kwargs):
        raise Read  # the split is read: predicting and quantizing after it are other tests'

    monkeypatch.setattr(int8_gate, "reference_scores", stop)
    with pytest.raises(Read):
        int8_gate._decide(Run.open(run), tmp_path / "f32", tmp_path / "int8")
    assert capsys.readouterr().err == ""


def _predict_file(run, path):
    from lora_sentiment.cli import main

    assert main(["predict", str(run), "--input", str(path), "--output", "-", "--no-progress"]) == 0


@pytest.mark.slow  # compiles and quantizes with NNCF
def test_the_check_waits_until_the_texts_predicted_repay_it(run, tmp_path, capsys, monkeypatch):
    """A first `predict` is not slowed by the check: file jobs count their texts (before they start), and the job
    that brings the count to REPAY_TEXTS checks first; a Parquet file large enough checks at once."""
    import pandas as pd

    monkeypatch.setattr(int8_gate, "REPAY_TEXTS", 5)
    monkeypatch.setattr(int8_gate, "AGREEMENT", 0.0)
    monkeypatch.setattr(int8_gate, "SCORE_DROP", 1.0)
    monkeypatch.setattr("lora_sentiment.opening.CHECK_TEXTS", 2)  # not "a few texts" (those never check)
    reviews = tmp_path / "reviews.csv"
    pd.DataFrame({"text": [*TEXTS, "Fine."]}).to_csv(reviews, index=False)
    _predict_file(run, reviews)
    (f32,) = (run / compiled.CACHE_DIR).iterdir()
    assert "int8 is checked once this run has predicted 5 texts (0 so far)" in capsys.readouterr().err
    assert int8_gate.predicted(f32) == 3 and not (f32 / int8_gate.VERDICT_FILE).exists()
    _predict_file(run, reviews)  # 3 + its own 3 reach 5: this one checks, and from now on the count stops
    assert "checking once whether int8" in capsys.readouterr().err and _verdict(f32)["kept"]
    assert int8_gate.predicted(f32) == 3 and open_predictor(run, expected_texts=1).precision == "int8"

    shutil.rmtree(run / compiled.CACHE_DIR)
    table = tmp_path / "reviews.parquet"
    pd.DataFrame({"text": TEXTS * 3}).to_parquet(table)  # 6 rows, read from its metadata before the model opens
    _predict_file(run, table)
    assert "checking once whether int8" in capsys.readouterr().err


def test_counting_leaves_alone_what_is_not_an_unchecked_compiled_model(run, tmp_path):
    compiled.count_predicted(run, 10)  # a run folder (torch) or an export: nothing is written into it
    assert not (run / int8_gate.COUNT_FILE).exists()
    folder = run / compiled.CACHE_DIR / "openvino-0123"
    folder.mkdir(parents=True)
    compiled.count_predicted(folder, 10)
    compiled.count_predicted(folder, 5)
    assert int8_gate.predicted(folder) == 15
    (folder / int8_gate.VERDICT_FILE).write_text("{}")  # checked: the count has done its work
    compiled.count_predicted(folder, 5)
    assert int8_gate.predicted(folder) == 15


def _space(problem, names):
    return LabelSpace(names=names, problem_type=problem)


def test_the_verdict_rules():
    space = _space("single-label", ["neg", "pos"])
    labels = np.array([0, 1] * 100)
    ours = np.stack([1 - labels * 0.8 - 0.1, labels * 0.8 + 0.1], axis=1)  # all right, sure
    same = int8_gate.scored(space, labels, ours, ours + 0.001)
    assert same.kept and same.agreement == 1.0 and same.f32 == same.int8 == 1.0 and same.largest_change < 0.0011
    flipped = ours.copy()
    flipped[0] = flipped[0][::-1]  # one answer of 200 moves: 99.5 % kept
    assert int8_gate.scored(space, labels, ours, flipped).kept
    flipped[1] = flipped[1][::-1]  # two: 99.0 %
    refused = int8_gate.scored(space, labels, ours, flipped)
    assert (
        not refused.kept
        and "answers equal on under 99.5%" in refused.reason
        and "accuracy 0.010 worse" in (refused.reason)
    )


def test_too_many_texts_near_a_boundary_refuse_int8():
    space = _space("single-label", ["neg", "pos"])
    labels = np.array([0, 1] * 100)
    ours = np.stack([1 - labels * 0.8 - 0.1, labels * 0.8 + 0.1], axis=1)
    kept = int8_gate.scored(space, labels, ours, ours, int8_gate.SecondLook(0.05, 0.1, int8_gate.MAX_RECHECK))
    assert kept.kept and "the 20% nearest a boundary predicted again by the unquantized model" in kept.describe()
    refused = int8_gate.scored(space, labels, ours, ours, int8_gate.SecondLook(0.05, 0.1, 0.3))
    assert not refused.kept
    assert refused.reason == "30% of them near a boundary int8 could cross, over the 20% where it pays"


def test_near_a_boundary_per_problem_type():
    single = _space("single-label", ["a", "b", "c"])
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.45, 0.44, 0.11]])
    assert single.problem.near_boundary(single, scores, 0.05).tolist() == [False, False, True]
    assert single.problem.near_boundary(single, scores, 0.11).tolist() == [True, False, True]
    tags = _space("multi-label", ["x", "y"])  # thresholds 0.5
    near = tags.problem.near_boundary(tags, np.array([[0.9, 0.1], [0.53, 0.1], [0.2, 0.46]]), 0.05)
    assert near.tolist() == [False, True, True]
    values = _space("regression", ["stars"])
    assert values.problem.near_boundary(values, np.array([[4.0]]), 0.1) is None
    for space in (single, tags, values):  # what the check reads to know whether a second look exists
        near = space.problem.near_boundary(space, np.full((1, space.num_outputs), 0.5), 0.1)
        assert space.problem.has_boundary == (near is not None), space.problem.name


@pytest.mark.parametrize("problem", ["single-label", "multi-label"])
def test_no_change_within_the_band_moves_an_answer_outside_it(problem):
    """What the second look rests on: scores moved by at most `band` keep every answer not near a boundary."""
    rng = np.random.default_rng(0)
    space = _space(problem, ["a", "b", "c"])
    raw = rng.dirichlet(np.ones(3), 5000) if problem == "single-label" else rng.random((5000, 3))
    band = 0.05
    moved = raw + rng.uniform(-band, band, raw.shape)
    near = space.problem.near_boundary(space, raw, band)
    same = space.problem.same_answers(space, raw, moved, np.zeros(len(raw)))
    assert same[~near].all() and not same[near].all() and 0 < near.mean() < 0.5


def test_same_answers_per_problem_type():
    single = _space("single-label", ["a", "b", "c"])
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    q = np.array([[0.3, 0.5, 0.2], [0.1, 0.25, 0.65]])
    assert single.problem.same_answers(single, p, q, np.array([0, 2])).tolist() == [False, True]
    tags = _space("multi-label", ["x", "y"])
    assert tags.problem.same_answers(tags, np.array([[0.6, 0.1], [0.4, 0.9]]), np.array([[0.55, 0.2], [0.51, 0.9]]),
                                     np.zeros((2, 2))).tolist() == [True, False]  # fmt: skip
    values = _space("regression", ["stars"])
    labels = np.array([1.0, 3.0, 5.0, 7.0, 9.0])  # SD 2.83: a change of 0.14 is "the same"
    got = values.problem.same_answers(values, np.array([[4.0], [6.0]]), np.array([[4.1], [6.2]]), labels)
    assert got.tolist() == [True, False]
