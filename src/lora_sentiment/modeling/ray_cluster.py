"""A Ray cluster for one command: `predict --runner ray` (batch/ray_data.py) and `audit --runner ray` (each fold a
task, training/cross_fitting.py) connect, or start a local Ray, the same way and report its failures the same way."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import UserError, first_line

# What `ray.init(address=...)` takes: "auto", "local", a GCS HOST:PORT or a Ray Client ray://HOST:PORT.
_ADDRESS = re.compile(r"auto|local|(ray://)?[A-Za-z0-9.\-_\[\]:]+:\d{1,5}")


def check_ray(address: str | None, missing: str) -> None:
    """Before any work: Ray is installed (else `missing`, the extra to install) and the address reads as one."""
    if importlib.util.find_spec("ray") is None:
        raise UserError(missing)
    if address is not None and not _ADDRESS.fullmatch(address.strip()):
        raise UserError(
            f"--ray-address {address!r} is not a Ray address: give auto, HOST:PORT or ray://HOST:PORT (or leave "
            "it out to start Ray on this machine)"
        )


@contextmanager
def ray_session(address: str | None) -> Iterator[tuple[dict[str, float], int]]:
    """A local Ray started for this command and stopped after it, or a connection to the cluster at `address`;
    yields the cluster's resources and its live nodes. A caller's own session is used as it is."""
    import ray

    if ray.is_initialized():
        yield ray.cluster_resources(), _alive_nodes(ray)
        return
    # Ray's C++ core logs notes on every actor pool to stderr; failures still reach us as exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"could not connect to Ray at {address}: {first_line(exc)} (check --ray-address)") from None
    try:
        yield ray.cluster_resources(), _alive_nodes(ray)
    finally:
        ray.shutdown()


def _alive_nodes(ray: Any) -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def user_error(exc: BaseException) -> BaseException:
    """The first UserError behind a Ray task failure, as its one line; anything else as it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UserError):
            # Ray appends its retry advice to the message: the first line is ours.
            return UserError(str(seen.args[0] if seen.args else seen).strip().splitlines()[0])
        seen = seen.__cause__ or getattr(seen, "cause", None)
    return exc
