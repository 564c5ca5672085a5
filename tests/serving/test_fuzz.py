"""Fuzzing every HTTP and gRPC endpoint with hypothesis (derandomized: the same cases every run).

Generated paths, headers and bodies (valid requests with mutations, JSON of any shape, raw
bytes); after every case: no status >= 500 (gRPC: no INTERNAL/UNKNOWN/DATA_LOSS), error bodies
are JSON with an ``error``, the server is alive; at the end, the prediction log holds exactly
one record per prediction answered.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textops.prediction_log import ReadStats, iter_records

MODEL = "text_classifier"
HTTP_CASES = 2500
GRPC_CASES = 1000
FUZZ = settings(
    max_examples=HTTP_CASES, derandomize=True, database=None, deadline=None,
    suppress_health_check=list(HealthCheck), print_blob=False,
)

# -- strategies ---------------------------------------------------------------------------------------
names = st.one_of(st.just(MODEL), st.text(min_size=0, max_size=30), st.just("m" * 3000))
versions = st.one_of(
    st.integers(min_value=-5, max_value=2**70).map(str), st.just("²"), st.just("9" * 5000), st.text(max_size=12), st.just("1")
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
texts = st.one_of(st.text(max_size=40), st.just("\ud800"), st.builds(lambda s: {"b64": s}, st.text(max_size=12)))
shapes = st.one_of(st.lists(st.integers(min_value=-2, max_value=5), max_size=3), json_values)


@st.composite
def tfs_bodies(draw):
    body: dict = {}
    if draw(st.booleans()):
        body["instances"] = draw(st.one_of(st.lists(texts, max_size=5), json_values))
    else:
        body["inputs"] = draw(st.one_of(st.lists(texts, max_size=5), st.fixed_dictionaries({"text": st.lists(texts, max_size=5)}), json_values))
    if draw(st.integers(0, 4)) == 0:
        body[draw(st.sampled_from(["signature_name", "extra", "instances"]))] = draw(json_values)
    return body


@st.composite
def v2_bodies(draw):
    data = draw(st.one_of(st.lists(texts, min_size=1, max_size=4), st.lists(st.lists(texts, max_size=2), max_size=3), json_values))
    tensor = {"name": draw(st.sampled_from(["text", "x"])), "datatype": draw(st.sampled_from(["BYTES", "FP32", 1])), "data": data}
    tensor["shape"] = [len(data)] if isinstance(data, list) and draw(st.booleans()) else draw(shapes)
    body: dict = {"inputs": [tensor] if draw(st.integers(0, 5)) else draw(json_values)}
    if draw(st.booleans()):
        body["id"] = draw(st.one_of(st.text(max_size=10), st.just("\udcff"), json_values))
    if draw(st.integers(0, 3)) == 0:
        body["outputs"] = draw(st.one_of(st.just([{"name": "label"}]), json_values))
    if draw(st.integers(0, 3)) == 0:
        body["parameters"] = draw(json_values)
    return body


header_values = st.one_of(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30), st.just("9" * 5000))
ROUTES = [
    ("POST", "/v1/models/{m}:predict", "tfs"),
    ("POST", "/v1/models/{m}/versions/{v}:predict", "tfs"),
    ("POST", "/v1/models/{m}/labels/{l}:predict", "tfs"),
    ("GET", "/v1/models/{m}", None),
    ("GET", "/v1/models/{m}/versions/{v}", None),
    ("GET", "/v1/models/{m}/labels/{l}", None),
    ("GET", "/v1/models/{m}/metadata", None),
    ("GET", "/v1/models/{m}/versions/{v}/metadata", None),
    ("GET", "/v1/models/{m}/labels/{l}/metadata", None),
    ("GET", "/v2", None),
    ("GET", "/v2/health/live", None),
    ("GET", "/v2/health/ready", None),
    ("GET", "/v2/models/{m}", None),
    ("GET", "/v2/models/{m}/versions/{v}", None),
    ("GET", "/v2/models/{m}/ready", None),
    ("GET", "/v2/models/{m}/versions/{v}/ready", None),
    ("POST", "/v2/models/{m}/infer", "v2"),
    ("POST", "/v2/models/{m}/versions/{v}/infer", "v2"),
    ("GET", "/metrics", None),
]


@st.composite
def valid_predictions(draw):
    """A well-formed predict/infer (a quarter of the cases), so the fuzz reaches the model too."""
    words = draw(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4))
    where = draw(st.sampled_from(["", "/versions/1", "/versions/2", "/labels/stable"]))
    headers = {"Content-Type": "application/json"}
    if draw(st.booleans()):
        headers["X-Request-Id"] = draw(header_values)
    if draw(st.booleans()) or where.startswith("/labels"):
        return "POST", f"/v1/models/{MODEL}{where}:predict", headers, json.dumps({"instances": words}).encode()
    body = {"inputs": [{"name": "text", "shape": [len(words)], "datatype": "BYTES", "data": words}]}
    return "POST", f"/v2/models/{MODEL}{where}/infer", headers, json.dumps(body).encode()


@st.composite
def http_requests(draw):
    if draw(st.integers(0, 3)) == 0:
        return draw(valid_predictions())
    method, template, kind = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["PUT", "DELETE", "GET", "POST", "PATCH"]))
    path = template.format(
        m=urllib.parse.quote(draw(names), safe=""), v=urllib.parse.quote(draw(versions), safe=""), l=urllib.parse.quote(draw(st.sampled_from(["stable", "canary", "gold", ""])), safe="")
    )
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "application/octet-stream"]))}
    for name in ("Content-Encoding", "X-Request-Id", "Inference-Header-Content-Length", "Authorization"):
        if draw(st.integers(0, 6)) == 0:
            headers[name] = draw(st.sampled_from(["gzip", "deflate", "identity", "br", "compress"])) if name == "Content-Encoding" else draw(header_values)
    shape = draw(st.integers(0, 9))
    if shape == 0:
        body = draw(st.binary(max_size=200))
    elif kind == "v2" or (kind is None and shape == 1):
        body = json.dumps(draw(v2_bodies())).encode("utf-8", "surrogatepass")
    else:
        body = json.dumps(draw(tfs_bodies())).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 7)) == 0:  # mutate: cut, or a long number anywhere
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.sampled_from([b"", b"1" * 5000, b"\xff", b"[" * 50]))
    return method, path, headers, body


def _predicted(path: str, status: int, data) -> int:
    """Texts answered by a 200 predict/infer (each must have exactly one log record)."""
    if status != 200:
        return 0
    if path.endswith(":predict"):
        outputs = data.get("predictions") or data.get("outputs", {}).get("label", [])
        return len(outputs)
    if path.endswith("/infer"):
        label = next(o for o in data["outputs"] if o["name"] == "label")
        return label["shape"][0]
    return 0


def test_fuzz_every_http_and_grpc_endpoint(exported_models, tmp_path, start_server, repo_tools):
    repo = repo_tools.make(tmp_path, exported_models, versions=(1, 2))
    log_dir = tmp_path / "predictions"
    config = {"models": {MODEL: {"version_policy": "all", "labels": {"stable": 1, "canary": 2}}}}
    srv = start_server(repo, config, log_dir=log_dir)
    counts = {"http": 0, "grpc": 0, "answered": 0, "status": {}}
    conn = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)]

    @FUZZ
    @given(http_requests())
    def fuzz_http(request):
        method, path, headers, body = request
        c = conn[0]
        try:
            c.request(method, path, body=body if method in ("POST", "PUT", "PATCH") else None, headers=headers)
            resp = c.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, ConnectionError):
            conn[0] = c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)  # the server closed it: fine
            c.request("GET", "/v2/health/live")
            assert c.getresponse().read()
            return
        counts["http"] += 1
        counts["status"][resp.status] = counts["status"].get(resp.status, 0) + 1
        data = json.loads(raw) if resp.getheader("Content-Type", "").startswith("application/json") else None
        readiness = path.endswith("/ready") and resp.status == 503 and data.get("ready") is False  # probes say "not ready" so
        assert resp.status < 500 or readiness, (method, path[:200], headers, body[:300], raw[:500])
        if resp.status >= 400 and not readiness:
            assert isinstance(data, dict) and isinstance(data.get("error"), str) and "Traceback" not in data["error"], raw[:300]
        counts["answered"] += _predicted(path, resp.status, data)
        if resp.getheader("Connection", "").lower() == "close":
            conn[0] = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)

    fuzz_http()
    assert srv.alive()
    _fuzz_grpc(srv, counts)
    assert srv.alive()
    print(f"\nfuzz: {counts['http']} HTTP + {counts['grpc']} gRPC cases, HTTP statuses {counts['status']}, {counts['answered']} predictions")
    assert counts["http"] >= HTTP_CASES * 0.95 and counts["grpc"] >= GRPC_CASES * 0.95
    assert counts["answered"] > 50  # the fuzz also reached the model, not only the validators
    assert srv.stop() == 0
    stats = ReadStats()
    records = list(iter_records(log_dir, stats))
    assert stats.corrupt == 0
    assert len(records) == counts["answered"]  # exactly one record per answered prediction
    assert "Traceback" not in srv.log_path.read_text()


def _fuzz_grpc(srv, counts) -> None:
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

    bad_codes = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNIMPLEMENTED}
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
    predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    raw_methods = [channel.unary_unary(m) for m in (
        "/tensorflow.serving.PredictionService/Predict", "/tensorflow.serving.PredictionService/GetModelMetadata",
        "/tensorflow.serving.ModelService/GetModelStatus")]

    def spec(target, name, version, label):
        target.name = name
        if version is not None:
            target.version.value = version
        elif label is not None:
            target.version_label = label

    @settings(FUZZ, max_examples=GRPC_CASES)
    @given(
        kind=st.sampled_from(["predict", "predict", "metadata", "status", "raw"]),
        name=st.one_of(st.just(MODEL), st.text(max_size=20), st.just("n" * 100_000)),
        version=st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from([1, 2])),
        label=st.one_of(st.none(), st.sampled_from(["stable", "canary", "x" * 5000])),
        dtype=st.sampled_from([7, 7, 1, 0, 99]),
        dims=st.lists(st.integers(min_value=-1, max_value=2**40), max_size=3),
        strings=st.lists(st.binary(max_size=30), max_size=4),
        inputs=st.sampled_from([["text"], ["text", "other"], ["txt"], []]),
        outputs=st.lists(st.sampled_from(["label", "probabilities", "classes", "logits"]), max_size=2),
        raw=st.binary(max_size=100),
    )
    def fuzz(kind, name, version, label, dtype, dims, strings, inputs, outputs, raw):
        try:
            if kind == "raw":
                raw_methods[len(raw) % 3](raw, timeout=10)
            elif kind == "status":
                request = get_model_status_pb2.GetModelStatusRequest()
                spec(request.model_spec, name, version, label)
                models.GetModelStatus(request, timeout=10)
            elif kind == "metadata":
                request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"] if version else ["x"])
                spec(request.model_spec, name, version, label)
                predictions.GetModelMetadata(request, timeout=10)
            else:
                request = predict_pb2.PredictRequest(output_filter=outputs)
                spec(request.model_spec, name, version, label)
                for key in inputs:
                    tensor = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in dims]))
                    tensor.string_val.extend(strings)
                    request.inputs[key].CopyFrom(tensor)
                response = predictions.Predict(request, timeout=30)
                counts["answered"] += len(strings)  # served: one record per text
                assert response.outputs
        except grpc.RpcError as exc:
            assert exc.code() not in bad_codes, (kind, exc.code(), (exc.details() or "")[:300])
            assert len(exc.details() or "") < 2000
        counts["grpc"] += 1

    try:
        fuzz()
    finally:
        channel.close()


@pytest.fixture(autouse=True)
def _quiet_hypothesis_output(capsys):
    yield
