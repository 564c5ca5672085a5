"""Acceptance 4: every kind of bad input gets its 4xx with a message, and the server stays up."""

from __future__ import annotations

import base64
import json

import pytest

MODEL = "text_classifier"
TFS = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"


def _v2(data, **tensor):
    return json.dumps({"inputs": [{"name": "text", "shape": [len(data)], "datatype": "BYTES", "data": data, **tensor}]}).encode()


CASES = [
    # (id, path, body, status, message fragment)
    ("malformed-json", TFS, b'{"instances": ["a",', 400, "malformed JSON"),
    ("malformed-json-v2", V2, b"{inputs: []}", 400, "malformed JSON"),
    ("empty-body", TFS, b"", 400, "body is empty"),
    ("deeply-nested", TFS, b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
    ("deeply-nested-v2", V2, b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "nested too deeply"),
    ("not-an-object", TFS, b'["a", "b"]', 400, "must be a JSON object"),
    ("wrong-type-instances", TFS, b'{"instances": "just a string"}', 400, "'instances' must be a list"),
    ("wrong-type-element", TFS, b'{"instances": ["ok", 42]}', 400, "instances[1]: expected a string"),
    ("wrong-type-nested-list", TFS, b'{"instances": [["a"]]}', 400, "instances[0]: expected a string"),
    ("wrong-input-name", TFS, b'{"instances": [{"txt": "a"}]}', 400, "takes one input 'text'"),
    ("wrong-signature", TFS, b'{"signature_name": "nope", "instances": ["a"]}', 400, "signature_name 'nope'"),
    ("both-formats", TFS, b'{"instances": ["a"], "inputs": ["a"]}', 400, "not both"),
    ("missing-key", TFS, b'{"signature_name": "serving_default"}', 400, "missing 'instances'"),
    ("unknown-key", TFS, b'{"instancez": ["a"]}', 400, "unknown key"),
    ("empty-instances", TFS, b'{"instances": []}', 400, "'instances' is empty"),
    ("empty-inputs", TFS, b'{"inputs": {"text": []}}', 400, "'inputs' is empty"),
    ("invalid-base64", TFS, b'{"instances": [{"b64": "not*base64!"}]}', 400, "invalid base64"),
    ("b64-not-a-string", TFS, b'{"instances": [{"b64": 12}]}', 400, "'b64' must be a base64 string"),
    ("invalid-utf8-body", TFS, b'{"instances": ["caf\xe9"]}', 400, "not valid UTF-8"),
    (
        "invalid-utf8-after-b64",
        TFS,
        json.dumps({"instances": [{"b64": base64.b64encode(b"\xff\xfe bad").decode()}]}).encode(),
        400,
        "instance 0: text is not valid UTF-8",
    ),
    ("lone-surrogate", TFS, b'{"instances": ["\\ud800"]}', 400, "unpaired surrogate"),
    ("unknown-model", "/v1/models/nope:predict", b'{"instances": ["a"]}', 404, "model 'nope' is not served"),
    ("unknown-version", f"/v1/models/{MODEL}/versions/99:predict", b'{"instances": ["a"]}', 404, "version 99"),
    ("bad-version", f"/v1/models/{MODEL}/versions/abc:predict", b'{"instances": ["a"]}', 400, "positive integer"),
    ("unknown-label", f"/v1/models/{MODEL}/labels/gold:predict", b'{"instances": ["a"]}', 404, "label 'gold'"),
    ("too-many-instances", TFS, json.dumps({"instances": ["a"] * 257}).encode(), 400, "the limit is 256"),
    ("v2-missing-inputs", V2, b'{"outputs": []}', 400, "missing 'inputs'"),
    ("v2-wrong-datatype", V2, _v2(["a"], datatype="FP32"), 400, "datatype BYTES"),
    ("v2-wrong-name", V2, json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}).encode(), 400, "unknown input 'x'"),
    ("v2-shape-mismatch", V2, _v2(["a", "b"], shape=[3]), 400, "needs 3 elements"),
    ("v2-bad-shape", V2, _v2(["a"], shape="one"), 400, "'shape' must be a list"),
    ("v2-wrong-element", V2, _v2(["a", 5]), 400, "data[1] must be a string"),
    ("v2-empty", V2, _v2([]), 400, "is empty"),
    ("v2-missing-data", V2, json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES"}]}).encode(), 400, "missing 'data'"),
    ("v2-unknown-output", V2, json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}], "outputs": [{"name": "logits"}]}).encode(), 400, "unknown output 'logits'"),
    ("v2-unknown-model", "/v2/models/nope/infer", _v2(["a"]), 404, "model 'nope'"),
    ("v2-unknown-version", f"/v2/models/{MODEL}/versions/7/infer", _v2(["a"]), 404, "version 7"),
    ("unknown-endpoint", f"/v1/models/{MODEL}:classify", b'{"examples": []}', 404, "no such endpoint"),
]


