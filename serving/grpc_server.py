"""TF Serving gRPC adapter: ``PredictionService.Predict``/``GetModelMetadata`` and ``ModelService.GetModelStatus``.

Uses the stock ``tensorflow_serving.apis`` protos, so any TF Serving client works unchanged.
Runs on the server's asyncio loop (grpc.aio) next to the HTTP adapters and shares the data plane.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from typing import Optional

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from textops import features

from . import protos
from .dataplane import DataPlane
from .errors import InvalidInput, ServingError, Unauthorized, clip, shorten

log = logging.getLogger(__name__)

DT_FLOAT = 1
DT_STRING = 7
_OUTPUTS = (features.OUTPUT_PROBABILITIES, features.OUTPUT_LABEL, features.OUTPUT_CLASSES)


def texts_from_tensor(tensor) -> list[bytes]:
    """A DT_STRING TensorProto of shape [N] (or [N, 1]) -> N byte strings."""
    name = features.SERVING_INPUT
    if tensor.dtype != DT_STRING:
        raise InvalidInput(f"input '{name}' must be DT_STRING, got dtype enum {tensor.dtype}")
    if tensor.tensor_shape.unknown_rank:
        raise InvalidInput(f"input '{name}' needs a known shape [N]")
    dims = [d.size for d in tensor.tensor_shape.dim]
    if len(dims) not in (1, 2) or (len(dims) == 2 and dims[1] != 1) or any(d < 0 for d in dims):
        raise InvalidInput(f"input '{name}' must have shape [N] (or [N, 1]), got {clip(dims)}")
    values = list(tensor.string_val)
    count = math.prod(dims)
    if len(values) != count:
        raise InvalidInput(f"input '{name}': shape {clip(dims)} needs {count} strings, got {len(values)} in string_val")
    return values


def _string_tensor(values: list[str], dims: list[int]):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    t = tensor_pb2.TensorProto(dtype=DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in dims]))
    t.string_val.extend(v.encode("utf-8") for v in values)
    return t


def _float_tensor(array: np.ndarray):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    return tensor_pb2.TensorProto(
        dtype=DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": int(d)} for d in array.shape]),
        tensor_content=np.ascontiguousarray(array, dtype="<f4").tobytes(),
    )


class _Base:
    def __init__(self, dataplane: DataPlane):
        self.dp = dataplane
        self.token = dataplane.config.auth_token()

    async def _abort(self, context: grpc.aio.ServicerContext, exc: ServingError, model: Optional[str], counted: bool):
        if not counted:
            self.dp.count(model, "", "grpc", exc.http_status)
        await context.abort(getattr(grpc.StatusCode, exc.grpc_code), exc.message)

    def _check_auth(self, context: grpc.aio.ServicerContext) -> None:
        if self.token is None:
            return
        metadata = dict(context.invocation_metadata() or ())
        scheme, _, given = str(metadata.get("authorization", "")).partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            self.dp.auth_failed("grpc", context.peer(), "no bearer token" if "authorization" not in metadata else "wrong bearer token")
            raise Unauthorized("missing or wrong bearer token: send metadata 'authorization: Bearer <token>'")

    def _spec(self, spec) -> tuple[str, Optional[int], Optional[str]]:
        if not spec.name:
            raise InvalidInput("model_spec.name is empty")
        choice = spec.WhichOneof("version_choice")
        version = spec.version.value if choice == "version" else None
        label = spec.version_label if choice == "version_label" else None
        if version is not None and version <= 0:
            raise InvalidInput(f"model_spec.version must be a positive integer, got {version}")
        return spec.name, version, label


class PredictionService(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):
    async def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        received = time.perf_counter()
        counted = False
        model = request.model_spec.name
        try:
            self._check_auth(context)
            name, version, label = self._spec(request.model_spec)
            counted = True  # admit counts its own rejection
            ticket = self.dp.admit(name, "grpc")
            counted = False
            with ticket:
                if request.model_spec.signature_name not in ("", features.SERVING_SIGNATURE):
                    raise InvalidInput(f"signature_name {shorten(request.model_spec.signature_name)} is not served; use '{features.SERVING_SIGNATURE}'")
                if set(request.inputs) != {features.SERVING_INPUT}:
                    raise InvalidInput(f"the model takes one input '{features.SERVING_INPUT}', got {clip(sorted(request.inputs))}")
                texts = texts_from_tensor(request.inputs[features.SERVING_INPUT])
                wanted = list(request.output_filter) or list(_OUTPUTS)
                unknown = [o for o in wanted if o not in _OUTPUTS]
                if unknown:
                    raise InvalidInput(f"unknown output(s) {clip(unknown)} in output_filter; the model's outputs are {list(_OUTPUTS)}")
                request_id = dict(context.invocation_metadata() or ()).get("x-request-id")
                counted = True
                result = await self.dp.predict(
                    name, texts, protocol="grpc", version=version, label=label, request_id=request_id, received=received,
                    admission=ticket, timeout_s=context.time_remaining(),
                )
        except ServingError as exc:
            await self._abort(context, exc, model, counted)
            raise AssertionError("unreachable")  # context.abort raises
        p = result.prediction
        n, c = p.probabilities.shape
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(protos.model_spec_of(result.model, result.version, features.SERVING_SIGNATURE))
        if features.OUTPUT_PROBABILITIES in wanted:
            response.outputs[features.OUTPUT_PROBABILITIES].CopyFrom(_float_tensor(p.probabilities))
        if features.OUTPUT_LABEL in wanted:
            response.outputs[features.OUTPUT_LABEL].CopyFrom(_string_tensor(p.labels, [n]))
        if features.OUTPUT_CLASSES in wanted:
            response.outputs[features.OUTPUT_CLASSES].CopyFrom(_string_tensor(p.classes * n, [n, c]))
        context.set_trailing_metadata((("x-request-id", result.request_id),))
        return response

    async def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        try:
            self._check_auth(context)
            name, version, label = self._spec(request.model_spec)
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise InvalidInput(f"metadata_field must be ['signature_def'] (the only metadata served), got {clip(fields)}")
            runtime = self.dp.model_metadata(name, version, label)
        except ServingError as exc:
            await self._abort(context, exc, request.model_spec.name, False)
            raise AssertionError("unreachable")
        return protos.metadata_response(runtime)


class ModelService(_Base, model_service_pb2_grpc.ModelServiceServicer):
    async def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):
        try:
            self._check_auth(context)
            name, version, label = self._spec(request.model_spec)
            statuses = self.dp.model_status(name, version, label)
        except ServingError as exc:
            await self._abort(context, exc, request.model_spec.name, False)
            raise AssertionError("unreachable")
        return protos.model_status_response(statuses)


class _Undecodable:
    """What the request deserializer hands on when the bytes are not the method's protobuf."""

    def __init__(self, error: str):
        self.error = error


