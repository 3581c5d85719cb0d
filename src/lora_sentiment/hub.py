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
        return
    if path.exists():
        raise UserError(f"{flag} {name} is a file; {fix}")
    if name.startswith((".", "/", "~")):
        raise UserError(f"{flag} {name}: no such folder; {fix}")
