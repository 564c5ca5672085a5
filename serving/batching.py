"""Dynamic batching: coalesce concurrent requests for one model into few model calls.

A ``DynamicBatcher`` is one model's handle on the server's shared ``Scheduler``
(``scheduler.py``), used from the event loop:

- ``submit`` either queues the request's texts or, when the queue already holds its limit of
  texts, raises ``Overloaded`` at once (the adapters answer 429 / RESOURCE_EXHAUSTED): the
  server fails fast instead of queueing forever. A request with a deadline that is still
  queued when the deadline passes is answered ``DeadlineExceeded`` and never run.
- A worker thread forms a batch as soon as the model may run (a free instance, its resources
  free in the pool, its turn by priority): everything queued, up to ``max_batch_size`` texts
  (whole requests; a request larger than that is a batch of its own). While the model runs a
  batch, new requests queue up, so batches grow with load without any timer.
  ``max_wait_ms > 0`` additionally lets an idle model wait that long for a batch to fill (TF
  Serving's ``batch_timeout_micros``).
- ``enabled: false`` makes every request its own model call (the "unbatched" mode).

A batcher built without a scheduler (the unit tests, a single model) gets a private one with
``workers`` threads and instances, which behaves as the old per-model batcher did.

A request carries the model runtime it was resolved to, so a version swap never mixes
versions inside one answer; a batch that straddles a swap makes one call per version.
"""

from __future__ import annotations

import asyncio
from typing import Optional, Sequence

from .config import BatchingConfig
from .metrics import ServingMetrics
from .runtime import ModelRuntime, Prediction
from .scheduler import BatchTimings, QueueSettings, ResourcePool, Scheduler

__all__ = ["BatchTimings", "DynamicBatcher", "queue_settings"]

_SLOT = "model_calls"  # the private scheduler's only resource


def queue_settings(config: BatchingConfig, **overrides) -> QueueSettings:
    """The scheduler's view of a model from its batching config (and its policy's overrides)."""
    base = QueueSettings(
        max_batch_size=config.max_batch_size,
        batching=config.enabled,
        max_wait_s=config.max_wait_ms / 1000.0 if config.enabled else 0.0,
        max_queue=config.max_queue,
        min_instances=config.workers,
        max_instances=config.workers,
    )
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


class DynamicBatcher:
    def __init__(
        self,
        model_name: str,
        config: BatchingConfig,
        metrics: ServingMetrics,
        scheduler: Optional[Scheduler] = None,
        settings: Optional[QueueSettings] = None,
    ):
        self.model_name = model_name
        self.config = config
        self.metrics = metrics
        self._own = scheduler is None
        if scheduler is None:
            settings = settings or queue_settings(config, resources={_SLOT: 1})
            scheduler = Scheduler(ResourcePool({_SLOT: config.workers}), metrics, threads=config.workers)
        self.scheduler = scheduler
        self.queue = scheduler.register(model_name, settings or queue_settings(config))
        self._closed = False

    def start(self) -> "DynamicBatcher":
        if self._own:
            self.scheduler.start()
        return self

    @property
    def queued_texts(self) -> int:
        return self.queue.queued_texts

    @property
    def model_calls(self) -> int:
        return self.queue.executions

    async def submit(
        self, runtime: ModelRuntime, texts: Sequence[bytes], timeout_s: Optional[float] = None
    ) -> tuple[Prediction, BatchTimings]:
        """The request's predictions; Overloaded, DeadlineExceeded, Unavailable or InferenceFailed."""
        item = self.scheduler.submit(self.queue, runtime, texts, timeout_s)
        if item.deadline is None:
            return await item.future
        loop = asyncio.get_running_loop()
        timer = loop.call_later(max(0.0, timeout_s), self.scheduler.expire, self.queue, item)
        try:
            return await item.future
        finally:
            timer.cancel()

    async def close(self) -> None:
        """Stops taking requests, finishes those queued and running (then a private scheduler's threads)."""
        self.scheduler.close(self.queue)
        while self.scheduler.busy(self.queue):
            await asyncio.sleep(0.01)
        if self._own:
            await asyncio.to_thread(self.scheduler.stop)
