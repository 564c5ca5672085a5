"""Infra validation without Docker: the candidate must load and answer in our serving runtime.

TFX's InfraValidator starts TF Serving in Docker or Kubernetes; neither is available everywhere
the pipeline runs. This component loads the candidate in the project's own serving runtime
(``textops.serving.runtime``, the code that serves it in production), sends it real requests
(texts from the evaluation split plus edge cases: empty, long, non-ASCII), checks every answer,
and writes TF Serving warmup records (``assets.extra/tf_serving_warmup_requests``) into a copy of
the model. The Pusher publishes that stamped copy, so TF Serving, KServe and our endpoint warm
it up before serving. A model that fails is not pushed (InfraBlessing ``blessed`` = 0).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils, path_utils

from textops import features, model_repository

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
TEXT_COLUMN_KEY = "text_column"
MODEL_NAME_KEY = "model_name"
NUM_REQUESTS_KEY = "num_requests"
SOURCE_MODEL_URI_KEY = "source_model_uri"
EDGE_CASES = ("", "a", "!!!", "我的包裹还没有到", "Ünïcödé ½ 🙂", "word " * 500)


def sample_texts(examples: List[types.Artifact], text_column: str, n: int) -> list[bytes]:
    """Up to ``n`` texts from the eval split of ExampleGen's output, plus edge cases."""
    texts: list[bytes] = []
    uri = artifact_utils.get_split_uri(examples, "eval")
    files = tf.io.gfile.glob(os.path.join(uri, "*"))
    if files:
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(n)
        for record in dataset:
            parsed = tf.io.parse_single_example(record, {text_column: tf.io.VarLenFeature(tf.string)})
            values = parsed[text_column].values.numpy()
            if values.size:
                texts.append(bytes(values[0]))
    return texts + [t.encode("utf-8") for t in EDGE_CASES]


def write_warmup_records(path: str, model_name: str, texts: list[bytes], batch_sizes=(1, 8)) -> int:
    """TF Serving warmup file: PredictionLog records of serving_default requests."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    tf.io.gfile.makedirs(os.path.dirname(path))
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for size in batch_sizes:
            for start in range(0, min(len(texts), 4 * size), size):
                batch = texts[start : start + size]
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=features.SERVING_SIGNATURE)
                )
                request.inputs[features.SERVING_INPUT].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
                count += 1
    return count


def check_answers(texts: list[bytes], probabilities: np.ndarray, labels: list[str], classes: list[str]) -> list[str]:
    problems = []
    if probabilities.shape != (len(texts), len(classes)):
        problems.append(f"probabilities have shape {probabilities.shape}, expected {(len(texts), len(classes))}")
        return problems
    if not np.all(np.isfinite(probabilities)):
        problems.append("non-finite probabilities")
    sums = probabilities.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        problems.append(f"probabilities do not sum to 1 (min {sums.min():.4f}, max {sums.max():.4f})")
    unknown = sorted({label for label in labels if label not in classes})
    if unknown:
        problems.append(f"predicted labels {unknown} are not among the classes {classes}")
    return problems


class InfraValidatorSpec(ComponentSpec):
    PARAMETERS = {
        TEXT_COLUMN_KEY: ExecutionParameter(type=str),
        MODEL_NAME_KEY: ExecutionParameter(type=str),
        NUM_REQUESTS_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        standard_component_specs.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {standard_component_specs.BLESSING_KEY: ChannelParameter(type=standard_artifacts.InfraBlessing)}


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        from textops.serving.runtime import LoadError, ModelRuntime

        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
        blessing.set_string_custom_property(SOURCE_MODEL_URI_KEY, model.uri)
        source = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        stamped = path_utils.stamped_model_path(blessing.uri)
        texts = sample_texts(
            input_dict[standard_component_specs.EXAMPLES_KEY],
            exec_properties[TEXT_COLUMN_KEY],
            int(exec_properties[NUM_REQUESTS_KEY]),
        )
        problems: list[str] = []
        try:
            model_repository.copy_tree(source, stamped)
            records = write_warmup_records(os.path.join(stamped, WARMUP_FILE), exec_properties[MODEL_NAME_KEY], texts)
            runtime = ModelRuntime(exec_properties[MODEL_NAME_KEY], 0, stamped).load()
            runtime.warmup()
            for start in range(0, len(texts), 16):
                batch = texts[start : start + 16]
                prediction = runtime.predict(batch)
                problems += check_answers(batch, prediction.probabilities, prediction.labels, prediction.classes)
            logging.info("Infra validation: %d requests answered, %d warmup records written.", len(texts), records)
        except (LoadError, tf.errors.OpError, ValueError, OSError) as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
        if problems:
            for p in problems:
                logging.error("Infra validation failed: %s", p)
            blessing.set_int_custom_property("blessed", 0)
            blessing.set_int_custom_property("has_model", 0)
            blessing.set_string_custom_property("reason", "; ".join(problems)[:2000])
            io_utils.write_string_file(os.path.join(blessing.uri, "INFRA_NOT_BLESSED"), "\n".join(problems))
            if tf.io.gfile.exists(stamped):
                tf.io.gfile.rmtree(stamped)
            return
        blessing.set_int_custom_property("blessed", 1)
        blessing.set_int_custom_property("has_model", 1)
        io_utils.write_string_file(os.path.join(blessing.uri, "INFRA_BLESSED"), "")


class InfraValidator(base_component.BaseComponent):
    """Loads the candidate in the serving runtime, checks real answers, stamps warmup records."""

    SPEC_CLASS = InfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel, text_column: str, model_name: str,
                 num_requests: int = 32):
        super().__init__(
            spec=InfraValidatorSpec(
                model=model,
                examples=examples,
                text_column=text_column,
                model_name=model_name,
                num_requests=num_requests,
                blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            )
        )
