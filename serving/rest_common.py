"""What both HTTP protocols share: auth, the body limit and error rendering (the middleware),
reading and decoding bodies, admission before the body is read, and the JSON helpers.

Every error body is ``{"error": "<what is wrong>"}`` (TF Serving's shape, which the v2 protocol
shares); stack traces go to the server log only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import time
from typing import Any, Optional

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from .connections import GuardedHandler
from .dataplane import DataPlane, PredictResult
from .errors import (
    ClientDisconnected,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    ServingError,
    Unauthorized,
    UnsupportedMediaType,
    clip,
    shorten,
)
from .repository import parse_version

log = logging.getLogger("textops.serving.rest")

_UNAUTHENTICATED_PATHS = ("/v2/health/live", "/v2/health/ready", "/metrics")
BINARY_HEADER = "Inference-Header-Content-Length"
TIMEOUT_HEADER = "X-Request-Timeout-Ms"  # the request's deadline, from its arrival
# What TF Serving's and Triton's HTTP front ends decompress; anything else is a clear 415.
_ENCODINGS = ("identity", "gzip", "deflate")


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON. orjson: about 4x cheaper than the standard library for a predict
    answer (bench/request_cost_bench.py); a value it refuses (a string holding a lone surrogate)
    is written by the standard library with escapes instead."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":")).encode("ascii")


def json_response(data: Any, status: int = 200, headers: Optional[dict] = None) -> web.Response:
    return web.Response(
        body=dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str) -> web.Response:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="textops"'}
    return json_response({"error": message}, status, headers)


def protocol_of(path: str) -> str:
    return "v2" if path.startswith("/v2") else "rest"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def header_int(text: str) -> Optional[int]:
    """A non-negative integer header value (ASCII digits, at most 18 of them), else None."""
    return int(text) if 0 < len(text) <= 18 and text.isascii() and text.isdigit() else None


def text_value(value: Any, where: str) -> bytes:
    """A string or {"b64": ...} -> bytes."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{where}: string holds an unpaired surrogate escape; send valid Unicode or use {{\"b64\": ...}}") from None
    if isinstance(value, dict) and set(value) == {"b64"}:
        encoded = value["b64"]
        if not isinstance(encoded, str):
            raise InvalidInput(f"{where}: 'b64' must be a base64 string, got {json_type(encoded)}")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"{where}: invalid base64 in 'b64': {exc}") from None
    raise InvalidInput(f"{where}: expected a string or {{\"b64\": \"...\"}}, got {json_type(value)}")


def timeout_header(request: web.Request) -> Optional[float]:
    """The client's deadline from the ``X-Request-Timeout-Ms`` header (seconds), if it sent one."""
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return None
    value = header_int(raw.strip())
    if value is None or value == 0:
        raise InvalidInput(f"{TIMEOUT_HEADER} must be a positive whole number of milliseconds, got {shorten(raw)}")
    return min(value, 86_400_000) / 1000.0  # longer than a day: a day


def version_of(request: web.Request) -> Optional[int]:
    """The version named in the URL, if any (400 when it is not a version)."""
    info = request.match_info
    return parse_version(info["version"]) if "version" in info else None