def _method(servicer_method, request_type, response_type, dataplane: DataPlane) -> grpc.RpcMethodHandler:
    """A unary handler whose undecodable requests get INVALID_ARGUMENT (grpc's default: UNKNOWN)."""

    def deserialize(data: bytes):
        try:
            return request_type.FromString(data)
        except DecodeError as exc:
            return _Undecodable(str(exc))

    async def handle(request, context):
        if isinstance(request, _Undecodable):
            dataplane.count(None, "", "grpc", 400)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a serialized {request_type.DESCRIPTOR.full_name} ({clip(request.error, 100)})",
            )
        return await servicer_method(request, context)

    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=deserialize, response_serializer=response_type.SerializeToString
    )


def create_server(dataplane: DataPlane, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    limit = dataplane.config.limits.max_body_bytes
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", 64 << 20)]
    )
    predictions, models = PredictionService(dataplane), ModelService(dataplane)
    # Registered by hand (not add_*Servicer_to_server) for the decoding check above; methods
    # not listed (Classify, Regress, ...) answer UNIMPLEMENTED, as the stock servicer does.
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "tensorflow.serving.PredictionService",
                {
                    "Predict": _method(predictions.Predict, predict_pb2.PredictRequest, predict_pb2.PredictResponse, dataplane),
                    "GetModelMetadata": _method(
                        predictions.GetModelMetadata,
                        get_model_metadata_pb2.GetModelMetadataRequest,
                        get_model_metadata_pb2.GetModelMetadataResponse,
                        dataplane,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                "tensorflow.serving.ModelService",
                {
                    "GetModelStatus": _method(
                        models.GetModelStatus,
                        get_model_status_pb2.GetModelStatusRequest,
                        get_model_status_pb2.GetModelStatusResponse,
                        dataplane,
                    )
                },
            ),
        )
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC server to {host}:{port}")
    return server, bound
