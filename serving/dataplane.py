"""The data plane: what every protocol adapter calls.

Validates texts, resolves model/version/label, hands the texts to the model's batcher, counts
requests and per-stage latency, and writes the prediction log. Adapters only translate their
wire format to ``predict(...)`` and its ``PredictResult``/``ServingError`` back.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from typing import Optional, Sequence

from textops.prediction_log import PredictionRecord

from .batching import DynamicBatcher
from .config import ServerConfig
from .errors import InvalidInput, Overloaded, ServingError, Unavailable, shorten
from .metrics import ServingMetrics
from .ratelimit import RateLimitedLog
from .prediction_logger import PredictionLogWriter, escape_unencodable
from .repository import ModelManager
from .runtime import ModelRuntime, Prediction

log = logging.getLogger(__name__)


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
    """A request's place among the model's in-flight requests; release it once answered."""

    __slots__ = ("_dp", "_model")

    def __init__(self, dataplane: "DataPlane", model: str):
        self._dp, self._model = dataplane, model

    def __enter__(self) -> "Admission":
        return self

    def __exit__(self, *exc) -> None:
        self._dp._release(self._model)


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
        self._inflight: dict[str, int] = {}  # admitted, not yet answered (event-loop thread only)
        self._closing = False
        self._auth_log = RateLimitedLog(log)

    # -- health ------------------------------------------------------------------------------
    def live(self) -> bool:
        return not self._closing

    def ready(self) -> bool:
        return not self._closing and self.manager.ready()

    # -- requests ----------------------------------------------------------------------------
    def metric_model(self, name: Optional[str]) -> str:
        """Model label for metrics: client-chosen unknown names must not create new series."""
        return name if name and self.manager.is_known(name) else "unknown"

    def count(self, model: Optional[str], version: str, protocol: str, status: int) -> None:
        self.metrics.requests.labels(self.metric_model(model), version, protocol, str(status)).inc()

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

    def admit(self, model: str, protocol: str) -> "Admission":
        """At request start, before the body is read or parsed: a ticket, or Overloaded (counted).

        Past ``batching.max_inflight`` requests admitted and not yet answered for this model (or
        with its queue already full) the request is refused at the cheapest possible point, so
        under overload the server spends its time on requests it will answer, not on parsing
        bodies it will then reject.
        """
        inflight = self._inflight.get(model, 0)
        batcher = self._batchers.get(model)
        limit = self.config.batching.inflight_limit
        queued = batcher.queued_texts if batcher is not None else 0
        if inflight >= limit or queued >= self.config.batching.max_queue:
            self.count(model, "", protocol, Overloaded.http_status)
            self.metrics.overload_rejections.labels(self.metric_model(model), protocol).inc()
            raise Overloaded(
                f"model {shorten(model)} is overloaded: {inflight} requests in flight (limit {limit}), "
                f"{queued} texts queued (limit {self.config.batching.max_queue}); retry after a short backoff"
            )
        self._inflight[model] = inflight + 1
        return Admission(self, model)

    def _release(self, model: str) -> None:
        left = self._inflight.get(model, 1) - 1
        if left > 0:
            self._inflight[model] = left
        else:
            self._inflight.pop(model, None)

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
    ) -> PredictResult:
        """Raises ServingError (already counted in metrics) or returns the prediction."""
        start = received if received is not None else time.perf_counter()
        request_id = printable_request_id(request_id) if request_id else uuid.uuid4().hex
        runtime: Optional[ModelRuntime] = None
        decoded: list[str] = []
        try:
            if self._closing:
                raise Unavailable("server is shutting down; retry on another replica")
            decoded = self.check_texts(texts)
            runtime = self.manager.resolve(model, version, label)
            prediction, _ = await self._batcher(model).submit(runtime, texts)
        except ServingError as exc:
            version_label = str(runtime.version) if runtime is not None else ""
            self.count(model, version_label, protocol, exc.http_status)
            if isinstance(exc, Overloaded):
                self.metrics.overload_rejections.labels(model, protocol).inc()
            if exc.http_status >= 500:
                log.warning("%s request for %s failed: %s", protocol, model, exc.message)
            if runtime is not None:  # it reached a model: a failed prediction, logged as such
                self._log(request_id, runtime, decoded, None, protocol, time.perf_counter() - start, exc.message)
            raise
        latency = time.perf_counter() - start
        v = str(runtime.version)
        self.metrics.requests.labels(model, v, protocol, "200").inc()
        self.metrics.stage_latency.labels(model, v, "total").observe(latency)
        self._log(request_id, runtime, decoded, prediction, protocol, latency, None)
        return PredictResult(model, runtime.version, prediction, request_id, latency)

    def _batcher(self, model: str) -> DynamicBatcher:
        batcher = self._batchers.get(model)
        if batcher is None:
            batcher = self._batchers[model] = DynamicBatcher(model, self.config.batching, self.metrics).start()
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
