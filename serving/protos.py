"""TF Serving protos shared by the gRPC adapter and the REST status/metadata routes."""

from __future__ import annotations

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from .repository import VersionStatus
from .runtime import ModelRuntime

_STATE = get_model_status_pb2.ModelVersionStatus.State
_UNKNOWN = (
    get_model_status_pb2.ModelVersionStatus.DESCRIPTOR.fields_by_name["status"]
    .message_type.fields_by_name["error_code"].enum_type.values_by_name["UNKNOWN"].number
)


def model_status_response(statuses: list[VersionStatus]) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for s in statuses:
        entry = response.model_version_status.add()
        entry.version = s.version
        entry.state = _STATE.Value(s.state)
        if s.error:
            entry.status.error_code = _UNKNOWN  # TF Serving reports a failed load as END + error status
            entry.status.error_message = s.error
    return response


def model_status_json(statuses: list[VersionStatus]) -> dict:
    """TF Serving's REST body for ``GET /v1/models/{name}``."""
    return {
        "model_version_status": [
            {
                "version": str(s.version),
                "state": s.state,
                "status": {"error_code": "UNKNOWN" if s.error else "OK", "error_message": s.error},
            }
            for s in statuses
        ]
    }


def model_spec_of(name: str, version: int, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    spec.version.value = version
    return spec


def signature_def_map(runtime: ModelRuntime) -> get_model_metadata_pb2.SignatureDefMap:
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for name, sig in runtime.signature_defs.items():
        sig_map.signature_def[name].CopyFrom(sig)
    return sig_map


def metadata_response(runtime: ModelRuntime) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.CopyFrom(model_spec_of(runtime.name, runtime.version))
    response.metadata["signature_def"].Pack(signature_def_map(runtime))
    return response


def metadata_json(runtime: ModelRuntime) -> dict:
    """TF Serving's REST metadata: ``{"model_spec": ..., "metadata": {"signature_def": {...}}}``."""
    return {
        "model_spec": {"name": runtime.name, "signature_name": "", "version": str(runtime.version)},
        "metadata": {
            "signature_def": json_format.MessageToDict(signature_def_map(runtime), preserving_proto_field_name=True)
        },
    }