@pytest.mark.parametrize("path,body,status,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_4xx(server, path, body, status, fragment):
    got, data, _ = server.post(path, body)
    assert got == status, data
    assert set(data) == {"error"}, data  # TF Serving's error shape, nothing else (no stack trace)
    assert fragment in data["error"], data["error"]
    assert "Traceback" not in data["error"]
    assert server.alive()


def test_v2_binary_bytes_tensor_truncated(server):
    header = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]}).encode()
    body = header + b"\x10\x00\x00\x00ab"  # says 16 bytes, carries 2
    got, data, _ = server.post(V2, body, {"Inference-Header-Content-Length": str(len(header))})
    assert got == 400 and "runs past the binary data" in data["error"]
    assert server.alive()


def test_wrong_method_and_server_stays_ready(server):
    status, body = server.get(TFS)
    assert status == 405 and "POST" in json.loads(body)["error"]
    assert server.get("/v2/health/ready")[0] == 200
    # 4xx are counted per protocol and status, with unknown model names folded into one label
    assert server.metric("textops_serving_requests_total", protocol="rest", status="400") >= 10
    assert server.metric("textops_serving_requests_total", model="nope") == 0
    assert server.metric("textops_serving_requests_total", model="unknown", status="404") >= 1


def test_body_limit_and_auth(exported_models, tmp_path, start_server, repo_tools):
    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    config = {"limits": {"max_body_bytes": 4096, "max_instances": 8}, "auth_token_env": "TEXTOPS_TEST_TOKEN"}
    srv = start_server(repo, config, env={"TEXTOPS_TEST_TOKEN": "s3cret-for-tests"})
    auth = {"Authorization": "Bearer s3cret-for-tests"}
    ok_body = json.dumps({"instances": ["hello"]}).encode()

    status, data, headers = srv.post(TFS, ok_body)
    assert status == 401 and "bearer token" in data["error"] and headers["WWW-Authenticate"].startswith("Bearer")
    status, data, _ = srv.post(TFS, ok_body, {"Authorization": "Bearer wrong"})
    assert status == 401
    assert srv.post(TFS, ok_body, auth)[0] == 200
    assert srv.get("/v2/health/ready")[0] == 200  # probes need no token
    assert srv.get(f"/v1/models/{MODEL}")[0] == 401

    big = json.dumps({"instances": ["x" * 5000]}).encode()
    status, data, _ = srv.post(TFS, big, auth)
    assert status == 413 and "4096" in data["error"], data
    status, data, _ = srv.post(TFS, json.dumps({"instances": ["a"] * 9}).encode(), auth)
    assert status == 400 and "the limit is 8" in data["error"]

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(["hello"]))
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert stub.Predict(request, timeout=10, metadata=(("authorization", "Bearer s3cret-for-tests"),)).outputs["label"]
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(["y" * 5000]))
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(request, timeout=10, metadata=(("authorization", "Bearer s3cret-for-tests"),))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert srv.alive()
