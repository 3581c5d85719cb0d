"""A bounded loopback load on the server: a fixed number of requests from a fixed number of concurrent clients,
with an overall deadline, so it always stops by itself. Used by `bench-serve` and by the tests.

httpx (the client) is imported where requests are sent: it comes with the test extra, not with the package."""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .options import ServeBenchOptions

Log = Callable[[str], None]


@dataclass
class LoadResult:
    label: str
    requests: int
    concurrency: int
    texts_per_request: int
    seconds: float
    status_counts: dict[str, int] = field(default_factory=dict)
    transport_errors: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests_per_second: float = 0.0
    texts_per_second: float = 0.0
    server: dict[str, Any] = field(default_factory=dict)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.status_counts.items() if status.startswith("5")) + self.transport_errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"server_errors": self.server_errors}


@dataclass(frozen=True)
class Load:
    """`concurrency` clients post `requests` requests in all, each with the next `texts_per_request` texts, within
    `deadline_s`; request i names model `models[i % len(models)]` when models are given (see traffic_mix)."""

    requests: int = 2000
    concurrency: int = 16
    texts_per_request: int = 1
    deadline_s: float = 600
    headers: dict[str, str] | None = None
    label: str = ""
    models: Sequence[str] | None = None


async def run_load(base_url: str, texts: Sequence[str], load: Load | None = None, **given: Any) -> LoadResult:
    """The load (`given`: Load's fields, as keywords) against the server at `base_url`."""
    import httpx

    load = load or Load(**given)
    requests, concurrency, texts_per_request = load.requests, load.concurrency, load.texts_per_request
    headers, models = load.headers, load.models

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    transport_errors = 0
    next_request = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal next_request, transport_errors
        while next_request < requests:
            index = next_request
            next_request += 1
            start = index * texts_per_request
            body: dict[str, Any] = {"texts": [texts[(start + k) % len(texts)] for k in range(texts_per_request)]}
            if models:
                body["model"] = models[index % len(models)]
            began = time.perf_counter()
            try:
                response = await client.post("/predict", json=body, headers=headers)
            except httpx.HTTPError:
                transport_errors += 1
                continue
            latencies.append(time.perf_counter() - began)
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        await asyncio.wait_for(asyncio.gather(*(client_loop(client) for _ in range(concurrency))), load.deadline_s)
        server = (await client.get("/health")).json()
    seconds = time.perf_counter() - began
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    ok = statuses.get("200", 0)
    percentiles = {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 90, 99)}
    return LoadResult(
        label=load.label, requests=requests, concurrency=concurrency, texts_per_request=texts_per_request,
        seconds=seconds, status_counts=statuses, transport_errors=transport_errors, **percentiles,
        max_ms=float(ms.max()), requests_per_second=ok / seconds, texts_per_second=ok * texts_per_request / seconds,
        server=server,
    )  # fmt: skip


class ServerProcess:
    """`lora-sentiment serve` in a child process on loopback, up when the context is entered."""

    def __init__(
        self,
        run_dir: str | Sequence[str],
        port: int,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        startup_s: float = 180,
    ):
        runs = [str(run_dir)] if isinstance(run_dir, (str, os.PathLike)) else [str(r) for r in run_dir]
        self.command = [sys.executable, "-m", "lora_sentiment", "serve", *runs, "--port", str(port), *extra_args]
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        self.startup_s = startup_s
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProcess":
        import httpx

        # Its log goes to a file: a pipe nobody reads fills up (64 KB of access lines or tracebacks) and then
        # blocks the server in the middle of answering.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log, text=True
        )
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.__exit__()
        raise RuntimeError(f"the server did not answer /health within {self.startup_s:.0f} s")

    def peak_rss_mb(self) -> float:
        from ..measure import peak_rss_mb

        return peak_rss_mb(self.process.pid)

    def log_tail(self, size: int = 2000) -> str:
        """The end of the server's log (its stderr) so far."""
        self.log.seek(0)
        return self.log.read()[-size:]

    def __exit__(self, *exc: Any) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compare_batching(
    run_dir: str, texts: Sequence[str], options: ServeBenchOptions, log: Log = print
) -> list[LoadResult]:
    """The same load twice, on fresh servers: one forward pass per request, then micro-batching."""
    window = options.batch_wait_ms
    modes = [
        _Mode("one request per forward pass", [run_dir], ["--batch-wait-ms", "0"]),
        _Mode(f"micro-batching ({window:g} ms window)", [run_dir], ["--batch-wait-ms", str(window)]),
    ]
    return [_measure(mode, texts, options, log) for mode in modes]


