"""The REST server: endpoints, validation limits (4xx, never 500), the API key, and micro-batching."""

import asyncio

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lora_sentiment.serving.app import MicroBatcher, ServeSettings, create_app, run_info


@pytest.fixture(scope="module")
def client(trained_run, trained_classifier):
    settings = ServeSettings(max_texts=4, max_chars=200, max_body_bytes=4096)
    with TestClient(create_app(trained_classifier, settings, run_info=run_info(trained_run))) as test_client:
        yield test_client


def test_predict_matches_the_python_api(client, trained_classifier):
    texts = ["A wonderful, moving film.", "Dull and far too long.", "Fine."]
    response = client.post("/predict", json={"texts": texts})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    expected = trained_classifier.predict_proba(texts)
    assert [p["label"] for p in predictions] == expected.argmax(1).tolist()
    assert [p["label_name"] for p in predictions] == [["Negative", "Positive"][i] for i in expected.argmax(1)]
    got = np.array([[p["probabilities"]["Negative"], p["probabilities"]["Positive"]] for p in predictions])
    assert got == pytest.approx(expected, abs=1e-5)


def test_a_single_run_server_answers_to_its_name_too(client, trained_run):
    named = client.post("/predict", json={"model": trained_run.name, "texts": ["Good."]})
    assert named.status_code == 200 and named.json()["model"] == trained_run.name
    other = client.post("/predict", json={"model": "other", "texts": ["Good."]})
    assert other.status_code == 404 and trained_run.name in other.json()["detail"]
    assert [m["name"] for m in client.get("/models").json()["models"]] == [trained_run.name]


def test_health_info_docs_and_page(client, trained_run):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/info").json()
    assert info["label_names"] == ["Negative", "Positive"] and info["run"] == trained_run.name
    assert info["lora"]["r"] == 8 and sorted(info["lora"]["targets"]) == ["q_lin", "v_lin"]
    assert 0 <= info["metrics"]["accuracy"] <= 1 and info["limits"]["max_texts"] == 4
    assert info["examples"] == ["A wonderful, moving film.", "Dull and far too long."]
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/predict" in schema["paths"] and "/" not in schema["paths"]
    page = client.get("/")
    assert (
        page.status_code == 200
        and page.headers["content-type"].startswith("text/html")
        and 'id="classify"' in page.text
    )


def test_info_names_the_score_to_show_first(tmp_path, trained_run):
    """The page shows a run's first headline score: accuracy, or macro-F1 where the evaluation texts are skewed (a run
    that answers the common class to every text scores a high accuracy there)."""
    import json
    import shutil

    run = shutil.copytree(trained_run, tmp_path / "skewed")
    record = json.loads((run / "metrics.json").read_text())
    assert run_info(run)["headline"] == ["accuracy", "f1"]
    record["final"]["confusion_matrix"] = [[0, 2], [0, 38]]
    (run / "metrics.json").write_text(json.dumps(record))
    info = run_info(run)
    assert info["headline"] == ["f1_macro", "accuracy"] and "confusion_matrix" not in info["metrics"]
    with TestClient(create_app(_loaded(run), run_info=info)) as client:
        assert client.get("/models").json()["models"][0]["headline"] == ["f1_macro", "accuracy"]


def _loaded(run):
    from lora_sentiment.inference.classifier import load_classifier

    return load_classifier(run, precision="fp32")


@pytest.mark.parametrize(
    "body, status",
    [
        ({"texts": []}, 422),  # none
        ({"texts": ["a"] * 5}, 422),  # over --max-texts
        ({"texts": ["x" * 201]}, 422),  # over --max-chars
        ({"texts": [""]}, 422),
        ({"texts": ["ok", " \n\t "]}, 422),  # blank: was answered, where predict --text refuses it
        ({"texts": "just a string"}, 422),
        ({"texts": [1, 2]}, 422),
        ({"text": ["a"]}, 422),  # misspelt field
        ({"texts": ["a"], "extra": 1}, 422),
        ([], 422),
    ],
)
def test_bad_requests_get_4xx_json(client, body, status):
    response = client.post("/predict", json=body)
    assert response.status_code == status
    assert "detail" in response.json()


