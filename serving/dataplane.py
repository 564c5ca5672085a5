"""The data plane: what every protocol adapter calls.

Validates texts, resolves model/version/label, hands the texts to the model's batcher, counts
requests and per-stage latency, and writes the prediction log. Adapters only translate their
wire format to ``predict(...)`` and its ``PredictResult``/``ServingError`` back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from typing import Optional, Sequence

from textops.prediction_log import PredictionRecord

from .batching import DynamicBatcher, queue_settings
from .config import ServerConfig
from .errors import DeadlineExceeded, InvalidInput, NotFound, Overloaded, ServingError, Unavailable, shorten
from .metrics import ServingMetrics
from .ratelimit import RateLimitedLog
from .prediction_logger import PredictionLogWriter, escape_unencodable
from .repository import ModelManager, VersionStatus
from .runtime import ModelRuntime, Prediction
from .scheduler import QueueSettings, ResourcePool, Scheduler

log = logging.getLogger(__name__)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def printable_request_id(request_id: str) -> str:
    """A client's request id as it is logged and echoed: bytes that were not valid UTF-8 (HTTP
    headers arrive as surrogate escapes) written as ``\\xff``, cut to 256 characters."""
    request_id = escape_unencodable(request_id)
    return request_id[:256]


@dataclasses.dataclass
class PredictResult:
    model: str
    version: int
    prediction: Prediction
    request_id: str
    latency_s: float


class Admission:
    """A request admitted before its body was read: it counts against the model's queue (at
    the recent average request size) until it is queued for the model or answered."""

    __slots__ = ("_dp", "_model", "_pending")

    def __init__(self, dataplane: "DataPlane", model: str):
        self._dp, self._model, self._pending = dataplane, model, True

    def queued(self, texts: int) -> None:
        """Its texts are about to enter the batcher's queue, which counts them from now on."""
        if self._pending:
            self._pending = False
            self._dp._admitted_done(self._model, texts)

    def __enter__(self) -> "Admission":
        return self

    def __exit__(self, *exc) -> None:
        if self._pending:
            self._pending = False
            self._dp._admitted_done(self._model, None)
        self._dp._answered(self._model)


