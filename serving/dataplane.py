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
from .errors import InvalidInput, Overloaded, ServingError, Unavailable
from .metrics import ServingMetrics
from .prediction_logger import PredictionLogWriter
from .repository import ModelManager
from .runtime import ModelRuntime, Prediction

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PredictResult:
    model: str
    version: int
    prediction: Prediction
    request_id: str
    latency_s: float


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
        self._closing = False

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

    def fail_fast(self, model: str, protocol: str) -> None:
        """Before any parsing: a full queue answers Overloaded at the cheapest possible point."""
        batcher = self._batchers.get(model)
        if batcher is not None and batcher.queued_texts >= self.config.batching.max_queue:
            self.count(model, "", protocol, Overloaded.http_status)
            self.metrics.overload_rejections.labels(model, protocol).inc()
            raise Overloaded(
                f"model '{model}' is overloaded: {batcher.queued_texts} texts already queued "
                f"(limit {self.config.batching.max_queue}); retry after a short backoff"
            )

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
        request_id = request_id or uuid.uuid4().hex
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
