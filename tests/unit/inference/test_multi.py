"""Many runs on one base model: shared weights, mixed-adapter batches, the multi-model server, runs-dir, files."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import stars
from fastapi.testclient import TestClient

from lora_sentiment import UserError, load_classifier
from lora_sentiment.inference.shared_base import load_classifiers
from lora_sentiment.serving.app import ManyModels, ServeSettings, create_app

TEXTS = [
    "A wonderful, moving film.",
    "Dull and far too long.",
    "Fine.",
    "The acting was superb but the plot made no sense at all, which is a shame because the score is lovely.",
    "Worst thing I have seen this year.",
]


def own_scores(run, texts):
    return load_classifier(run, precision="fp32").predict_scores(texts)


@pytest.mark.parametrize("mixing", ["mixed", "grouped"])
def test_a_set_answers_as_each_run_alone_in_mixed_batches(tiny_runs, trained_run, mixing):
    runs = {"sentiment": tiny_runs / "sentiment", "stars": tiny_runs / "stars", "distil": trained_run}
    classifiers = load_classifiers(runs, precision="fp32", mixing=mixing)
    assert classifiers.names == ["sentiment", "stars", "distil"]
    assert len(classifiers.bases) == 2  # the two BERT runs share one base; DistilBERT has its own
    requests = [("stars", TEXTS[:2]), ("sentiment", TEXTS), ("distil", TEXTS[1:]), ("stars", TEXTS[2:])]
    got = classifiers.predict_many(requests)
    # Batches of 1 and 2: some hold one run's rows alone, beside runs with more outputs (4 against 2).
    for batch_size in (1, 2):
        for small, large in zip(classifiers.predict_many(requests, batch_size=batch_size), got):
            np.testing.assert_allclose(small, large, atol=1e-5)
    for (name, texts), scores in zip(requests, got):
        expected = own_scores(runs[name], texts)
        assert scores.shape == expected.shape
        np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert classifiers["stars"].label_names == ["1-2", "3-4", "7-8", "9-10"]
    assert [p.label_name for p in classifiers.predict(TEXTS[:2], model="stars")] == [
        classifiers["stars"].label_names[i] for i in got[0].argmax(1)
    ]
    generated = classifiers.predict((t for t in TEXTS[:2]), model="stars")  # any iterable, read once
    assert [p.text for p in generated] == TEXTS[:2] and classifiers.predict_scores(iter(TEXTS), "stars").shape[
        0
    ] == len(TEXTS)


@pytest.fixture(scope="module")
def other_architectures(tmp_path_factory, tiny_roberta, tiny_gpt2_no_pad, small_csv):
    """RoBERTa (a classification head over every token) and GPT-2 (no pad token: the run adds one, and peft
    saves the resized embeddings with the adapter)."""
    from lora_sentiment import TrainConfig, train

    runs = {}
    for name, model, targets in (("roberta", tiny_roberta, None), ("gpt2", tiny_gpt2_no_pad, ["c_attn"])):
        runs[name] = tmp_path_factory.mktemp(name) / "run"
        config = TrainConfig(
            model=model, data=str(small_csv), output_dir=str(runs[name]), max_length=48, epochs=1, batch_size=16,
            precision="fp32", lora_targets=targets,
        )  # fmt: skip
        train(config, log=lambda _: None)
    return runs


def test_other_architectures_share_their_bases_too(other_architectures):
    runs = {**other_architectures, "gpt2-again": other_architectures["gpt2"]}
    classifiers = load_classifiers(runs, precision="fp32")
    assert len(classifiers.bases) == 2
    got = classifiers.predict_many([(name, TEXTS) for name in runs])
    for name, scores in zip(runs, got):
        np.testing.assert_allclose(scores, own_scores(runs[name], TEXTS), atol=1e-5)


def test_a_run_that_changed_shared_weights_is_refused(other_architectures, tmp_path):
    from safetensors.torch import load_file, save_file

    """An adapter saved with a base weight of its own (peft does so for trained embeddings, say): the same values
    as the base's are fine, other values must not be served with the shared ones."""
    classifiers = load_classifiers([other_architectures["gpt2"]], precision="fp32")
    for name, scale in (("same", 1.0), ("changed", 2.0)):
        shutil.copytree(other_architectures["gpt2"], tmp_path / name)
        weights = load_file(tmp_path / name / "adapter_model.safetensors")
        weights["base_model.model.transformer.ln_f.weight"] = torch.ones(32) * scale  # the tiny GPT-2's: ones
        save_file(weights, tmp_path / name / "adapter_model.safetensors")
    classifiers.add("same", tmp_path / "same")
    with pytest.raises(UserError, match="has its own transformer.ln_f.weight, so it cannot share"):
        classifiers.add("changed", tmp_path / "changed")
    assert classifiers.names == ["run", "same"] and len(next(iter(classifiers.bases.values())).adapters) == 2


