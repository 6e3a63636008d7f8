"""Dynamic micro-batching: requests that arrive within `max_wait_ms` run as one forward pass.

    batcher = Batcher(lambda texts: classify(served, texts), max_batch_size=16, max_wait_ms=5, max_queue=256)
    await batcher.start(); label = await batcher.submit("great film", timeout=30)

The queue is bounded: `submit` raises `QueueFull` at once when it is full (the app answers 429 with
Retry-After), never blocks. Batches run in one worker thread per model, so the event loop stays free.
`stop()` finishes every queued request before returning: that is how SIGTERM drains in-flight work.
`workers > 1` runs that many batches at once (one per core with single-threaded torch is the usual CPU setup).
A batch that raises is run again item by item, so an input that breaks the model fails only its own request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class QueueFull(Exception):
    """The model's queue is at `max_queue`; the client should retry after `retry_after` seconds."""

    def __init__(self, retry_after: float):
        self.retry_after = retry_after
        super().__init__(f"queue full; retry after {retry_after:.1f}s")


class Batcher:
    """One queue + one worker for one model: submit items, get results in the same order they went in."""

    def __init__(
        self,
        fn: Callable[[list[Any]], list[Any]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[int, int], None] | None = None,
        on_done: Callable[[int, float], None] | None = None,
        name: str = "model",
        workers: int = 1,
    ):
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch  # (batch size, queue depth after taking it): metrics
        self.on_done = on_done  # (batch size, seconds it ran, item-by-item reruns included): cost metering
        self.name = name
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"batch-{name}")
        self._slots: asyncio.Semaphore | None = None  # batches in flight <= workers
        self._running: set[asyncio.Task] = set()
        self._recent_batch_s = 0.05  # moving estimate of one batch's duration, for Retry-After
        self._closing = False
        self.isolated_batches = 0  # batches that failed and were re-run item by item

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.workers)
        self._task = asyncio.create_task(self._loop(), name=f"batcher-{self.name}")

    async def submit(self, item: Any, timeout: float | None = None) -> Any:
        """The result for `item`; raises QueueFull, TimeoutError, or what the batch function raised."""
        if self._queue is None or self._closing:
            raise RuntimeError(f"model {self.name} is not accepting requests (shutting down)")
        if self._queue.qsize() >= self.max_queue:
            batches_ahead = self._queue.qsize() / self.max_batch_size
            raise QueueFull(retry_after=max(1.0, batches_ahead * self._recent_batch_s))
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            future.cancel()  # dropped from its batch if not started yet
            raise TimeoutError(f"no result from {self.name} within {timeout:g}s") from None

    async def stop(self) -> None:
        """Finish every queued request, then stop the worker."""
        self._closing = True
        if self._queue is not None and self._task is not None:
            await self._queue.put(None)  # sentinel after everything already queued
            await self._task
        self._pool.shutdown(wait=True)

    async def _loop(self) -> None:
        assert self._queue is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # a free worker first, so a batch keeps filling while all are busy
            first = await self._queue.get()
            if first is None:
                await asyncio.gather(*self._running)
                return
            batch, stop = [first], False
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch_size:
                remaining = deadline - loop.time()
                try:
                    nxt = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(
                        self._queue.get(), remaining)
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            live = [(item, fut) for item, fut in batch if not fut.done()]  # timed-out callers are gone
            task = asyncio.create_task(self._run(loop, live))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            if stop:
                await asyncio.gather(*self._running)
                return

    async def _run(self, loop, batch: list) -> None:
        try:
            if batch:
                await self._run_batch(loop, batch)
        finally:
            self._slots.release()

    async def _run_batch(self, loop, batch: list) -> None:
        if self.on_batch is not None:
            self.on_batch(len(batch), self._queue.qsize() if self._queue else 0)
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._pool, self.fn, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: batch function returned {len(results)} results for {len(batch)}")
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
            else:  # one item may have failed the batch: each runs alone, so it fails only its own request
                await self._run_alone(loop, batch)
        else:
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        took = time.perf_counter() - start
        self._recent_batch_s = 0.8 * self._recent_batch_s + 0.2 * took
        if self.on_done is not None:
            self.on_done(len(batch), took)

    async def _run_alone(self, loop, batch: list) -> None:
        self.isolated_batches += 1
        for item, fut in batch:
            if fut.done():
                continue
            try:
                (result,) = await loop.run_in_executor(self._pool, self.fn, [item])
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)
