"""HTTP connection hygiene around aiohttp's protocol handler (part of the HTTP adapter).

aiohttp's server offers a keep-alive timeout and body/header size limits, but no header or
body read timeout and no cap on open connections. ``GuardedHandler`` (one per connection)
adds what nginx calls ``client_header_timeout`` and ``worker_connections``:

- **header timeout**: from the connection's start, or from the first byte of its next request,
  the request's headers must be complete within ``connections.header_timeout_s``; otherwise the
  client gets a 408 and the connection is closed. This cuts slowloris clients (1 byte/s) and
  connections that never send anything.
- **connection cap**: past ``connections.max_connections`` open connections, a new one is
  answered 503 (``Retry-After``) and closed at once, so idle sockets cannot exhaust file
  descriptors.
- **quiet protocol errors**: a malformed request gets a JSON 400 and one rate-limited log
  line, not a traceback per request.

The body timeout is in ``rest.py`` (the body is read there); the idle keep-alive timeout is
aiohttp's own ``keepalive_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from typing import Callable, Optional

from aiohttp import web, web_protocol

from .config import ConnectionsConfig
from .errors import clip
from .metrics import ServingMetrics
from .ratelimit import RateLimitedLog

log = logging.getLogger(__name__)


def _raw_response(status: int, reason: str, message: str, retry_after: bool = False) -> bytes:
    """A complete HTTP/1.1 error response for a connection that has no request object."""
    body = json.dumps({"error": message}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: close"]
    if retry_after:
        head.append("Retry-After: 1")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ConnectionGuard:
    """Tracks the open connections of one HTTP server and enforces the header timeout and cap."""

    def __init__(self, config: ConnectionsConfig, metrics: ServingMetrics):
        self.config = config
        self.metrics = metrics
        self.max_connections = _fit_to_fd_limit(config.max_connections)
        self.open: set[GuardedHandler] = set()
        self.protocol_errors = RateLimitedLog(log)  # requests aiohttp cannot parse
        self.body_errors = RateLimitedLog(log)  # bodies it cannot drain
        self.refusals = RateLimitedLog(log)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._sweeper: Optional[asyncio.Task] = None

    def handler_kwargs(self) -> dict:
        """aiohttp ``RequestHandler`` settings (also what ``web.AppRunner`` would pass)."""
        # lingering_time: how long an unread request body is drained before the connection is
        # closed (aiohttp's default, 10 s, would keep a timed-out body's connection open)
        return {"keepalive_timeout": self.config.keepalive_timeout_s, "lingering_time": 2.0, "access_log": None}

    def protocol_factory(self, server: web.Server) -> Callable[[], "GuardedHandler"]:
        """What ``loop.create_server`` calls per accepted connection (instead of ``server``)."""
        self._loop = asyncio.get_running_loop()
        kwargs = self.handler_kwargs()
        loop = self._loop
        return lambda: GuardedHandler(self, server, loop=loop, **kwargs)

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="http-connection-guard")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def _sweep(self) -> None:
        timeout = self.config.header_timeout_s
        period = min(1.0, timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = self.now()
            for handler in list(self.open):
                since = handler.head_since
                if since is not None and now - since > timeout:
                    handler.timed_out(timeout)


def _fit_to_fd_limit(wanted: int) -> int:
    """The cap, lowered (with a warning) when the process may not open that many files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted + 128 <= soft:
        return wanted
    fitted = max(16, soft - 128)
    log.warning(
        "connections.max_connections %d does not fit the file-descriptor limit %d (ulimit -n); using %d",
        wanted, soft, fitted,
    )
    return fitted


class GuardedHandler(web_protocol.RequestHandler):
    """aiohttp's per-connection protocol, with the header timeout, the cap and quiet errors."""

    def __init__(self, guard: ConnectionGuard, manager: web.Server, **kwargs):
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.head_since: Optional[float] = None  # waiting for a request's headers since then
        self.in_request = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        guard = self.guard
        if len(guard.open) >= guard.max_connections:
            guard.metrics.connections_refused.inc()
            guard.refusals.log(logging.WARNING, "refused a connection: %d connections are open (connections.max_connections)", len(guard.open))
            transport.write(_raw_response(503, "Service Unavailable", f"the server has {len(guard.open)} open connections, its limit; retry shortly", True))
            self.force_close()
            return
        guard.open.add(self)
        guard.metrics.open_connections.set(len(guard.open))
        self.head_since = guard.now()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        guard = self.guard
        if self in guard.open:
            guard.open.discard(self)
            guard.metrics.open_connections.set(len(guard.open))
        self.head_since = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head_since is None and not self.in_request and data:
            self.head_since = self.guard.now()  # the first byte of the next request
        super().data_received(data)

    def request_started(self) -> None:
        self.in_request = True
        self.head_since = None

    def request_finished(self) -> None:
        self.in_request = False

    def timed_out(self, timeout: float) -> None:
        self.head_since = None
        self.guard.metrics.connection_timeouts.labels("header").inc()
        if self.transport is not None:
            self.transport.write(
                _raw_response(408, "Request Timeout", f"the request headers did not arrive within {timeout:g} s (connections.header_timeout_s)")
            )
        self.force_close()

    def log_exception(self, *args, **kwargs) -> None:
        """aiohttp logs a body it could not drain (bad compression, a client gone) with a
        traceback; that is the client's fault: one rate-limited line. Anything else as before."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, (web_protocol.RequestPayloadError, ConnectionError)):
            self.guard.body_errors.log(logging.WARNING, "unreadable request body: %s", clip(" ".join(str(exc).split()), 200))
            return
        super().log_exception(*args, **kwargs)

    def handle_error(self, request, status: int = 500, exc: Optional[BaseException] = None, message: Optional[str] = None):
        """A request aiohttp could not parse: a JSON error and one rate-limited line, no traceback."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        what = clip(" ".join(str(message or exc or "malformed request").split()), 200)  # one line
        self.guard.metrics.requests.labels("unknown", "", "http", str(status)).inc()
        self.guard.protocol_errors.log(logging.WARNING, "malformed HTTP request from %s: %s", request.remote, what)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        response = web.Response(
            status=status, body=json.dumps({"error": f"malformed HTTP request: {what}"}).encode(), content_type="application/json"
        )
        response.force_close()
        return response
