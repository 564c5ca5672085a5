"""KServe v2 / Open Inference Protocol (``/v2``): health, metadata, readiness and infer (with the
binary tensor extension), translated to and from the data plane."""

from __future__ import annotations

import math
import struct
from typing import Any, Optional

from aiohttp import web

from textops import features

from .dataplane import PredictResult
from .errors import InvalidInput, clip, shorten
from .rest_common import BINARY_HEADER, HttpEndpoints, dumps, json_response, json_type, text_value, version_of

_OUTPUTS = (features.OUTPUT_PROBABILITIES, features.OUTPUT_LABEL, features.OUTPUT_CLASSES)
_LONGEST_TIMEOUT_US = 86_400 * 10**6  # a longer deadline is taken as one day (no float overflow, no timer overflow)


class V2Endpoints(HttpEndpoints):
    def add_routes(self, r: web.UrlDispatcher, m: str, v: str) -> None:
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

    async def v2_server_metadata(self, request: web.Request) -> web.Response:
        from textops import __version__

        return json_response({"name": "textops", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def v2_live(self, request: web.Request) -> web.Response:
        live = self.dp.live()
        return json_response({"live": live}, 200 if live else 503)

    async def v2_ready(self, request: web.Request) -> web.Response:
        ready = self.dp.ready()
        return json_response({"ready": ready}, 200 if ready else 503)

    async def v2_model_metadata(self, request: web.Request) -> web.Response:
        runtime = self.dp.model_metadata(request.match_info["name"], version_of(request))
        probs = [-1, len(runtime.classes)]
        return json_response(
            {
                "name": runtime.name,
                "versions": [str(v) for v in self.dp.servable_versions(runtime.name)],
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
        name = request.match_info["name"]
        ready = self.dp.model_ready(name, version_of(request))
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    async def v2_infer(self, request: web.Request) -> web.StreamResponse:
        with self.admit(request):
            data, binary = await self.read_json(request)
            texts, wanted = parse_v2_request(data, binary)
            request_id = data.get("id")
            if request_id is not None:
                if not isinstance(request_id, str):
                    raise InvalidInput(f"'id' must be a string, got {json_type(request_id)}")
                text_value(request_id, "'id'")  # valid Unicode, or 400
            result = await self.predict(request, texts, request_id, v2_timeout(data))
        body, json_len = render_v2(result, wanted, request_id)
        headers = {"X-Request-Id": result.request_id}
        if json_len is None:
            return web.Response(body=body, content_type="application/json", headers=headers)
        headers[BINARY_HEADER] = str(json_len)
        return web.Response(body=body, content_type="application/octet-stream", headers=headers)


# -- KServe v2 translation (pure functions, unit-tested) ------------------------------------------
def v2_timeout(data: dict) -> Optional[float]:
    """``parameters.timeout`` (microseconds, as Triton reads it) in seconds, if given."""
    params = data.get("parameters")
    if not isinstance(params, dict) or "timeout" not in params:
        return None
    value = params["timeout"]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(f"parameters.timeout must be a positive integer of microseconds, got {clip(value)}")
    return min(value, _LONGEST_TIMEOUT_US) / 1e6
def _elements(data: list, shape: list[int], where: str) -> list:
    """The tensor's elements in row-major order. ``data`` is either flat (``shape``'s element
    count of non-lists) or nested exactly as ``shape`` says; anything else is an error."""
    if not any(isinstance(v, list) for v in data):
        return data
    def walk(node: Any, depth: int, index: str) -> list:
        if not isinstance(node, list) or len(node) != shape[depth]:
            got = f"{len(node)} elements" if isinstance(node, list) else json_type(node)
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
        raise InvalidInput(f"'inputs' must be a list of tensors, got {json_type(inputs)}")
    if len(inputs) != 1:
        raise InvalidInput(f"the model takes exactly one input '{features.SERVING_INPUT}', got {len(inputs)} inputs")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise InvalidInput(f"inputs[0] must be an object, got {json_type(tensor)}")
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
        raise InvalidInput(f"inputs[0].parameters must be an object, got {json_type(params)}")
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if not isinstance(size, int) or size < 0 or size != len(binary):
            raise InvalidInput(f"binary_data_size {clip(size)} does not match the {len(binary)} bytes after the JSON header")
        values = _decode_bytes_tensor(binary, f"input '{features.SERVING_INPUT}'")
    else:
        if "data" not in tensor:
            raise InvalidInput(f"input '{features.SERVING_INPUT}' is missing 'data'")
        if not isinstance(tensor["data"], list):
            raise InvalidInput(f"input '{features.SERVING_INPUT}': 'data' must be a list, got {json_type(tensor['data'])}")
        values = []
        for i, value in enumerate(_elements(tensor["data"], shape, f"input '{features.SERVING_INPUT}'")):
            if not isinstance(value, str):
                raise InvalidInput(f"input '{features.SERVING_INPUT}': data[{i}] must be a string (BYTES), got {json_type(value)}")
            values.append(text_value(value, f"input '{features.SERVING_INPUT}' data[{i}]"))
    if len(values) != count:
        raise InvalidInput(f"input '{features.SERVING_INPUT}': shape {shape} needs {count} elements, got {len(values)}")
    if not values:
        raise InvalidInput(f"input '{features.SERVING_INPUT}' is empty: send at least one text")

    request_params = data.get("parameters") or {}
    if not isinstance(request_params, dict):
        raise InvalidInput(f"'parameters' must be an object, got {json_type(request_params)}")
    binary_default = bool(request_params.get("binary_data_output", False))
    requested = data.get("outputs")
    wanted: dict[str, bool] = {}
    if requested is None:
        wanted = {name: binary_default for name in _OUTPUTS}
    else:
        if not isinstance(requested, list):
            raise InvalidInput(f"'outputs' must be a list, got {json_type(requested)}")
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
    header = dumps(response)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
