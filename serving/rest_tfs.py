"""TF Serving REST (``/v1``): status, metadata and predict, translated to and from the data plane."""

from __future__ import annotations

from aiohttp import web

from textops import features

from . import protos
from .dataplane import PredictResult
from .errors import InvalidInput, clip, shorten
from .rest_common import HttpEndpoints, json_response, json_type, text_value, version_of


class TfsEndpoints(HttpEndpoints):
    def add_routes(self, r: web.UrlDispatcher, m: str, v: str, lbl: str) -> None:
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

    async def tfs_status(self, request: web.Request) -> web.Response:
        info = request.match_info
        statuses = self.dp.model_status(info["name"], version_of(request), info.get("label"))
        return json_response(protos.model_status_json(statuses))

    async def tfs_metadata(self, request: web.Request) -> web.Response:
        info = request.match_info
        runtime = self.dp.model_metadata(info["name"], version_of(request), info.get("label"))
        return json_response(protos.metadata_json(runtime))

    async def tfs_predict(self, request: web.Request) -> web.Response:
        with self.admit(request):
            data, _ = await self.read_json(request)
            texts, columnar = parse_tfs_request(data)
            result = await self.predict(request, texts)
        headers = {"X-Request-Id": result.request_id, "X-Model-Version": str(result.version)}
        return json_response(render_tfs(result, columnar), headers=headers)


# -- TF Serving request/response translation (pure functions, unit-tested) ------------------------
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
            raise InvalidInput(f"'instances' must be a list, got {json_type(rows)}")
        if not rows:
            raise InvalidInput("'instances' is empty: send at least one instance")
        texts = []
        for i, row in enumerate(rows):
            if isinstance(row, dict) and "b64" not in row:
                if set(row) != {features.SERVING_INPUT}:
                    raise InvalidInput(f"instances[{i}]: the model takes one input '{features.SERVING_INPUT}', got keys {clip(sorted(row))}")
                row = row[features.SERVING_INPUT]
            texts.append(text_value(row, f"instances[{i}]"))
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
            raise InvalidInput(f"'inputs' must be a list of texts, got {json_type(cols)}")
        if not cols:
            raise InvalidInput("'inputs' is empty: send at least one text")
        return [text_value(v, f"inputs[{i}]") for i, v in enumerate(cols)], True
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
