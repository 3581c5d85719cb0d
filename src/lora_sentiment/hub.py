"""Fail fast when a hub name cannot be fetched, instead of huggingface_hub's long retry loop."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from .errors import UserError, first_line

T = TypeVar("T")

_TRUTHY = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub endpoint, bounded in time (DNS included, hence the thread)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def is_local(name: str) -> bool:
    return Path(name).expanduser().exists()


def load_with_fallback(what: str, name: str, flag: str, load: Callable[..., T], cache_kwarg: str | None) -> T:
    """Load `name` from the hub, from the local cache when the hub is out of reach, or fail in one line.

    `load(**kwargs)` does the real loading; `cache_kwarg` names its cache-only switch (e.g. local_files_only).
    """
    hint = f"pass a local path with {flag}"
    if hub_offline():
        try:
            return load()
        except (OSError, ValueError) as exc:
            raise UserError(
                f"could not load {what} {name!r} with HF_HUB_OFFLINE=1 (not in the local cache); {hint}"
            ) from exc
    if hub_reachable():
        try:
            return load()
        except OSError as exc:
            raise UserError(
                f"could not load {what} {name!r} from the Hugging Face Hub: {first_line(exc)}; check the name or {hint}"
            ) from exc
    if cache_kwarg is not None:
        try:
            return load(**{cache_kwarg: True})
        except (OSError, ValueError):
            pass
    raise UserError(
        f"cannot reach the Hugging Face Hub to load {what} {name!r} and it is not cached; {hint}"
        + ("" if cache_kwarg else ", or set HF_HUB_OFFLINE=1 to use a cached copy")
    )


def check_model_source(name: str, flag: str = "--model") -> None:
    """A local model path that does not exist, or is not a saved model's folder, refused before any data is read (a
    hub name is checked when it loads). A mistyped path was taken for a hub name and refused only after the data
    and the baseline, as "cannot reach the Hugging Face Hub ... pass a local path with --model"."""
    path = Path(name).expanduser()
    fix = "give a saved model's folder (save_pretrained) or a hub name such as distilbert-base-uncased"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{flag} {name} is a folder without config.json, not a saved model; {fix}")
        _check_saved_model_files(path, name, flag)
        return
    if path.exists():
        raise UserError(f"{flag} {name} is a file; {fix}")
    if name.startswith((".", "/", "~")):
        raise UserError(f"{flag} {name}: no such folder; {fix}")


# What `from_pretrained` reads from a saved model's folder, checked by name so that a folder missing its weights or
# its tokenizer is refused before the data and the baseline, not after them (the model loads only then).
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")  # loaded with use_safetensors=True
_PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
              "sentencepiece.bpe.model")  # fmt: skip


def _check_saved_model_files(path: Path, name: str, flag: str) -> None:
    import json

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise UserError(f"{flag} {name}: config.json is not readable JSON ({first_line(exc)}); save the model "
                        "again (save_pretrained) or pick another folder") from exc  # fmt: skip
    if not isinstance(config, dict):
        raise UserError(f"{flag} {name}: config.json holds no settings object; save the model again (save_pretrained)")
    if not any((path / f).is_file() for f in _WEIGHTS):
        if any((path / f).is_file() for f in _PICKLED):
            raise UserError(f"{flag} {name} has only pickled weights (pytorch_model.bin), which are not loaded "
                            "(they can run code); convert them to safetensors (model.save_pretrained) or pick another "
                            "folder")  # fmt: skip
        raise UserError(f"{flag} {name} has no weights (model.safetensors); save the model into it "
                        "(model.save_pretrained) or pick another folder")  # fmt: skip
    if not any((path / f).is_file() for f in _TOKENIZER):
        raise UserError(f"{flag} {name} has no tokenizer files (tokenizer.json, vocab.txt, ...); save the "
                        "tokenizer beside the model (tokenizer.save_pretrained) or pick another folder")  # fmt: skip
