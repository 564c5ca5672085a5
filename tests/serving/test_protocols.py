"""Real clients nobody here wrote get the in-process ``tf.saved_model.load`` probabilities.

Acceptance 1: the ``tensorflow_serving.apis`` gRPC stubs, ``tritonclient[http]`` (KServe v2 /
Open Inference Protocol) with BYTES inputs, and the request bodies of TF Serving's REST docs.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import numpy as np
import pytest

MODEL = "text_classifier"

TEXTS = ["my package has not arrived yet", "please refund the extra payment", "我的包裹还没有到", ""]


def _probs(rows):
    return np.array([row["probabilities"] for row in rows], dtype=np.float32)


# -- TF Serving REST: bodies as in https://www.tensorflow.org/tfx/serving/api_rest ---------------
def test_rest_row_format_strings(server, reference):
    status, data, headers = server.post(f"/v1/models/{MODEL}:predict", json.dumps({"instances": TEXTS}).encode())
    assert status == 200, data
    np.testing.assert_allclose(_probs(data["predictions"]), reference(TEXTS), atol=1e-6)
    assert [p["label"] for p in data["predictions"]] == [
        p["classes"][int(np.argmax(p["probabilities"]))] for p in data["predictions"]
    ]
    assert headers["X-Model-Version"] == "2"  # policy 'all': the default is the newest


def test_rest_row_format_named_and_b64(server, reference):
    body = {
        "signature_name": "serving_default",
        "instances": [
            {"text": TEXTS[0]},
            {"text": {"b64": base64.b64encode(TEXTS[1].encode()).decode()}},
            {"b64": base64.b64encode(TEXTS[2].encode()).decode()},
        ],
    }
    status, data, _ = server.post(f"/v1/models/{MODEL}:predict", json.dumps(body).encode())
    assert status == 200, data
    np.testing.assert_allclose(_probs(data["predictions"]), reference(TEXTS[:3]), atol=1e-6)


@pytest.mark.parametrize("inputs", [TEXTS, {"text": TEXTS}])
def test_rest_columnar_format(server, reference, inputs):
    status, data, _ = server.post(f"/v1/models/{MODEL}:predict", json.dumps({"inputs": inputs}).encode())
    assert status == 200, data
    outputs = data["outputs"]
    np.testing.assert_allclose(np.array(outputs["probabilities"], dtype=np.float32), reference(TEXTS), atol=1e-6)
    assert len(outputs["label"]) == len(TEXTS) and len(outputs["classes"]) == len(TEXTS)


def test_rest_versions_and_labels(server, reference):
    body = json.dumps({"instances": TEXTS}).encode()
    for path, version in [
        (f"/v1/models/{MODEL}/versions/1:predict", 1),
        (f"/v1/models/{MODEL}/versions/2:predict", 2),
        (f"/v1/models/{MODEL}/labels/stable:predict", 1),
        (f"/v1/models/{MODEL}/labels/canary:predict", 2),
    ]:
        status, data, headers = server.post(path, body)
        assert status == 200, (path, data)
        assert headers["X-Model-Version"] == str(version)
        np.testing.assert_allclose(_probs(data["predictions"]), reference(TEXTS, version), atol=1e-6)
    assert not np.allclose(reference(TEXTS, 1), reference(TEXTS, 2), atol=1e-3)  # versions differ


def test_rest_status_and_metadata(server):
    status, body = server.get(f"/v1/models/{MODEL}")
    assert status == 200
    versions = json.loads(body)["model_version_status"]
    assert {(v["version"], v["state"], v["status"]["error_code"]) for v in versions} == {("1", "AVAILABLE", "OK"), ("2", "AVAILABLE", "OK")}
    status, body = server.get(f"/v1/models/{MODEL}/labels/stable")
    assert status == 200 and [v["version"] for v in json.loads(body)["model_version_status"]] == ["1"]
    status, body = server.get(f"/v1/models/{MODEL}/metadata")
    meta = json.loads(body)
    assert status == 200 and meta["model_spec"] == {"name": MODEL, "signature_name": "", "version": "2"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["text"]["dtype"] == "DT_STRING"
    assert set(sig["outputs"]) >= {"probabilities", "label", "classes"}


# -- TF Serving gRPC with the stock stubs --------------------------------------------------------
def test_grpc_predict_metadata_status(server, reference):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for version in (1, 2):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.model_spec.signature_name = "serving_default"
            request.model_spec.version.value = version
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(TEXTS))
            response = stub.Predict(request, timeout=10)
            assert response.model_spec.version.value == version
            np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), reference(TEXTS, version), atol=1e-6)
            assert tf.make_ndarray(response.outputs["label"]).shape == (len(TEXTS),)

        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.model_spec.version_label = "stable"
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(TEXTS[:1]))
        request.output_filter.append("label")
        response = stub.Predict(request, timeout=10)
        assert list(response.outputs) == ["label"] and response.model_spec.version.value == 1

        meta_request = get_model_metadata_pb2.GetModelMetadataRequest()
        meta_request.model_spec.name = MODEL
        meta_request.metadata_field.append("signature_def")
        meta = stub.GetModelMetadata(meta_request, timeout=10)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        meta.metadata["signature_def"].Unpack(sig_map)
        assert "text" in sig_map.signature_def["serving_default"].inputs

        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = MODEL
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, timeout=10)
        assert {(s.version, s.state) for s in status.model_version_status} == {(1, 30), (2, 30)}  # 30: AVAILABLE

        bad = predict_pb2.PredictRequest()
        bad.model_spec.name = "no_such_model"
        bad.inputs["text"].CopyFrom(tf.make_tensor_proto(TEXTS[:1]))
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(bad, timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no_such_model" in err.value.details()
        bad = predict_pb2.PredictRequest()
        bad.model_spec.name = MODEL
        bad.inputs["text"].CopyFrom(tf.make_tensor_proto([1.0, 2.0]))
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(bad, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "DT_STRING" in err.value.details()


# -- KServe v2 with tritonclient -------------------------------------------------------------
@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_tritonclient_infer_bytes(server, reference, binary_in, binary_out):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    meta = client.get_model_metadata(MODEL)
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    text_input = httpclient.InferInput("text", [len(TEXTS)], "BYTES")
    text_input.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_), binary_data=binary_in)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary_out) for n in ("probabilities", "label")]
    result = client.infer(MODEL, [text_input], outputs=outputs, model_version="1")
    np.testing.assert_allclose(result.as_numpy("probabilities"), reference(TEXTS, 1), atol=1e-6)
    assert result.as_numpy("label").shape == (len(TEXTS),)
    assert result.get_response()["model_version"] == "1"
    default = client.infer(MODEL, [text_input])  # no outputs named: all of them
    np.testing.assert_allclose(default.as_numpy("probabilities"), reference(TEXTS, 2), atol=1e-6)
    assert default.as_numpy("classes").shape == (len(TEXTS), 4)
    client.close()


# -- our client and CLI ------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_python_client(server, reference, protocol):
    from textops.serving.client import ClientError, ServingClient

    url = server.url if protocol == "rest" else f"grpc://127.0.0.1:{server.grpc_port}"
    with ServingClient(url, model=MODEL) as client:
        got = client.predict(TEXTS, label="stable")
        np.testing.assert_allclose(np.array([p.probabilities for p in got]), reference(TEXTS, 1), atol=1e-6)
        assert {p.version for p in got} == {1}
        with pytest.raises(ClientError, match="not available"):
            client.predict(TEXTS, version=99)
    assert client.retried == 0


def test_predict_cli(server, reference):
    out = subprocess.run(
        [sys.executable, "-m", "textops.cli", "predict", "--url", server.url, "--model", MODEL, "--version", "1", *TEXTS[:2]],
        capture_output=True, text=True, timeout=60, check=True,
    )
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["text"] for line in lines] == TEXTS[:2] and {line["version"] for line in lines} == {1}
    probs = np.array([list(line["probabilities"].values()) for line in lines], dtype=np.float32)
    np.testing.assert_allclose(probs, reference(TEXTS[:2], 1), atol=1e-6)


def test_metrics_exposed(server):
    status, body = server.get("/metrics")
    text = body.decode()
    assert status == 200
    for name in (
        "textops_serving_requests_total",
        "textops_serving_stage_latency_seconds_bucket",
        "textops_serving_batch_size_bucket",
        "textops_serving_loaded_versions",
    ):
        assert name in text
    assert server.metric("textops_serving_loaded_versions", model=MODEL) == 2
    assert server.metric("textops_serving_requests_total", model=MODEL, protocol="rest", status="200") > 0
    for stage in ("queue", "batch", "inference", "total"):
        assert server.metric("textops_serving_stage_latency_seconds_count", model=MODEL, stage=stage) > 0