class DataPlane:
    def __init__(
        self,
        config: ServerConfig,
        manager: ModelManager,
        metrics: ServingMetrics,
        prediction_log: Optional[PredictionLogWriter] = None,
    ):
        self.config = config
        self.manager = manager
        self.metrics = metrics
        self.prediction_log = prediction_log
        self._batchers: dict[str, DynamicBatcher] = {}
        # admission bookkeeping (event-loop thread only); entries vanish when they reach 0
        self._inflight: dict[str, int] = {}  # admitted, not yet answered
        self._parsing: dict[str, int] = {}  # admitted, not yet queued for the model
        self._texts_per_request: dict[str, float] = {}  # moving average, per model
        self._closing = False
        self._auth_log = RateLimitedLog(log)
        capacity = config.pool.capacity()
        self.scheduler = Scheduler(
            ResourcePool(capacity, metrics), metrics, threads=self._threads(capacity), on_idle=self._on_idle
        )
        self._reloads: dict[str, asyncio.Future] = {}  # one reload per unloaded model, shared by its requests

    def _threads(self, capacity: dict[str, int]) -> int:
        """pool.threads, else enough for every execution the pool's cpu and the models' instances allow."""
        if self.config.pool.threads is not None:
            return self.config.pool.threads
        widest = max([self.config.max_instances(m) for m in self.config.models] or [self.config.max_instances("")])
        return max(1, min(64, max(capacity.get("cpu", 1), widest)))

    def start(self) -> "DataPlane":
        self.scheduler.start()
        return self

    def queue_settings(self, model: str) -> QueueSettings:
        policy, instances = self.config.policy(model), self.config.policy(model).instances
        return queue_settings(
            self.config.batching,
            priority=policy.priority,
            max_queue=self.config.queue_limit(model),
            on_full=policy.queue.on_full,
            min_instances=instances.min,
            max_instances=self.config.max_instances(model),
            resources=dict(instances.resources),
            scale_up_after_s=instances.scale_up_after_ms / 1000.0,
            idle_s=instances.idle_s,
            unload_after_s=instances.unload_after_s,
        )

    # -- unload on idle, reload on demand ---------------------------------------------------
    def _on_idle(self, model: str) -> None:
        """Called by a scheduler thread when the model has been unused for instances.unload_after_s."""
        batcher = self._batchers.get(model)
        if batcher is not None and batcher.queue.unloaded:
            self.manager.unload(model)

    async def _ensure_loaded(self, model: str) -> None:
        """A request for an unloaded model waits for its reload (one reload, however many wait)."""
        if not self.manager.is_unloaded(model):
            return
        batcher = self._batcher(model)
        self.scheduler.wake(batcher.queue)
        try:
            pending = self._reloads.get(model)
            if pending is None:
                pending = self._reloads[model] = asyncio.ensure_future(asyncio.to_thread(self.manager.reload, model))
                pending.add_done_callback(lambda _f: self._reloads.pop(model, None))
            await asyncio.shield(pending)
        finally:
            self.scheduler.woken(batcher.queue)

    # -- health ------------------------------------------------------------------------------
    def live(self) -> bool:
        return not self._closing

    def ready(self) -> bool:
        return not self._closing and self.manager.ready()

    # -- model lookups for the adapters (status, metadata, readiness) ---------------------------
    def model_status(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> list[VersionStatus]:
        """TF Serving's model status: every version known (or the one named), newest first."""
        return self.manager.versions_status(name, version, label)

    def model_metadata(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> ModelRuntime:
        """The runtime whose signatures and classes describe the model (the latest, or the one named)."""
        return self.manager.resolve(name, version, label)

    def servable_versions(self, name: str) -> list[int]:
        return self.manager.servable_versions(name)

    def model_ready(self, name: str, version: Optional[int] = None) -> bool:
        """Whether the model (or that version) can answer now; NotFound for a model not served here."""
        if not self.manager.is_known(name):
            served = ", ".join(self.manager.served_models()) or "none yet"
            raise NotFound(f"model {shorten(name)} is not served here (served models: {served})")
        return self.manager.model_ready(name, version)

    # -- requests ----------------------------------------------------------------------------
    def metric_model(self, name: Optional[str]) -> str:
        """Model label for metrics: client-chosen unknown names must not create new series."""
        return name if name and self.manager.is_known(name) else "unknown"

    def count(self, model: Optional[str], version: str, protocol: str, status: int) -> None:
        self.metrics.child(self.metrics.requests, self.metric_model(model), version, protocol, str(status)).inc()

    def auth_failed(self, protocol: str, peer: Optional[str], reason: str) -> None:
        """A refused authentication: counted (401 / UNAUTHENTICATED) by the caller, logged here (rate-limited)."""
        self._auth_log.log(
            logging.WARNING, "%s authentication failed from %s: %s", protocol, peer or "unknown peer", reason,
            extra={"event": "auth_failed", "protocol": protocol, "peer": peer},
        )

    def check_texts(self, texts: Sequence[bytes]) -> list[str]:
        """Decoded texts, or InvalidInput naming the first bad one (count, UTF-8, size)."""
        limits = self.config.limits
        if not texts:
            raise InvalidInput("no input texts: send at least one instance")
        if len(texts) > limits.max_instances:
            raise InvalidInput(f"{len(texts)} instances in one request; the limit is {limits.max_instances}, split the request")
        decoded = []
        for i, raw in enumerate(texts):
            if len(raw) > limits.max_text_bytes:
                raise InvalidInput(f"instance {i}: text is {len(raw)} bytes; the limit is {limits.max_text_bytes}")
            try:
                decoded.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"instance {i}: text is not valid UTF-8 (bad byte at offset {exc.start})") from None
        return decoded

    def admit(self, model: str, protocol: str) -> Admission:
        """At request start, before the body is read or parsed: a ticket, or Overloaded (counted).

        The request is refused at once when the model's queue, plus the requests admitted and
        still being read or parsed (each at the recent average number of texts per request),
        would pass ``batching.max_queue`` texts, or when ``batching.max_inflight`` requests are
        admitted and unanswered. Under overload the server so spends its time on requests it
        will answer, instead of reading and parsing bodies it would then refuse.
        """
        cfg = self.config.batching
        max_queue = self.config.queue_limit(model)
        batcher = self._batchers.get(model)
        queued = batcher.queued_texts if batcher is not None else 0
        parsing = self._parsing.get(model, 0)
        expected = queued + (parsing + 1) * self._texts_per_request.get(model, 1.0)
        inflight = self._inflight.get(model, 0)
        if expected > max_queue or (cfg.max_inflight is not None and inflight >= cfg.max_inflight):
            self.count(model, "", protocol, Overloaded.http_status)
            self.metrics.overload_rejections.labels(self.metric_model(model), protocol).inc()
            limit = f", limit {cfg.max_inflight}" if cfg.max_inflight is not None else ""
            raise Overloaded(
                f"model {shorten(model)} is overloaded: {queued} texts queued and {parsing} requests being read "
                f"(queue limit {max_queue} texts), {inflight} requests in flight{limit}; retry after a short backoff"
            )
        self._parsing[model] = parsing + 1
        self._inflight[model] = inflight + 1
        if self.manager.is_known(model):
            self.metrics.child(self.metrics.inflight, model).set(inflight + 1)
        return Admission(self, model)

    def _admitted_done(self, model: str, texts: Optional[int]) -> None:
        """An admitted request stopped being 'read or parsed' (queued with ``texts``, or failed)."""
        _decrement(self._parsing, model)
        if texts is not None:
            average = self._texts_per_request.get(model, 1.0)
            self._texts_per_request[model] = 0.9 * average + 0.1 * texts

    def _answered(self, model: str) -> None:
        _decrement(self._inflight, model)
        if self.manager.is_known(model):
            self.metrics.child(self.metrics.inflight, model).set(self._inflight.get(model, 0))

    async def predict(
        self,
        model: str,
        texts: Sequence[bytes],
        *,
        protocol: str,
        version: Optional[int] = None,
        label: Optional[str] = None,
        request_id: Optional[str] = None,
        received: Optional[float] = None,
        admission: Optional[Admission] = None,
        timeout_s: Optional[float] = None,
    ) -> PredictResult:
        """Raises ServingError (already counted in metrics) or returns the prediction.

        ``timeout_s``: the client's deadline from ``received`` (used when the model's queue
        policy allows overrides); else the policy's ``queue.timeout_ms``; else none.
        """
        start = received if received is not None else time.perf_counter()
        request_id = printable_request_id(request_id) if request_id else os.urandom(16).hex()  # uuid4's randomness, without building a UUID
        runtime: Optional[ModelRuntime] = None
        decoded: list[str] = []
        try:
            if self._closing:
                raise Unavailable("server is shutting down; retry on another replica")
            decoded = self.check_texts(texts)
            deadline = self._deadline(model, start, timeout_s)
            await self._ensure_loaded(model)
            try:
                runtime = self.manager.resolve(model, version, label)
            except (Unavailable, NotFound):
                if not self.manager.is_unloaded(model):
                    raise
                await self._ensure_loaded(model)  # unloaded while this request was on its way
                runtime = self.manager.resolve(model, version, label)
            if admission is not None:
                admission.queued(len(texts))
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0:
                self.metrics.deadline_expired.labels(model).inc()
                raise DeadlineExceeded(
                    f"the request's deadline of {(deadline - start) * 1000:.0f} ms passed before it reached model "
                    f"'{model}''s queue; it was not run: allow more time"
                )
            prediction, _ = await self._batcher(model).submit(runtime, texts, left)
        except ServingError as exc:
            version_label = str(runtime.version) if runtime is not None else ""
            self.count(model, version_label, protocol, exc.http_status)
            if isinstance(exc, Overloaded):
                self.metrics.overload_rejections.labels(model, protocol).inc()
            if exc.http_status >= 500 and not isinstance(exc, DeadlineExceeded):  # expiries are counted, not logged
                log.warning("%s request for %s failed: %s", protocol, model, exc.message)
            if runtime is not None:  # it reached a model: a failed prediction, logged as such
                self._log(request_id, runtime, decoded, None, protocol, time.perf_counter() - start, exc.message)
            raise
        latency = time.perf_counter() - start
        v = str(runtime.version)
        self.metrics.child(self.metrics.requests, model, v, protocol, "200").inc()
        self.metrics.child(self.metrics.stage_latency, model, v, "total").observe(latency)
        self._log(request_id, runtime, decoded, prediction, protocol, latency, None)
        return PredictResult(model, runtime.version, prediction, request_id, latency)

    def _deadline(self, model: str, start: float, timeout_s: Optional[float]) -> Optional[float]:
        policy = self.config.policy(model).queue
        if timeout_s is not None and policy.allow_timeout_override:
            return start + timeout_s
        return start + policy.timeout_ms / 1000.0 if policy.timeout_ms is not None else None

    def _batcher(self, model: str) -> DynamicBatcher:
        batcher = self._batchers.get(model)
        if batcher is None:
            batcher = DynamicBatcher(model, self.config.batching, self.metrics, self.scheduler, self.queue_settings(model))
            self._batchers[model] = batcher.start()
        return batcher

    def _log(
        self,
        request_id: str,
        runtime: ModelRuntime,
        texts: list[str],
        prediction: Optional[Prediction],
        protocol: str,
        latency_s: float,
        error: Optional[str],
    ) -> None:
        writer = self.prediction_log
        if writer is None or not texts:
            return
        if not writer.sampled():
            writer.skip(len(texts))
            return
        now = time.time()
        latency_ms = round(latency_s * 1000.0, 3)
        if prediction is None:
            records = [
                PredictionRecord(
                    request_id=request_id, ts=now, model=runtime.name, version=runtime.version, text=t,
                    status="error", protocol=protocol, latency_ms=latency_ms, error=error,
                )
                for t in texts
            ]
        else:
            probabilities = prediction.probabilities.tolist()
            records = [
                PredictionRecord(
                    request_id=request_id, ts=now, model=runtime.name, version=runtime.version, text=t,
                    status="ok", protocol=protocol, label=prediction.labels[i], probabilities=probabilities[i],
                    classes=prediction.classes, latency_ms=latency_ms,
                )
                for i, t in enumerate(texts)
            ]
        writer.submit(records)

    async def close(self) -> None:
        self._closing = True
        for batcher in list(self._batchers.values()):
            await batcher.close()
        await asyncio.to_thread(self.scheduler.stop)
