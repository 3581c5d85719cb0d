"""Micro-batching: requests that arrive within a short window (or while the model is busy) share one forward
pass. Per-text cost falls with batch size, so concurrent clients get more throughput than one at a time."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np

Request = tuple[str | None, list[str]]  # (model name, texts)


class MicroBatcher:
    """Queues requests and runs them through `predict` together: one call for every request that arrived
    within `wait_s` of the first, up to `max_texts` texts, whichever models they name (`predict` takes the
    (model, texts) requests and returns one score array per request). Runs on the server's event loop; the
    models run in one worker thread, so the loop keeps accepting requests meanwhile."""

    def __init__(self, predict: Callable[[list[Request]], list[np.ndarray]], *, wait_s: float, max_texts: int):
        self.predict = predict
        self.wait_s = wait_s
        self.max_texts = max_texts
        self.queue: asyncio.Queue[tuple[Request, asyncio.Future]] | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.batches = 0
        self.texts = 0
        self._task: asyncio.Task | None = None
        self._held: tuple[Request, asyncio.Future] | None = None  # a request that did not fit the last batch

    async def start(self) -> None:
        # Made here, not in __init__: each server start (lifespan) gets its own loop-bound queue and thread.
        self.queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._held = None
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def in_model_thread(self, function: Callable[[], Any]) -> Any:
        """Run `function` in the models' thread, between forward passes (loading or dropping a model)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function)

    async def submit(self, texts: list[str], model: str | None = None) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(((model, texts), future))
        return await future

    async def _collect(self) -> list[tuple[Request, asyncio.Future]]:
        held, self._held = self._held, None
        items = [held if held is not None else await self.queue.get()]
        if self.wait_s <= 0:
            return items  # no micro-batching: every request is its own forward pass
        count = len(items[0][0][1])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while count < self.max_texts:
            remaining = deadline - loop.time()
            try:
                item = (
                    self.queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self.queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if count + len(item[0][1]) > self.max_texts:
                self._held = item  # first into the next batch, so it keeps its place
                break
            items.append(item)
            count += len(item[0][1])
        return items

    async def _run(self) -> None:
        while True:
            items = await self._collect()
            items = [(request, future) for request, future in items if not future.done()]  # clients that left
            if not items:
                continue
            requests = [request for request, _ in items]
            try:
                scores = await self.in_model_thread(partial(self.predict, requests))
            except Exception as exc:
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.texts += sum(len(texts) for _, texts in requests)
            for (_, future), result in zip(items, scores):
                if future.done():
                    continue
                if isinstance(result, Exception):  # this request alone failed (its model was dropped)
                    future.set_exception(result)
                else:
                    future.set_result(result)
