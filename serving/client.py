"""A Python client for the serving endpoint: TF Serving REST or gRPC, with retries.

Retries only what is safe and meant to be retried: 429 / 503 (gRPC RESOURCE_EXHAUSTED /
UNAVAILABLE) and connection failures, with exponential backoff and jitter, honouring
``Retry-After``. Other errors raise ``ClientError`` with the server's message at once.

    from textops.serving.client import ServingClient
    client = ServingClient("http://127.0.0.1:8501", model="text_classifier")
    client.predict(["my parcel is late"])[0].label
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import urllib.error
import urllib.request
from typing import Optional, Sequence

DEFAULT_MODEL = "text_classifier"  # the Pusher's default model name (settings.push.model_name)
_RETRY_HTTP = (429, 503)


class ClientError(RuntimeError):
    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class ClientPrediction:
    label: str
    probabilities: list[float]
    classes: list[str]
    version: Optional[int] = None


class ServingClient:
    def __init__(
        self,
        url: str,
        *,
        model: str = DEFAULT_MODEL,
        protocol: Optional[str] = None,
        token: Optional[str] = None,
        timeout_s: float = 10.0,
        retries: int = 5,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
    ):
        if protocol is None:
            protocol = "grpc" if url.startswith("grpc://") else "rest"
        if protocol not in ("rest", "grpc"):
            raise ValueError(f"protocol must be 'rest' or 'grpc', got {protocol!r}")
        self.protocol = protocol
        self.url = url.removeprefix("grpc://").rstrip("/")
        if protocol == "rest" and not self.url.startswith(("http://", "https://")):
            self.url = "http://" + self.url
        self.model = model
        self.token = token
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.retried = 0  # how many retries this client has made (observability for callers)
        self._channel = None
        self._stub = None

    # -- public API --------------------------------------------------------------------------
    def predict(
        self, texts: Sequence[str], *, version: Optional[int] = None, label: Optional[str] = None
    ) -> list[ClientPrediction]:
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts, not one string")
        call = self._predict_grpc if self.protocol == "grpc" else self._predict_rest
        attempt = 0
        while True:
            try:
                return call(list(texts), version, label)
            except _Retryable as exc:
                if attempt >= self.retries:
                    raise ClientError(f"gave up after {attempt + 1} attempts: {exc.message}", exc.status) from None
                delay = min(self.max_backoff_s, self.backoff_s * (2**attempt)) * (0.5 + random.random() / 2)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.max_backoff_s))
                attempt += 1
                self.retried += 1
                time.sleep(delay)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None

    def __enter__(self) -> "ServingClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- REST --------------------------------------------------------------------------------
    def _predict_rest(self, texts: list[str], version: Optional[int], label: Optional[str]) -> list[ClientPrediction]:
        path = f"/v1/models/{self.model}"
        if version is not None:
            path += f"/versions/{version}"
        elif label is not None:
            path += f"/labels/{label}"
        body = json.dumps({"instances": texts}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path + ":predict", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data = json.loads(response.read())
                served = response.headers.get("X-Model-Version")
        except urllib.error.HTTPError as exc:
            message = _error_message(exc.read(), exc.code)
            if exc.code in _RETRY_HTTP:
                retry_after = exc.headers.get("Retry-After")
                raise _Retryable(message, exc.code, float(retry_after) if retry_after and retry_after.isdigit() else None)
            raise ClientError(message, exc.code) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise _Retryable(f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}", None, None) from None
        return [
            ClientPrediction(p["label"], p["probabilities"], p["classes"], int(served) if served else None)
            for p in data["predictions"]
        ]

    # -- gRPC --------------------------------------------------------------------------------
    def _predict_grpc(self, texts: list[str], version: Optional[int], label: Optional[str]) -> list[ClientPrediction]:
        import grpc
        from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        if self._stub is None:
            self._channel = grpc.insecure_channel(self.url)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        if version is not None:
            request.model_spec.version.value = version
        elif label is not None:
            request.model_spec.version_label = label
        tensor = tensor_pb2.TensorProto(dtype=7, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": len(texts)}]))
        tensor.string_val.extend(t.encode("utf-8") for t in texts)
        request.inputs["text"].CopyFrom(tensor)
        metadata = (("authorization", f"Bearer {self.token}"),) if self.token else None
        try:
            response = self._stub.Predict(request, timeout=self.timeout_s, metadata=metadata)
        except grpc.RpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
                raise _Retryable(f"{code.name}: {exc.details()}", 429 if code == grpc.StatusCode.RESOURCE_EXHAUSTED else 503, None) from None
            raise ClientError(f"{code.name}: {exc.details()}") from None
        import numpy as np

        probs_t = response.outputs["probabilities"]
        shape = [d.size for d in probs_t.tensor_shape.dim]
        probs = np.frombuffer(probs_t.tensor_content, dtype="<f4").reshape(shape) if probs_t.tensor_content else np.array(probs_t.float_val, dtype=np.float32).reshape(shape)
        labels = [b.decode("utf-8") for b in response.outputs["label"].string_val]
        classes = [b.decode("utf-8") for b in response.outputs["classes"].string_val][: shape[1]]
        served = response.model_spec.version.value or None
        return [ClientPrediction(labels[i], probs[i].tolist(), classes, served) for i in range(len(labels))]


class _Retryable(Exception):
    def __init__(self, message: str, status: Optional[int], retry_after: Optional[float]):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


def _error_message(body: bytes, status: int) -> str:
    try:
        return f"HTTP {status}: {json.loads(body)['error']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