def test_removing_and_replacing_runs_keeps_the_others_right(tiny_runs):
    classifiers = load_classifiers([tiny_runs / "sentiment", f"other={tiny_runs / 'stars'}"], precision="fp32")
    classifiers.add("other", tiny_runs / "sentiment")  # a name loaded again: the new run replaces the old
    classifiers.remove("sentiment")
    np.testing.assert_allclose(
        classifiers.predict_scores(TEXTS, "other"), own_scores(tiny_runs / "sentiment", TEXTS), atol=1e-5
    )
    assert len(classifiers.bases) == 1
    classifiers.remove("other")
    assert classifiers.bases == {}  # the last run of a base frees it


def test_the_multi_model_server(tiny_runs):
    classifiers = load_classifiers(tiny_runs.glob("*"), precision="fp32")
    settings = ServeSettings(max_texts=3, api_key="k")
    headers = {"X-API-Key": "k"}
    with TestClient(create_app(ManyModels(classifiers), settings)) as client:
        models = client.get("/models").json()["models"]
        assert [(m["name"], m["label_names"]) for m in models] == [
            ("sentiment", ["Negative", "Positive"]),
            ("stars", ["1-2", "3-4", "7-8", "9-10"]),
        ]
        answer = client.post("/predict", json={"model": "stars", "texts": TEXTS[:2]}, headers=headers).json()
        assert answer["model"] == "stars" and len(answer["predictions"][0]["probabilities"]) == 4
        unknown = client.post("/predict", json={"model": "nope", "texts": ["a"]}, headers=headers)
        assert unknown.status_code == 404 and "sentiment, stars" in unknown.json()["detail"]
        unnamed = client.post("/predict", json={"texts": ["a"]}, headers=headers)
        assert unnamed.status_code == 400 and "sentiment, stars" in unnamed.json()["detail"]
        assert client.post("/predict", json={"model": "stars", "texts": ["a"]}).status_code == 401
        too_many = client.post("/predict", json={"model": "stars", "texts": ["a"] * 4}, headers=headers)
        assert too_many.status_code == 422
        info = client.get("/info", params={"model": "stars"}).json()
        assert info["model"] == "stars" and info["label_names"][0] == "1-2" and info["lora"]["r"] == 8
        assert client.get("/info").json()["models"] == ["sentiment", "stars"]
        assert client.get("/info", params={"model": "nope"}).status_code == 404


