"""Wires the layers together and runs them on one asyncio loop.

runtime (``runtime.py``) <- data plane (``repository.py`` versions, ``batching.py``, ``dataplane.py``,
``metrics.py``, ``prediction_logger.py``) <- adapters (``rest.py``: TF Serving REST + KServe v2,
``grpc_server.py``: TF Serving gRPC).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
import time
from typing import Optional

from aiohttp import web

from .config import ServerConfig
from .connections import ConnectionGuard
from .dataplane import DataPlane
from .metrics import ServingMetrics
from .prediction_logger import PredictionLogWriter
from .repository import ModelManager
from .rest import RestAdapter

log = logging.getLogger(__name__)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus any ``extra={...}`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def configure_logging(config: ServerConfig) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(config.log_level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # per-request lines: use /metrics
    for noisy in ("tensorflow", "absl", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _freeze_heap(_model: str, _versions: list[int]) -> None:
    """Moves everything alive now (TensorFlow, the loaded graphs) out of the garbage collector's
    view. Without it, full collections walk millions of long-lived objects and stall every
    request for tens of milliseconds (seen as p99 spikes under load)."""
    gc.collect()
    gc.freeze()


class ServingServer:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.metrics = ServingMetrics()
        self.manager = ModelManager(config, self.metrics, on_swap=_freeze_heap)
        self.prediction_log: Optional[PredictionLogWriter] = None
        if config.prediction_log.directory is not None:
            pl = config.prediction_log
            self.prediction_log = PredictionLogWriter(
                pl.directory, self.metrics, sample_rate=pl.sample_rate, max_file_bytes=pl.max_file_bytes, queue_size=pl.queue_size
            )
        self.dataplane = DataPlane(config, self.manager, self.metrics, self.prediction_log)
        self.auth_token = config.auth_token()  # ConfigError (set but empty) before anything starts
        self._guard = ConnectionGuard(config.connections, self.metrics)
        self._runner: Optional[web.AppRunner] = None
        self._http: Optional[asyncio.AbstractServer] = None
        self._grpc = None
        self.port: Optional[int] = None
        self.grpc_port: Optional[int] = None

    async def start(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.start()
        self.manager.start()  # loads in the background; /v2/health/ready says when it is done
        self.dataplane.start()  # the shared scheduler's model threads
        self._runner = web.AppRunner(
            RestAdapter(self.dataplane).app(),
            handle_signals=False,
            shutdown_timeout=self.config.drain_timeout_s,
            **self._guard.handler_kwargs(),
        )
        await self._runner.setup()
        # Our own listening socket: each connection gets the guarded protocol (read timeouts,
        # connection cap); the runner still owns the app and shuts its connections down.
        factory = self._guard.protocol_factory(self._runner.server)
        self._http = await asyncio.get_running_loop().create_server(factory, self.config.host, self.config.port, backlog=1024)
        self._guard.start()
        self.port = self._http.sockets[0].getsockname()[1]  # the real port when 0 was asked
        if self.config.grpc_port:  # 0: no gRPC server
            from .grpc_server import create_server

            self._grpc, self.grpc_port = create_server(self.dataplane, self.config.host, self.config.grpc_port)
            await self._grpc.start()
        auth = "on (bearer token from $" + self.config.auth_token_env + ")" if self.auth_token else "off"
        c = self.config.connections
        log.info(
            "serving %s on http://%s:%s (gRPC port %s), auth %s, timeouts: header %gs body %gs keep-alive %gs, at most %d connections",
            self.config.model_repository,
            self.config.host,
            self.port,
            self.grpc_port,
            auth,
            c.header_timeout_s,
            c.body_timeout_s,
            c.keepalive_timeout_s,
            self._guard.max_connections,
            extra={"event": "listening", "port": self.port, "grpc_port": self.grpc_port, "auth": bool(self.auth_token)},
        )

    async def stop(self) -> None:
        """Graceful: refuse new requests (readiness false), finish queued ones, flush the log."""
        start = time.perf_counter()
        drain = self.config.drain_timeout_s
        if self._http is not None:
            self._http.close()  # no new connections
        try:
            await asyncio.wait_for(self.dataplane.close(), drain)
        except asyncio.TimeoutError:
            log.error("requests still queued after the drain timeout of %g s (drain_timeout_s); stopping anyway", drain)
        if self._grpc is not None:
            await self._grpc.stop(grace=max(0.1, drain - (time.perf_counter() - start)))
        await self._guard.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        self.manager.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()
        log.info("stopped in %.2f s", time.perf_counter() - start, extra={"event": "stopped"})


async def serve_forever(config: ServerConfig) -> None:
    server = ServingServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await stop.wait()
    log.info("shutting down", extra={"event": "shutdown"})
    await server.stop()
