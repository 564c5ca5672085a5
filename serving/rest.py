"""HTTP adapters: TF Serving REST (``/v1``), KServe v2 / Open Inference Protocol (``/v2``), ``/metrics``.

They only translate: parse and validate the wire format into texts, call ``DataPlane.predict``,
and render its result or error. Every error body is ``{"error": "<what is wrong>"}`` (TF Serving's
shape, which the v2 protocol shares); stack traces go to the server log only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import math
import struct
import time
from typing import Any, Optional

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from textops import features

from . import protos
from .dataplane import DataPlane, PredictResult
from .connections import GuardedHandler
from .errors import (
    ClientDisconnected,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServingError,
    Unauthorized,
    UnsupportedMediaType,
    clip,
    shorten,
)
from .metrics import CONTENT_TYPE_LATEST
from .repository import parse_version

log = logging.getLogger(__name__)

_OUTPUTS = (features.OUTPUT_PROBABILITIES, features.OUTPUT_LABEL, features.OUTPUT_CLASSES)
_UNAUTHENTICATED_PATHS = ("/v2/health/live", "/v2/health/ready", "/metrics")
_BINARY_HEADER = "Inference-Header-Content-Length"
# What TF Serving's and Triton's HTTP front ends decompress; anything else is a clear 415.
_ENCODINGS = ("identity", "gzip", "deflate")


def _json_response(data: Any, status: int = 200, headers: Optional[dict] = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error_response(status: int, message: str) -> web.Response:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="textops"'}
    return _json_response({"error": message}, status, headers)


def _protocol_of(path: str) -> str:
    return "v2" if path.startswith("/v2") else "rest"


class RestAdapter:
    def __init__(self, dataplane: DataPlane):
        self.dp = dataplane
        self.limits = dataplane.config.limits
        self.body_timeout_s = dataplane.config.connections.body_timeout_s
        self.token = dataplane.config.auth_token()

    def app(self) -> web.Application:
        # aiohttp enforces client_max_size while reading; the middleware turns that into our 413.
        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self._middleware])
        m = r"{name:[^/:]+}"
        v = r"{version:[^/:]+}"
        lbl = r"{label:[^/:]+}"
        r = app.router
        # TF Serving REST
        r.add_get(f"/v1/models/{m}", self.tfs_status)
        r.add_get(f"/v1/models/{m}/versions/{v}", self.tfs_status)
        r.add_get(f"/v1/models/{m}/labels/{lbl}", self.tfs_status)
        r.add_get(f"/v1/models/{m}/metadata", self.tfs_metadata)
        r.add_get(f"/v1/models/{m}/versions/{v}/metadata", self.tfs_metadata)
        r.add_get(f"/v1/models/{m}/labels/{lbl}/metadata", self.tfs_metadata)
        r.add_post(f"/v1/models/{m}:predict", self.tfs_predict)
        r.add_post(f"/v1/models/{m}/versions/{v}:predict", self.tfs_predict)
        r.add_post(f"/v1/models/{m}/labels/{lbl}:predict", self.tfs_predict)
        # KServe v2 / Open Inference Protocol
        r.add_get("/v2", self.v2_server_metadata)
        r.add_get("/v2/health/live", self.v2_live)
        r.add_get("/v2/health/ready", self.v2_ready)
        r.add_get(f"/v2/models/{m}", self.v2_model_metadata)
        r.add_get(f"/v2/models/{m}/versions/{v}", self.v2_model_metadata)
        r.add_get(f"/v2/models/{m}/ready", self.v2_model_ready)
        r.add_get(f"/v2/models/{m}/versions/{v}/ready", self.v2_model_ready)
        r.add_post(f"/v2/models/{m}/infer", self.v2_infer)
        r.add_post(f"/v2/models/{m}/versions/{v}/infer", self.v2_infer)
        r.add_get("/metrics", self.metrics)
        return app

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
                self.dp.count(request.match_info.get("name"), "", _protocol_of(request.path), exc.http_status)
            if isinstance(exc, ClientDisconnected):
                log.info("%s %s: %s", request.method, clip(request.path, 200), exc.message, extra={"event": "client_disconnected"})
            response = _error_response(exc.http_status, exc.message)
            if isinstance(exc, (RequestTimeout, ClientDisconnected)):
                response.force_close()  # the rest of the body is not worth waiting for
            return response
        except web.HTTPRequestEntityTooLarge:
            self.dp.count(request.match_info.get("name"), "", _protocol_of(request.path), 413)
            return _error_response(413, f"request body is larger than the limit of {self.limits.max_body_bytes} bytes")
        except web.HTTPNotFound:
            return _error_response(404, f"no such endpoint: {shorten(request.method)} {shorten(request.path, 200)}")
        except web.HTTPMethodNotAllowed as exc:
            return _error_response(
                405, f"{shorten(request.method)} is not allowed on {shorten(request.path, 200)}; use {', '.join(sorted(exc.allowed_methods))}"
            )
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, clip(request.path, 200))
            self.dp.count(request.match_info.get("name"), "", _protocol_of(request.path), 500)
            return _error_response(500, "internal server error (details in the server log)")
        finally:
            if isinstance(connection, GuardedHandler):
                connection.request_finished()

    async def _read_body(self, request: web.Request) -> bytes:
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

    async def _read_json(self, request: web.Request) -> tuple[Any, bytes]:
        """The JSON part of the body (and the binary part after it, for v2's binary extension)."""
        body = await self._read_body(request)
        binary = b""
        header_len = request.headers.get(_BINARY_HEADER)
        if header_len is not None:
            json_len = _header_int(header_len)
            if json_len is None or json_len > len(body):
                raise InvalidInput(
                    f"{_BINARY_HEADER} must be an integer no larger than the body ({len(body)} bytes), got {shorten(header_len)}"
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
            raise InvalidInput(f"request body must be a JSON object, got {_json_type(data)}")
        return data, binary

    async def _predict(self, request: web.Request, texts: list[bytes], request_id: Optional[str] = None) -> PredictResult:
        info = request.match_info
        version = parse_version(info["version"]) if "version" in info else None
        request["counted"] = True  # the data plane counts from here on
        return await self.dp.predict(
            info["name"],
            texts,
            protocol=_protocol_of(request.path),
            version=version,
            label=info.get("label"),
            request_id=request_id or request.headers.get("X-Request-Id"),
            received=request["received"],
            admission=request.get("admission"),
        )

    # -- TF Serving REST ---------------------------------------------------------------------
    async def tfs_status(self, request: web.Request) -> web.Response:
        info = request.match_info
        version = parse_version(info["version"]) if "version" in info else None
        statuses = self.dp.manager.versions_status(info["name"], version, info.get("label"))
        return _json_response(protos.model_status_json(statuses))

    async def tfs_metadata(self, request: web.Request) -> web.Response:
        info = request.match_info
        version = parse_version(info["version"]) if "version" in info else None
        runtime = self.dp.manager.resolve(info["name"], version, info.get("label"))
        return _json_response(protos.metadata_json(runtime))

    def _admit(self, request: web.Request):
        """Admission before the body is read (the data plane counts its own rejection)."""
        request["counted"] = True
        ticket = request["admission"] = self.dp.admit(request.match_info["name"], _protocol_of(request.path))
        request["counted"] = False
        return ticket

    async def tfs_predict(self, request: web.Request) -> web.Response:
        with self._admit(request):
            data, _ = await self._read_json(request)
            texts, columnar = parse_tfs_request(data)
            result = await self._predict(request, texts)
        headers = {"X-Request-Id": result.request_id, "X-Model-Version": str(result.version)}
        return _json_response(render_tfs(result, columnar), headers=headers)

    # -- KServe v2 -----------------------------------------------------------------------------
    async def v2_server_metadata(self, request: web.Request) -> web.Response:
        from textops import __version__

        return _json_response({"name": "textops", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def v2_live(self, request: web.Request) -> web.Response:
        live = self.dp.live()
        return _json_response({"live": live}, 200 if live else 503)

    async def v2_ready(self, request: web.Request) -> web.Response:
        ready = self.dp.ready()
        return _json_response({"ready": ready}, 200 if ready else 503)

    async def v2_model_metadata(self, request: web.Request) -> web.Response:
        info = request.match_info
        version = parse_version(info["version"]) if "version" in info else None
        runtime = self.dp.manager.resolve(info["name"], version)
        probs = [-1, len(runtime.classes)]
        return _json_response(
            {
                "name": runtime.name,
                "versions": [str(v) for v in self.dp.manager.servable_versions(runtime.name)],
                "platform": "tensorflow_savedmodel",
                "inputs": [{"name": features.SERVING_INPUT, "datatype": "BYTES", "shape": [-1]}],
                "outputs": [
                    {"name": features.OUTPUT_PROBABILITIES, "datatype": "FP32", "shape": probs},
                    {"name": features.OUTPUT_LABEL, "datatype": "BYTES", "shape": [-1]},
                    {"name": features.OUTPUT_CLASSES, "datatype": "BYTES", "shape": probs},
                ],
            }
        )

    async def v2_model_ready(self, request: web.Request) -> web.Response:
        info = request.match_info
        name = info["name"]
        if not self.dp.manager.is_known(name):
            raise NotFound(f"model {shorten(name)} is not served here (served models: {', '.join(self.dp.manager.served_models()) or 'none yet'})")
        version = parse_version(info["version"]) if "version" in info else None
        ready = self.dp.manager.model_ready(name, version)
        return _json_response({"name": name, "ready": ready}, 200 if ready else 503)

    async def v2_infer(self, request: web.Request) -> web.StreamResponse:
        with self._admit(request):
            data, binary = await self._read_json(request)
            texts, wanted = parse_v2_request(data, binary)
            request_id = data.get("id")
            if request_id is not None:
                if not isinstance(request_id, str):
                    raise InvalidInput(f"'id' must be a string, got {_json_type(request_id)}")
                _text_value(request_id, "'id'")  # valid Unicode, or 400
            result = await self._predict(request, texts, request_id)
        body, json_len = render_v2(result, wanted, request_id)
        headers = {"X-Request-Id": result.request_id}
        if json_len is None:
            return web.Response(body=body, content_type="application/json", headers=headers)
        headers[_BINARY_HEADER] = str(json_len)
        return web.Response(body=body, content_type="application/octet-stream", headers=headers)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.dp.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


# -- TF Serving request/response translation (pure functions, unit-tested) ------------------------
def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _header_int(text: str) -> Optional[int]:
    """A non-negative integer header value (ASCII digits, at most 18 of them), else None."""
    return int(text) if 0 < len(text) <= 18 and text.isascii() and text.isdigit() else None


def _text_value(value: Any, where: str) -> bytes:
    """A string or {"b64": ...} -> bytes."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{where}: string holds an unpaired surrogate escape; send valid Unicode or use {{\"b64\": ...}}") from None
    if isinstance(value, dict) and set(value) == {"b64"}:
        encoded = value["b64"]
        if not isinstance(encoded, str):
            raise InvalidInput(f"{where}: 'b64' must be a base64 string, got {_json_type(encoded)}")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"{where}: invalid base64 in 'b64': {exc}") from None
    raise InvalidInput(f"{where}: expected a string or {{\"b64\": \"...\"}}, got {_json_type(value)}")


def parse_tfs_request(data: dict) -> tuple[list[bytes], bool]:
    """TF Serving's predict body -> (texts, columnar?). See the TF Serving REST API docs."""
    signature = data.get("signature_name", features.SERVING_SIGNATURE)
    if signature != features.SERVING_SIGNATURE:
        raise InvalidInput(f"signature_name {shorten(signature)} is not served; use '{features.SERVING_SIGNATURE}' (or omit it)")
    unknown = set(data) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise InvalidInput(f"unknown key(s) {clip(sorted(unknown))}; a predict request has 'instances' or 'inputs' (and optionally 'signature_name')")
    if "instances" in data and "inputs" in data:
        raise InvalidInput("send either 'instances' (row format) or 'inputs' (columnar format), not both")
    if "instances" in data:
        rows = data["instances"]
        if not isinstance(rows, list):
            raise InvalidInput(f"'instances' must be a list, got {_json_type(rows)}")
        if not rows:
            raise InvalidInput("'instances' is empty: send at least one instance")
        texts = []
        for i, row in enumerate(rows):
            if isinstance(row, dict) and "b64" not in row:
                if set(row) != {features.SERVING_INPUT}:
                    raise InvalidInput(f"instances[{i}]: the model takes one input '{features.SERVING_INPUT}', got keys {clip(sorted(row))}")
                row = row[features.SERVING_INPUT]
            texts.append(_text_value(row, f"instances[{i}]"))
        return texts, False
    if "inputs" in data:
        cols = data["inputs"]
        if isinstance(cols, dict):
            if set(cols) != {features.SERVING_INPUT}:
                raise InvalidInput(f"'inputs': the model takes one input '{features.SERVING_INPUT}', got keys {clip(sorted(cols))}")
            cols = cols[features.SERVING_INPUT]
        if isinstance(cols, (str, dict)):
            raise InvalidInput("'inputs' must be a list of texts (the model's input is a batch of strings)")
        if not isinstance(cols, list):
            raise InvalidInput(f"'inputs' must be a list of texts, got {_json_type(cols)}")
        if not cols:
            raise InvalidInput("'inputs' is empty: send at least one text")
        return [_text_value(v, f"inputs[{i}]") for i, v in enumerate(cols)], True
    raise InvalidInput("missing 'instances' (row format) or 'inputs' (columnar format)")


def render_tfs(result: PredictResult, columnar: bool) -> dict:
    p = result.prediction
    probabilities = p.probabilities.tolist()
    if columnar:
        return {
            "outputs": {
                features.OUTPUT_PROBABILITIES: probabilities,
                features.OUTPUT_LABEL: p.labels,
                features.OUTPUT_CLASSES: [p.classes] * len(p.labels),
            }
        }
    return {
        "predictions": [
            {features.OUTPUT_PROBABILITIES: probs, features.OUTPUT_LABEL: label, features.OUTPUT_CLASSES: p.classes}
            for probs, label in zip(probabilities, p.labels)
        ]
    }


# -- KServe v2 translation ---------------------------------------------------------------------
def _elements(data: list, shape: list[int], where: str) -> list:
    """The tensor's elements in row-major order. ``data`` is either flat (``shape``'s element
    count of non-lists) or nested exactly as ``shape`` says; anything else is an error."""
    if not any(isinstance(v, list) for v in data):
        return data
    def walk(node: Any, depth: int, index: str) -> list:
        if not isinstance(node, list) or len(node) != shape[depth]:
            got = f"{len(node)} elements" if isinstance(node, list) else _json_type(node)
            raise InvalidInput(f"{where}: data{index} must be a list of {shape[depth]} elements to match shape {shape}, got {got}")
        if depth == len(shape) - 1:
            for i, value in enumerate(node):
                if isinstance(value, list):
                    raise InvalidInput(f"{where}: data{index}[{i}] is a list, but shape {shape} has {len(shape)} dimension(s)")
            return node
        out: list = []
        for i, child in enumerate(node):
            out.extend(walk(child, depth + 1, f"{index}[{i}]"))
        return out

    return walk(data, 0, "")


def _decode_bytes_tensor(raw: bytes, where: str) -> list[bytes]:
    """The binary extension's BYTES layout: <uint32 little-endian length><bytes>, repeated."""
    out, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise InvalidInput(f"{where}: truncated BYTES element length at byte {pos}")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise InvalidInput(f"{where}: BYTES element of {n} bytes runs past the binary data")
        out.append(raw[pos : pos + n])
        pos += n
    return out


def parse_v2_request(data: dict, binary: bytes) -> tuple[list[bytes], dict[str, bool]]:
    """v2 infer body -> (texts, {output name: binary?})."""
    inputs = data.get("inputs")
    if inputs is None:
        raise InvalidInput("missing 'inputs': send [{\"name\": \"text\", \"shape\": [N], \"datatype\": \"BYTES\", \"data\": [...]}]")
    if not isinstance(inputs, list):
        raise InvalidInput(f"'inputs' must be a list of tensors, got {_json_type(inputs)}")
    if len(inputs) != 1:
        raise InvalidInput(f"the model takes exactly one input '{features.SERVING_INPUT}', got {len(inputs)} inputs")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise InvalidInput(f"inputs[0] must be an object, got {_json_type(tensor)}")
    for key in ("name", "shape", "datatype"):
        if key not in tensor:
            raise InvalidInput(f"inputs[0] is missing '{key}'")
    if tensor["name"] != features.SERVING_INPUT:
        raise InvalidInput(f"unknown input {shorten(tensor['name'])}; the model's input is '{features.SERVING_INPUT}'")
    if tensor["datatype"] != "BYTES":
        raise InvalidInput(f"input '{features.SERVING_INPUT}' must have datatype BYTES, got {shorten(tensor['datatype'])}")
    shape = tensor["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidInput(f"input '{features.SERVING_INPUT}': 'shape' must be a list of non-negative integers, got {clip(shape)}")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise InvalidInput(f"input '{features.SERVING_INPUT}' must have shape [N] (or [N, 1]), got {clip(shape)}")
    count = math.prod(shape)
    params = tensor.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput(f"inputs[0].parameters must be an object, got {_json_type(params)}")
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if not isinstance(size, int) or size < 0 or size != len(binary):
            raise InvalidInput(f"binary_data_size {clip(size)} does not match the {len(binary)} bytes after the JSON header")
        values = _decode_bytes_tensor(binary, f"input '{features.SERVING_INPUT}'")
    else:
        if "data" not in tensor:
            raise InvalidInput(f"input '{features.SERVING_INPUT}' is missing 'data'")
        if not isinstance(tensor["data"], list):
            raise InvalidInput(f"input '{features.SERVING_INPUT}': 'data' must be a list, got {_json_type(tensor['data'])}")
        values = []
        for i, value in enumerate(_elements(tensor["data"], shape, f"input '{features.SERVING_INPUT}'")):
            if not isinstance(value, str):
                raise InvalidInput(f"input '{features.SERVING_INPUT}': data[{i}] must be a string (BYTES), got {_json_type(value)}")
            values.append(_text_value(value, f"input '{features.SERVING_INPUT}' data[{i}]"))
    if len(values) != count:
        raise InvalidInput(f"input '{features.SERVING_INPUT}': shape {shape} needs {count} elements, got {len(values)}")
    if not values:
        raise InvalidInput(f"input '{features.SERVING_INPUT}' is empty: send at least one text")

    request_params = data.get("parameters") or {}
    if not isinstance(request_params, dict):
        raise InvalidInput(f"'parameters' must be an object, got {_json_type(request_params)}")
    binary_default = bool(request_params.get("binary_data_output", False))
    requested = data.get("outputs")
    wanted: dict[str, bool] = {}
    if requested is None:
        wanted = {name: binary_default for name in _OUTPUTS}
    else:
        if not isinstance(requested, list):
            raise InvalidInput(f"'outputs' must be a list, got {_json_type(requested)}")
        for i, out in enumerate(requested):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise InvalidInput(f"outputs[{i}] must be an object with a 'name'")
            if out["name"] not in _OUTPUTS:
                raise InvalidInput(f"unknown output {shorten(out['name'])}; the model's outputs are {list(_OUTPUTS)}")
            out_params = out.get("parameters") or {}
            wanted[out["name"]] = bool(out_params.get("binary_data", binary_default)) if isinstance(out_params, dict) else binary_default
    return values, wanted


def _encode_bytes_tensor(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def render_v2(result: PredictResult, wanted: dict[str, bool], request_id: Optional[str]) -> tuple[bytes, Optional[int]]:
    """(body, JSON header length or None when there is no binary part)."""
    p = result.prediction
    n, c = p.probabilities.shape
    outputs, chunks = [], []
    for name in _OUTPUTS:
        if name not in wanted:
            continue
        if name == features.OUTPUT_PROBABILITIES:
            entry = {"name": name, "datatype": "FP32", "shape": [n, c]}
            raw = p.probabilities.astype("<f4").tobytes() if wanted[name] else None
            data = None if wanted[name] else p.probabilities.reshape(-1).tolist()
        else:
            strings = p.labels if name == features.OUTPUT_LABEL else [cls for _ in range(n) for cls in p.classes]
            entry = {"name": name, "datatype": "BYTES", "shape": [n] if name == features.OUTPUT_LABEL else [n, c]}
            raw = _encode_bytes_tensor([s.encode("utf-8") for s in strings]) if wanted[name] else None
            data = None if wanted[name] else strings
        if raw is not None:
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = data
        outputs.append(entry)
    response: dict[str, Any] = {"model_name": result.model, "model_version": str(result.version), "outputs": outputs}
    response["id"] = request_id if request_id is not None else result.request_id
    header = json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