class HttpEndpoints:
    """The base of each protocol's handlers: the data plane, the limits, body reading, predict."""

    def __init__(self, dataplane: DataPlane):
        self.dp = dataplane
        self.limits = dataplane.config.limits
        self.body_timeout_s = dataplane.config.connections.body_timeout_s
        self.token = dataplane.config.auth_token()

    # -- cross-cutting: auth, body limit, errors ---------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        received = time.perf_counter()
        request["received"] = received
        connection = request.protocol
        if isinstance(connection, GuardedHandler):
            connection.request_started()  # headers are in: the header timeout is over
        try:
            if self.token is not None and request.path not in _UNAUTHENTICATED_PATHS:
                auth = request.headers.get("Authorization", "")
                scheme, _, given = auth.partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode("utf-8", "surrogateescape"), self.token.encode()
                ):
                    self.dp.auth_failed("rest", request.remote, "no bearer token" if not auth else "wrong bearer token")
                    raise Unauthorized("missing or wrong bearer token: send 'Authorization: Bearer <token>'")
            length = request.content_length
            if length is not None and length > self.limits.max_body_bytes:
                raise PayloadTooLarge(f"request body is {length} bytes; the limit is {self.limits.max_body_bytes}")
            return await handler(request)
        except ServingError as exc:
            if not request.get("counted"):
                self.dp.count(request.match_info.get("name"), "", protocol_of(request.path), exc.http_status)
            if isinstance(exc, ClientDisconnected):
                log.info("%s %s: %s", request.method, clip(request.path, 200), exc.message, extra={"event": "client_disconnected"})
            response = error_response(exc.http_status, exc.message)
            if isinstance(exc, (RequestTimeout, ClientDisconnected)):
                response.force_close()  # the rest of the body is not worth waiting for
            return response
        except web.HTTPRequestEntityTooLarge:
            self.dp.count(request.match_info.get("name"), "", protocol_of(request.path), 413)
            return error_response(413, f"request body is larger than the limit of {self.limits.max_body_bytes} bytes")
        except web.HTTPNotFound:
            return error_response(404, f"no such endpoint: {shorten(request.method)} {shorten(request.path, 200)}")
        except web.HTTPMethodNotAllowed as exc:
            return error_response(
                405, f"{shorten(request.method)} is not allowed on {shorten(request.path, 200)}; use {', '.join(sorted(exc.allowed_methods))}"
            )
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, clip(request.path, 200))
            self.dp.count(request.match_info.get("name"), "", protocol_of(request.path), 500)
            return error_response(500, "internal server error (details in the server log)")
        finally:
            if isinstance(connection, GuardedHandler):
                connection.request_finished()

    async def read_body(self, request: web.Request) -> bytes:
        """The whole body (decompressed), within the body timeout; client faults as ServingErrors."""
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
        if encoding not in _ENCODINGS:
            raise UnsupportedMediaType(
                f"Content-Encoding {shorten(encoding)} is not supported; send the body uncompressed or with gzip or deflate"
            )
        try:
            return await asyncio.wait_for(request.read(), self.body_timeout_s)
        except asyncio.TimeoutError:
            self.dp.metrics.connection_timeouts.labels("body").inc()
            raise RequestTimeout(
                f"the request body did not arrive within {self.body_timeout_s:g} s (connections.body_timeout_s); send it at once"
            ) from None
        except RequestPayloadError as exc:
            if encoding != "identity":
                raise InvalidInput(f"the body is not valid {encoding} data (Content-Encoding: {encoding}): compress it, or drop the header") from None
            raise InvalidInput(f"malformed request body: {clip(exc)}") from None
        except ConnectionError:
            raise ClientDisconnected("the client closed the connection before sending the whole body") from None

    async def read_json(self, request: web.Request) -> tuple[Any, bytes]:
        """The JSON part of the body (and the binary part after it, for v2's binary extension)."""
        body = await self.read_body(request)
        binary = b""
        header_len = request.headers.get(BINARY_HEADER)
        if header_len is not None:
            json_len = header_int(header_len)
            if json_len is None or json_len > len(body):
                raise InvalidInput(
                    f"{BINARY_HEADER} must be an integer no larger than the body ({len(body)} bytes), got {shorten(header_len)}"
                )
            body, binary = body[:json_len], body[json_len:]
        if not body.strip():
            raise InvalidInput("request body is empty; send a JSON object")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"request body is not valid UTF-8 (bad byte at offset {exc.start})") from None
        try:
            data = json.loads(text)
        except RecursionError:
            raise InvalidInput("request JSON is nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except ValueError as exc:  # an integer longer than Python's int-string limit (4300 digits)
            raise InvalidInput(f"request JSON holds a number that cannot be read ({clip(exc, 80)}); no field takes such a number") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"request body must be a JSON object, got {json_type(data)}")
        return data, binary

    async def predict(
        self, request: web.Request, texts: list[bytes], request_id: Optional[str] = None, timeout_s: Optional[float] = None
    ) -> PredictResult:
        info = request.match_info
        version = version_of(request)
        if timeout_s is None:
            timeout_s = timeout_header(request)
        request["counted"] = True  # the data plane counts from here on
        return await self.dp.predict(
            info["name"],
            texts,
            protocol=protocol_of(request.path),
            version=version,
            label=info.get("label"),
            request_id=request_id or request.headers.get("X-Request-Id"),
            received=request["received"],
            admission=request.get("admission"),
            timeout_s=timeout_s,
        )

    def admit(self, request: web.Request):
        """Admission before the body is read (the data plane counts its own rejection)."""
        request["counted"] = True
        ticket = request["admission"] = self.dp.admit(request.match_info["name"], protocol_of(request.path))
        request["counted"] = False
        return ticket