@dataclass
class _Mode:
    label: str
    served: Sequence[str]  # what `serve` is given
    args: Sequence[str]  # its flags
    models: Sequence[str] | None = None  # the model each request names


MIXES = ("uniform", "skewed")


def traffic_mix(names: Sequence[str], mix: str, requests: int, seed: int = 0) -> list[str]:
    """The model each request names: uniform (each model as often), or skewed (70 % to the first model, the
    rest shared evenly), in a seeded random order."""
    weights = np.ones(len(names))
    if mix == "skewed" and len(names) > 1:
        weights = np.array([0.7] + [0.3 / (len(names) - 1)] * (len(names) - 1))
    rng = np.random.default_rng(seed)
    return [str(n) for n in rng.choice(list(names), size=requests, p=weights / weights.sum())]


def compare_models(runs: Sequence[str], texts: Sequence[str], options: ServeBenchOptions, log: Log = print
                   ) -> list[LoadResult]:  # fmt: skip
    """The same load on fresh servers: the first run alone (merged), then all runs in one server (shared base)
    under each traffic mix, with mixed-adapter batches and with one pass per run."""
    window = ["--batch-wait-ms", str(options.batch_wait_ms)]
    names = [f"m{i}" for i in range(len(runs))]
    named = [f"{name}={run}" for name, run in zip(names, runs)]
    modes = [_Mode("1 run, merged", [runs[0]], window)]
    for mix in MIXES if options.mix == "both" else (options.mix,):
        for batching in ("mixed", "grouped"):
            models = traffic_mix(names, mix, options.requests)
            modes.append(_Mode(f"{len(runs)} runs, {mix}, {batching}", named,
                               [*window, "--adapter-batching", batching], models))  # fmt: skip
    return [_measure(mode, texts, options, log) for mode in modes]


def _measure(mode: _Mode, texts: Sequence[str], options: ServeBenchOptions, log: Log, warmup: int = 32) -> LoadResult:
    import httpx

    requests, concurrency = options.requests, options.concurrency
    with ServerProcess(mode.served, free_port(), mode.args) as server:
        warm = Load(requests=warmup, concurrency=min(concurrency, warmup),
                    models=list(mode.models[:warmup]) if mode.models else None)  # fmt: skip
        asyncio.run(run_load(server.url, texts, warm))
        passes_before = httpx.get(server.url + "/health").json()["batches"]
        log(f"{mode.label}: {requests} requests from {concurrency} clients...")
        load = Load(requests=requests, concurrency=concurrency, label=mode.label, models=mode.models)
        result = asyncio.run(run_load(server.url, texts, load))
        result.server["forward_passes"] = result.server["batches"] - passes_before
        result.server["peak_rss_mb"] = server.peak_rss_mb()
    log(
        f"  {result.requests_per_second:.1f} req/s, p50 {result.p50_ms:.0f} ms, "
        f"p99 {result.p99_ms:.0f} ms, errors {result.server_errors}"
    )
    return result


def format_results(results: Sequence[LoadResult]) -> str:
    lines = [f"{'mode':<34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'5xx+io':>6} {'passes':>7}"]
    for r in results:
        lines.append(
            f"{r.label:<34} {r.requests_per_second:>7.1f} {r.p50_ms:>7.0f} {r.p99_ms:>7.0f} {r.max_ms:>7.0f} "
            f"{r.server_errors:>6} {r.server.get('forward_passes', 0):>7}"
        )
    if len(results) == 2 and results[0].requests_per_second:
        ratio = results[1].requests_per_second / results[0].requests_per_second
        lines.append(f"throughput ratio (micro-batching / one per pass): {ratio:.2f}x")
    elif len(results) > 2 and results[0].requests_per_second:
        for r in results[1:]:
            lines.append(f"{r.label}: {r.requests_per_second / results[0].requests_per_second:.0%} of 1 run, merged")
    return "\n".join(lines)