def test_runs_dir_picks_up_new_runs_skips_damaged_ones_and_drops_removed_ones(tiny_runs, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copytree(tiny_runs / "sentiment", served / "sentiment")
    damaged = served / "damaged"
    shutil.copytree(tiny_runs / "stars", damaged)
    (damaged / "adapter_model.safetensors").write_bytes(b"not safetensors")
    lines = []
    models = ManyModels(load_classifiers([], precision="fp32"), str(served), log=lines.append)
    models.refresh()
    assert models.names == ["sentiment"] and any("skipped" in line and "damaged" in line for line in lines)
    with TestClient(create_app(models, ServeSettings(runs_poll_s=3600))) as client:
        assert client.post("/predict", json={"texts": ["Great."]}).status_code == 200  # one model: name optional
        shutil.copytree(tiny_runs / "stars", served / "late")  # finished after the server started
        late = client.post("/predict", json={"model": "late", "texts": TEXTS[:2]})
        assert late.status_code == 200
        got = np.array([list(p["probabilities"].values()) for p in late.json()["predictions"]])
        np.testing.assert_allclose(got, own_scores(tiny_runs / "stars", TEXTS[:2]), atol=1e-5)
        shutil.rmtree(served / "sentiment")
        models.refresh()
        assert [m["name"] for m in client.get("/models").json()["models"]] == ["late"]
    assert sum("skipped" in line for line in lines) == 1  # a damaged run is reported once, not at every look
    answers = models.predict_many([("gone", ["a"]), ("late", ["a"])])  # a request that waited while its run went
    assert answers[0].status_code == 404 and answers[1].shape == (1, 4)


def test_predict_file_with_several_runs_writes_a_set_of_columns_per_run(tiny_runs, tmp_path):
    from lora_sentiment.cli import main

    pd.DataFrame({"text": TEXTS, "id": range(5)}).to_csv(tmp_path / "in.csv", index=False)
    runs = [f"mood={tiny_runs / 'sentiment'}", str(tiny_runs / "stars")]
    out = tmp_path / "out.jsonl"
    # fp32 as own_scores: the tiny runs' classes are near-tied, and bf16 (the default on CPUs with bf16 units) moved
    # two of five stars answers in one CI run.
    flags = ["--input", str(tmp_path / "in.csv"), "--output", str(out), "--no-progress", "--precision", "fp32"]
    assert main(["predict", *runs, *flags]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(rows[0]) == [
        "text", "id", "mood.predicted_label", "mood.predicted_label_name", "mood.probability", "mood.probabilities",
        "stars.predicted_label", "stars.predicted_label_name", "stars.probability", "stars.probabilities",
    ]  # fmt: skip
    stars_expected = own_scores(tiny_runs / "stars", TEXTS)
    assert [r["stars.predicted_label"] for r in rows] == stars_expected.argmax(1).tolist()
    mood_expected = own_scores(tiny_runs / "sentiment", TEXTS)
    assert [r["mood.predicted_label"] for r in rows] == mood_expected.argmax(1).tolist()


def test_evaluate_scores_several_runs_side_by_side(tiny_runs, small_csv, capsys):
    from lora_sentiment.cli import main

    run = str(tiny_runs / "sentiment")
    assert main(["evaluate", run, "--data", str(small_csv), "--json", "--precision", "fp32"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main(["evaluate", run, f"again={run}", "--data", str(small_csv), "--json", "--precision", "fp32"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert list(both) == ["sentiment", "again"]
    assert both["sentiment"]["accuracy"] == both["again"]["accuracy"] == alone["accuracy"]
    assert main(["evaluate", run, f"again={run}", "--data", str(small_csv), "--precision", "fp32"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["run", "accuracy"] and [line.split()[0] for line in table[1:3]] == [
        "sentiment",
        "again",
    ]
    assert table[3].startswith("again vs sentiment on the same 96 texts: accuracy +0.0000")  # the paired bootstrap
    # A file one run cannot read names that run: the star classes were named, small_csv's labels are ids.
    assert main(["evaluate", run, str(tiny_runs / "stars"), "--data", str(small_csv)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lora-sentiment: error: run stars: the labels in "), err


def test_bad_run_lists_are_refused_in_one_line(tiny_runs, tmp_path, capsys):
    from lora_sentiment.cli import main

    (tmp_path / "in.csv").write_text("text\nhello\n")
    twice = [str(tiny_runs / "sentiment"), f"sentiment={tiny_runs / 'stars'}"]
    assert main(["predict", *twice, "--input", str(tmp_path / "in.csv")]) == 2
    assert "two runs are named 'sentiment'" in capsys.readouterr().err
    assert main(["predict", str(tiny_runs / "sentiment"), str(tmp_path), "--input", str(tmp_path / "in.csv")]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert main(["serve"]) == 2
    assert "--runs-dir" in capsys.readouterr().err
    assert main(["export", str(tiny_runs / "sentiment"), str(tmp_path / "export"), "--format", "onnx"]) == 0
    capsys.readouterr()
    # evaluate needs no shared base: a run against its export (did it keep the scores?), and another run beside
    (tmp_path / "labelled.csv").write_text("text,label\nA fine film.,Positive\nDull.,Negative\nGood.,Positive\n")
    three = [str(tiny_runs / "sentiment"), f"exported={tmp_path / 'export'}", f"again={tiny_runs / 'sentiment'}"]
    assert main(["evaluate", *three, "--data", str(tmp_path / "labelled.csv"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert list(scores) == ["sentiment", "exported", "again"]
    assert scores["exported"]["accuracy"] == scores["sentiment"]["accuracy"] == scores["again"]["accuracy"]
    assert "comparison_with_sentiment" in scores["exported"]


def test_a_run_and_its_export_predict_side_by_side(tiny_runs, tmp_path, capsys, imdb_frames):
    """Did the export keep the answers? `predict RUN EXPORT` as `evaluate` takes them: texts, files and workers,
    the export opened alone beside runs that share their base."""
    from lora_sentiment.cli import main
    from lora_sentiment.opening import SideBySide, open_predictor

    export = tmp_path / "export"
    assert main(["export", str(tiny_runs / "sentiment"), str(export), "--format", "onnx"]) == 0
    texts = imdb_frames[1].text.head(12).tolist()
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)
    capsys.readouterr()
    named = [str(tiny_runs / "sentiment"), f"exported={export}", f"stars={tiny_runs / 'stars'}"]
    assert main(["predict", *named, "--text", *texts[:2], "--json", "--precision", "fp32"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in rows] == ["sentiment"] * 2 + ["exported"] * 2 + ["stars"] * 2
    assert [r["label"] for r in rows[:2]] == [r["label"] for r in rows[2:4]]
    for workers in ("1", "2"):
        out = tmp_path / f"out-{workers}.csv"
        assert main(["predict", *named, "--input", str(tmp_path / "in.csv"), "--output", str(out), "--workers",
                     workers, "--precision", "fp32", "--no-progress"]) == 0  # fmt: skip
        table = pd.read_csv(out)
        assert {"sentiment.probability", "exported.probability", "stars.probability"} <= set(table.columns)
        np.testing.assert_allclose(table["exported.probability"], table["sentiment.probability"], atol=1e-3)
        assert (table["exported.predicted_label"] == table["sentiment.predicted_label"]).all()
    opened = open_predictor({"run": tiny_runs / "sentiment", "export": export}, precision="fp32")
    assert isinstance(opened, SideBySide) and opened.names == ["run", "export"]
    run_scores, export_scores = opened.predict_many([("run", texts), ("export", texts)])
    np.testing.assert_allclose(export_scores, run_scores, atol=1e-3)
    # serve: the export beside the runs (which share their base), each answering for itself; no /explain for it
    from lora_sentiment.options import LoadOptions
    from lora_sentiment.serving.models import open_models

    served = open_models(named, None, ServeSettings(), LoadOptions(precision="fp32"))
    with TestClient(create_app(served, ServeSettings())) as client:
        assert [m["name"] for m in client.get("/models").json()["models"]] == ["exported", "sentiment", "stars"]
        probabilities = {}
        for name in ("sentiment", "exported"):
            answer = client.post("/predict", json={"model": name, "texts": texts[:3]}).json()
            assert answer["model"] == name
            probabilities[name] = [p["probability"] for p in answer["predictions"]]
        np.testing.assert_allclose(probabilities["exported"], probabilities["sentiment"], atol=1e-3)
        assert client.get("/info", params={"model": "exported"}).json()["export"]["format"] == "onnx"
        refused = client.post("/explain", json={"model": "exported", "texts": ["Fine."]})
        assert refused.status_code == 400 and "export" in refused.json()["detail"]
    # --runs-dir follows exports as it follows runs: loaded, dropped when gone, a damaged one skipped with a line
    folder = tmp_path / "served"
    shutil.copytree(tiny_runs / "sentiment", folder / "sentiment")
    shutil.copytree(export, folder / "sentiment-onnx")
    lines: list[str] = []
    followed = ManyModels(load_classifiers([], precision="fp32"), str(folder), log=lines.append,
                          options=LoadOptions(precision="fp32"))  # fmt: skip
    followed.refresh()
    assert followed.names == ["sentiment-onnx", "sentiment"]
    with TestClient(create_app(followed, ServeSettings())) as client:
        answer = client.post("/predict", json={"model": "sentiment-onnx", "texts": texts[:3]}).json()
        assert [p["probability"] for p in answer["predictions"]] == pytest.approx(probabilities["exported"])
    shutil.rmtree(folder / "sentiment-onnx")
    followed.refresh()
    assert followed.names == ["sentiment"] and "dropped model 'sentiment-onnx': its export is gone" in lines
    shutil.copytree(export, folder / "broken-onnx")
    (folder / "broken-onnx" / "model.onnx").write_bytes(b"not onnx")
    followed.refresh()
    followed.refresh()  # the same damaged files: not tried again
    assert followed.names == ["sentiment"] and sum(line.startswith("skipped") for line in lines) == 1


def test_long_texts_in_chunks_and_evaluation_match_each_run_alone(tiny_runs, tmp_path, imdb_frames):
    runs = {"sentiment": tiny_runs / "sentiment", "stars": tiny_runs / "stars"}
    classifiers = load_classifiers(runs, precision="fp32", long_text="chunks", stride=8)
    long = [" ".join(imdb_frames[1].text.tolist()[:3]), "Short."]
    for name, path in runs.items():
        alone = load_classifier(path, precision="fp32", long_text="chunks", stride=8)
        np.testing.assert_allclose(classifiers.predict_scores(long, name), alone.predict_scores(long), atol=1e-5)
    rows = imdb_frames[1].head(24).assign(stars=lambda f: f.rating.map(stars))
    rows.to_csv(tmp_path / "held_out.csv", index=False)
    got = classifiers["stars"].evaluate(str(tmp_path / "held_out.csv"), label_column="stars")
    alone = load_classifier(runs["stars"], precision="fp32", long_text="chunks", stride=8)
    assert got["accuracy"] == alone.evaluate(str(tmp_path / "held_out.csv"), label_column="stars")["accuracy"]


def test_traffic_mixes_for_the_serving_benchmark():
    from lora_sentiment.bench.serve_load import traffic_mix

    uniform = traffic_mix(["a", "b", "c", "d"], "uniform", 4000)
    assert {n: uniform.count(n) for n in "abcd"} == pytest.approx({n: 1000 for n in "abcd"}, rel=0.1)
    skewed = traffic_mix(["a", "b", "c", "d"], "skewed", 4000)
    assert skewed.count("a") == pytest.approx(2800, rel=0.05) and skewed == traffic_mix("abcd", "skewed", 4000)


def test_runs_dir_is_looked_at_on_its_own_while_serving(tiny_runs, tmp_path):
    """No request names the new run: the server's periodic look finds it, and drops it when it goes."""
    import time

    served = tmp_path / "served"
    served.mkdir()
    models = ManyModels(load_classifiers([], precision="fp32"), str(served), log=lambda _: None)
    with TestClient(create_app(models, ServeSettings(runs_poll_s=0.2))) as client:
        assert client.get("/models").json() == {"models": []}
        assert "no model is served yet" in client.post("/predict", json={"texts": ["a"]}).json()["detail"]
        shutil.copytree(tiny_runs / "stars", served / "stars")

        def listed():
            return [m["name"] for m in client.get("/models").json()["models"]]

        deadline = time.monotonic() + 30
        while listed() != ["stars"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listed() == ["stars"]
        shutil.rmtree(served / "stars")
        while listed() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listed() == []


@pytest.fixture(scope="module")
def first_token_run(tmp_path_factory, tiny_bert, tiny_runs):
    """A run of the same tiny BERT with --pooling first-token: LoRA on the last query layer, which the runs of
    `tiny_runs` (--pooling mean, the default) train in full."""
    from lora_sentiment import TrainConfig, train

    out = tmp_path_factory.mktemp("first-token") / "run"
    config = TrainConfig(model=tiny_bert, data=str(tiny_runs.parent / "reviews.csv"), max_length=48, epochs=1,
                         batch_size=16, output_dir=str(out), precision="fp32", pooling="first-token")  # fmt: skip
    train(config, log=lambda _: None)
    return out


@pytest.mark.parametrize("first", [True, False])
def test_runs_that_pool_differently_share_a_base(tiny_runs, first_token_run, first):
    """A module one run trains in full and another adapts with LoRA: each row goes through its own run's."""
    runs = {"sentiment": tiny_runs / "sentiment", "stars": tiny_runs / "stars"}
    runs = {"first": first_token_run, **runs} if first else {**runs, "first": first_token_run}
    saved = json.loads((tiny_runs / "sentiment" / "adapter_config.json").read_text())["modules_to_save"]
    assert any(name.endswith("layer.1.attention.self.query") for name in saved)
    classifiers = load_classifiers(runs, precision="fp32", mixing="mixed")
    assert len(classifiers.bases) == 1
    requests = [("first", TEXTS[:3]), ("sentiment", TEXTS), ("first", TEXTS[3:]), ("stars", TEXTS[1:])]
    for (name, texts), scores in zip(requests, classifiers.predict_many(requests)):
        np.testing.assert_allclose(scores, own_scores(runs[name], texts), atol=1e-5)
    alone = classifiers.predict_many([("first", TEXTS)])[0]
    np.testing.assert_allclose(alone, own_scores(first_token_run, TEXTS), atol=1e-5)


def test_a_cpu_predicts_in_batches_of_16(tiny_runs):
    run = tiny_runs / "sentiment"
    for precision in ("fp32", "bf16"):  # modeling/device.py's CPU_BATCH, in either precision
        assert load_classifier(run, precision=precision, engine="torch").default_batch_size == 16
        assert load_classifiers([run], precision=precision).default_batch_size == 16
