"""Pusher: publishes a blessed model to ``<repository>/<model_name>/<version>/`` atomically.

TFX's filesystem Pusher copies straight into the final version directory, so a run killed
mid-push leaves a partial version that a model server may try to load. This executor publishes
through ``model_repository.publish_version`` (staging directory + rename) instead. It keeps
TFX's contract otherwise: it pushes only a blessed model and records ``pushed``,
``pushed_destination`` and ``pushed_version`` on the PushedModel artifact.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.pusher import component as tfx_pusher_component
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from textops import model_repository

PUSH_RECORD_FILE = "push.json"
ALREADY_IN_SERVICE_KEY = "already_in_service"


def _source_model(input_dict: Dict[str, List[types.Artifact]]) -> tuple[str, int]:
    """The Trainer's model this push comes from (directly, or through the InfraValidator's copy)."""
    models = input_dict.get(standard_component_specs.MODEL_KEY)
    if models:
        return models[0].uri, models[0].id
    infra = artifact_utils.get_single_instance(input_dict[standard_component_specs.INFRA_BLESSING_KEY])
    return infra.get_string_custom_property("source_model_uri"), 0


class Executor(tfx_pusher_executor.Executor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("textops' Pusher publishes to a filesystem model repository only")
        repository, model_name = os.path.split(destination.filesystem.base_directory.rstrip("/"))
        source_uri, source_id = _source_model(input_dict)
        record = {
            "model_name": model_name,
            "source_model_uri": source_uri,
            "source_model_id": source_id,
            "pushed_at": time.time(),
        }
        blessing = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY)
        if blessing:
            record["blessing_uri"] = blessing[0].uri
        in_service = model_repository.latest_version(repository, model_name)
        if in_service is not None and (
            model_repository.read_push_record(in_service.path).get("source_model_uri") == source_uri
        ):
            # The candidate *is* the model in service (a rerun whose Trainer was cached): a
            # second copy under a new version number would only churn the servers.
            logging.info("Model %s is already in service as version %d; not pushing it again.",
                         source_uri, in_service.version)
            model_push.set_int_custom_property(ALREADY_IN_SERVICE_KEY, 1)
            self._MarkPushed(model_push, pushed_destination=in_service.path, pushed_version=str(in_service.version))
            return
        version = model_repository.publish_version(self.GetModelPath(input_dict), repository, model_name, record)
        tf.io.gfile.makedirs(model_push.uri)
        with tf.io.gfile.GFile(os.path.join(model_push.uri, PUSH_RECORD_FILE), "w") as f:
            json.dump({**record, "version": version.version, "path": version.path}, f, indent=2)
        self._MarkPushed(model_push, pushed_destination=version.path, pushed_version=str(version.version))
        logging.info("Model pushed as %s version %d at %s.", model_name, version.version, version.path)


class Pusher(tfx_pusher_component.Pusher):
    """TFX's Pusher with the atomic publishing executor."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
