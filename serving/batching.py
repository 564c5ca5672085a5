"""Dynamic batching: coalesce concurrent requests for one model into few model calls.

One ``DynamicBatcher`` per model, living on the server's event loop:

- ``submit`` either queues the request's texts or, when the queue already holds ``max_queue``
  texts, raises ``Overloaded`` at once (the adapters answer 429 / RESOURCE_EXHAUSTED): the
  server fails fast instead of queueing forever.
- A loop forms a batch as soon as a model worker is free: everything queued, up to
  ``max_batch_size`` texts (whole requests; a request larger than that is a batch of its own).
  While the model runs a batch, new requests queue up, so batches grow with load without any
  timer. ``max_wait_ms > 0`` additionally lets an idle model wait that long for a batch to fill
  (TF Serving's ``batch_timeout_micros``).
- Model calls run in a thread pool (``workers`` threads), never on the event loop.
- ``enabled: false`` makes every request its own model call (the "unbatched" mode).

A request carries the model runtime it was resolved to, so a version swap never mixes
versions inside one answer; a batch that straddles a swap makes one call per version.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
import time
from typing import Optional, Sequence

from .config import BatchingConfig
from .errors import InferenceFailed, Overloaded, Unavailable
from .metrics import ServingMetrics
from .runtime import ModelRuntime, Prediction

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BatchTimings:
    queue_s: float
    batch_s: float
    inference_s: float
    batch_size: int


@dataclasses.dataclass
class _Item:
    runtime: ModelRuntime
    texts: Sequence[bytes]
    future: asyncio.Future
    enqueued: float


class DynamicBatcher:
    def __init__(self, model_name: str, config: BatchingConfig, metrics: ServingMetrics):
        self.model_name = model_name
        self.config = config
        self.metrics = metrics
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_texts = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix=f"model-{model_name}"
        )
        self._slots = asyncio.Semaphore(config.workers)
        self._arrived = asyncio.Event()
        self._task: Optional[asyncio.Task] = None
        self._running: set[asyncio.Task] = set()
        self._closed = False
        self._depth = metrics.queue_depth.labels(model_name)
        self.model_calls = 0

    def start(self) -> "DynamicBatcher":
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.model_name}")
        return self

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    async def submit(self, runtime: ModelRuntime, texts: Sequence[bytes]) -> tuple[Prediction, BatchTimings]:
        if self._closed:
            raise Unavailable(f"model '{self.model_name}' is shutting down; retry on another replica")
        if self._queued_texts + len(texts) > self.config.max_queue:
            raise Overloaded(
                f"model '{self.model_name}' is overloaded: {self._queued_texts} texts already queued "
                f"(limit {self.config.max_queue}); retry after a short backoff"
            )
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(runtime, texts, future, time.perf_counter()))
        self._queued_texts += len(texts)
        self._depth.set(self._queued_texts)
        self._arrived.set()
        return await future

    async def close(self) -> None:
        """Stops taking requests, finishes those queued and running, then stops the threads."""
        self._closed = True
        while self._queue or self._running:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    # -- the batching loop -----------------------------------------------------------------------
    async def _loop(self) -> None:
        max_batch = self.config.max_batch_size if self.config.enabled else 1
        max_wait = self.config.max_wait_ms / 1000.0 if self.config.enabled else 0.0
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            await self._slots.acquire()  # requests keep queueing while all workers are busy
            if max_wait > 0 and self._queued_texts < max_batch:
                deadline = self._queue[0].enqueued + max_wait
                while self._queued_texts < max_batch:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
            items = [self._queue.popleft()]
            size = len(items[0].texts)
            while self._queue and self.config.enabled and size + len(self._queue[0].texts) <= max_batch:
                item = self._queue.popleft()
                items.append(item)
                size += len(item.texts)
            self._queued_texts -= size
            self._depth.set(self._queued_texts)
            task = asyncio.get_running_loop().create_task(self._run(items, size))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, items: list[_Item], size: int) -> None:
        formed = time.perf_counter()
        try:
            groups: dict[int, list[_Item]] = {}
            for item in items:  # one model call per version (a batch can straddle a swap)
                groups.setdefault(id(item.runtime), []).append(item)
            for group in groups.values():
                await self._run_group(group, formed)
        finally:
            self._slots.release()

    async def _run_group(self, items: list[_Item], formed: float) -> None:
        runtime = items[0].runtime
        texts: list[bytes] = []
        for item in items:
            texts.extend(item.texts)
        version = str(runtime.version)
        loop = asyncio.get_running_loop()
        try:
            started, prediction, done = await loop.run_in_executor(self._executor, _timed_predict, runtime, texts)
        except Exception as exc:  # the model failed on this batch: every request in it gets a 500
            log.exception("model %s v%s failed on a batch of %d texts", self.model_name, version, len(texts))
            error = InferenceFailed(f"model '{self.model_name}' version {version} failed on this input: {type(exc).__name__}")
            for item in items:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        self.model_calls += 1
        stage = self.metrics.stage_latency
        stage.labels(self.model_name, version, "batch").observe(started - formed)
        stage.labels(self.model_name, version, "inference").observe(done - started)
        self.metrics.batch_size.labels(self.model_name, version).observe(len(texts))
        queue_hist = stage.labels(self.model_name, version, "queue")
        offset = 0
        for item in items:
            n = len(item.texts)
            queue_hist.observe(formed - item.enqueued)
            if not item.future.done():  # the client may have gone away
                part = Prediction(
                    prediction.probabilities[offset : offset + n],
                    prediction.labels[offset : offset + n],
                    prediction.classes,
                )
                item.future.set_result(
                    (part, BatchTimings(formed - item.enqueued, started - formed, done - started, len(texts)))
                )
            offset += n


def _timed_predict(runtime: ModelRuntime, texts: list[bytes]) -> tuple[float, Prediction, float]:
    started = time.perf_counter()
    prediction = runtime.predict(texts)
    return started, prediction, time.perf_counter()
