"""hub.py: a hub name loads from the hub, from the cache when the hub is out of reach, or fails in one line."""

import pytest

import lora_sentiment.hub as hub
from lora_sentiment.errors import UserError


def _loader(calls, *, fails_online=False, cached=True):
    def load(**kwargs):
        calls.append(kwargs)
        if kwargs.get("local_files_only") and not cached:
            raise OSError("not in cache")
        if not kwargs and fails_online:
            raise OSError("404 Client Error: Repository Not Found")
        return "loaded"

    return load


def test_offline_flag_uses_the_cache_or_names_the_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "yes")
    assert hub.hub_offline()
    calls = []
    assert hub.load_with_fallback("model", "org/name", "--model", _loader(calls), "local_files_only") == "loaded"
    assert calls == [{}]  # huggingface_hub itself reads the cache when offline

    def failing(**_):
        raise OSError("offline")

    with pytest.raises(UserError, match="HF_HUB_OFFLINE=1 .* pass a local path with --model"):
        hub.load_with_fallback("model", "org/name", "--model", failing, "local_files_only")


def test_unreachable_hub_falls_back_to_the_cache(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    calls = []
    assert hub.load_with_fallback("model", "org/name", "--model", _loader(calls), "local_files_only") == "loaded"
    assert calls == [{"local_files_only": True}]
    with pytest.raises(
        UserError, match="cannot reach the Hugging Face Hub .* not cached; pass a local path with --data"
    ):
        hub.load_with_fallback("dataset", "org/data", "--data", _loader([], cached=False), "local_files_only")


def test_reachable_hub_errors_name_the_flag(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    with pytest.raises(UserError, match="Repository Not Found; check the name or pass a local path with --model"):
        hub.load_with_fallback("model", "org/typo", "--model", _loader([], fails_online=True), "local_files_only")


def test_is_local(tmp_path):
    assert hub.is_local(str(tmp_path)) and not hub.is_local("distilbert-base-uncased")