def test_malformed_and_oversize_bodies(client):
    response = client.post("/predict", content=b'{"texts": ["unclosed', headers={"content-type": "application/json"})
    assert response.status_code == 422 and "detail" in response.json()
    response = client.post("/predict", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit still holds
        for _ in range(10):
            yield b"x" * 1000

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert client.get("/predict").status_code == 405


def test_api_key_protects_predict_only(trained_classifier):
    app = create_app(trained_classifier, ServeSettings(api_key="s3cret"))
    with TestClient(app) as client:
        assert client.post("/predict", json={"texts": ["Good."]}).status_code == 401
        assert client.post("/predict", json={"texts": ["Good."]}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/predict", json={"texts": ["Good."]}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/info").json()["api_key_required"] is True


def _recording_predict(calls):
    def predict(requests):
        calls.append([text for _, texts in requests for text in texts])
        return [np.array([[len(t), 1.0] for t in texts]) for _, texts in requests]  # each row identifies its text

    return predict


def test_micro_batching_merges_concurrent_requests_and_routes_results_back():
    async def scenario(wait_s):
        calls = []
        batcher = MicroBatcher(_recording_predict(calls), wait_s=wait_s, max_texts=64)
        await batcher.start()
        requests = [["x" * (i + 1)] * (1 + i % 3) for i in range(12)]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        for request, result in zip(requests, results):
            assert result[:, 0].tolist() == [len(t) for t in request]
        return calls

    batched = asyncio.run(scenario(0.05))
    assert len(batched) < 12 and sum(map(len, batched)) == sum(1 + i % 3 for i in range(12))
    unbatched = asyncio.run(scenario(0.0))
    assert len(unbatched) == 12  # --batch-wait-ms 0: one forward pass per request


def test_micro_batches_respect_the_text_cap_and_keep_order():
    async def scenario():
        calls = []
        batcher = MicroBatcher(_recording_predict(calls), wait_s=0.05, max_texts=5)
        await batcher.start()
        requests = [["a" * (i + 1)] * 2 for i in range(6)]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        assert [r[:, 0].tolist() for r in results] == [[i + 1] * 2 for i in range(6)]
        return calls

    calls = asyncio.run(scenario())
    assert all(len(c) <= 5 for c in calls)
    flattened = [t for call in calls for t in call]
    assert [len(t) for t in flattened] == [i + 1 for i in range(6) for _ in range(2)]  # first come, first served


def test_a_failing_model_gives_500_and_the_server_stays_up(trained_classifier, capsys):
    class Broken:
        label_names = trained_classifier.label_names
        space = trained_classifier.space
        model = trained_classifier.model
        precision = "fp32"

        def predict_scores(self, texts):
            raise RuntimeError("boom")

    with TestClient(create_app(Broken()), raise_server_exceptions=False) as client:
        assert "failed a warm-up text: boom" in capsys.readouterr().out  # it starts all the same
        assert client.post("/predict", json={"texts": ["a"]}).status_code == 500
        assert client.get("/health").status_code == 200


def test_concurrent_http_clients_share_forward_passes(live_server):
    """Over real HTTP: 16 clients, 200 requests, no errors, and fewer forward passes than requests."""
    import httpx

    from lora_sentiment.bench.serve_load import run_load

    before = httpx.get(live_server + "/health").json()["batches"]
    result = asyncio.run(
        run_load(
            live_server, ["Good film.", "Bad film.", "An average film."], requests=200, concurrency=16, deadline_s=120
        )
    )
    assert result.status_counts == {"200": 200} and result.server_errors == 0
    passes = result.server["batches"] - before
    assert 0 < passes < 200
    assert result.p50_ms <= result.p99_ms <= result.max_ms


@pytest.mark.slow
def test_load_2000_requests_from_16_clients_against_a_server_process(trained_run, imdb_frames):
    """A bounded loopback load on `lora-sentiment serve` in its own process: every request answered, 0 errors."""
    from lora_sentiment.bench.serve_load import ServerProcess, free_port, run_load

    reviews = imdb_frames[1].text.tolist()[:200]
    with ServerProcess(str(trained_run), free_port(), env={"HF_HUB_OFFLINE": "1"}) as server:
        result = asyncio.run(run_load(server.url, reviews, requests=2000, concurrency=16, deadline_s=300))
    assert result.status_counts == {"200": 2000} and result.server_errors == 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.server["batches"] < 2000  # concurrent requests shared forward passes


def test_serve_binds_loopback_by_default_and_checks_its_flags(tmp_path, trained_run, capsys):
    from lora_sentiment.cli import build_parser, main
    from lora_sentiment.cli.flags import from_args
    from lora_sentiment.config import ServeSettings

    settings = from_args(build_parser().parse_args(["serve", "run"]), ServeSettings)  # what `serve run` binds
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert main(["serve", str(tmp_path)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert main(["serve", str(trained_run), "--max-texts", "0"]) == 2
    assert "--max-texts" in capsys.readouterr().err


def test_the_api_key_can_come_from_the_environment(monkeypatch):
    from lora_sentiment.serving.app import API_KEY_ENV, api_key_from_env

    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert api_key_from_env(None) == "from-env" and api_key_from_env("flag") == "flag"
    monkeypatch.delenv(API_KEY_ENV)
    assert api_key_from_env(None) is None
