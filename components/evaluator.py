"""The gate: TFMA's Evaluator with a baseline lookup that needs no TFX Resolver node.

TFX's usual baseline is a ``Resolver`` with ``LatestBlessedModelStrategy``; the open-source
Kubeflow Pipelines v2 backend rejects Resolver nodes. Here the Evaluator's executor itself looks
up the newest version in the model repository (the model in service), stages it as the baseline
Model artifact and lets TFMA compare the candidate against it on the current evaluation split.
With no version in the repository (the very first run) TFX rubber-stamps: change thresholds are
skipped and only the value thresholds gate. This works the same under LocalDagRunner, on
open-source KFP and on Vertex, because nothing is resolved by the orchestrator.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional

import tensorflow_model_analysis as tfma
from absl import logging
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils, proto_utils

from textops import features, model_repository
from textops.components import metrics as metrics_lib

BASELINE_MODEL_DIR_KEY = "baseline_model_dir"
BASELINE_HINT_KEY = "baseline_hint"
_METRICS_MODULE = metrics_lib.__name__


def build_eval_config(
    label_column: str,
    thresholds: Dict[str, float],
    change_tolerance: Optional[float],
    positive_label: Optional[str] = None,
) -> tfma.EvalConfig:
    """EvalConfig: argmax metrics overall and per class, value and no-regression thresholds."""
    unknown = sorted(set(thresholds) - set(metrics_lib.HEADLINE_METRICS))
    if unknown:
        raise ValueError(f"no such gate metric(s) {unknown}; choose from {list(metrics_lib.HEADLINE_METRICS)}")
    config_json = {} if positive_label is None else {"positive_label": positive_label}
    metric_configs = [tfma.MetricConfig(class_name="ExampleCount")]
    for name in metrics_lib.HEADLINE_METRICS:
        per_slice = []
        if name in thresholds:
            threshold = tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": thresholds[name]})
            )
            if change_tolerance is not None:
                threshold.change_threshold.CopyFrom(
                    tfma.GenericChangeThreshold(
                        direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                        absolute={"value": -change_tolerance},
                    )
                )
            # The gate applies to the overall slice; per-class and per-length slices are
            # reported, not gated (a binary "spam" F1 is undefined on the slice of ham texts).
            per_slice = [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]
        metric_configs.append(
            tfma.MetricConfig(
                class_name=metrics_lib.HEADLINE_CLASSES[name].__name__,
                module=_METRICS_MODULE,
                config=json_utils.dumps(config_json) if config_json else "",
                per_slice_thresholds=per_slice,
            )
        )
    metric_configs.append(tfma.MetricConfig(class_name=metrics_lib.TextPerClass.__name__, module=_METRICS_MODULE))
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # The SavedModel's signatures, as serving calls them. Unset, TFMA first tries a
                # Keras-level reload of the model (tf.keras.models.load_model) to guess the type.
                model_type=tfma.TF_GENERIC,
                signature_name=features.EXAMPLE_SIGNATURE,
                label_key=label_column,
                preprocessing_function_names=[features.TRANSFORMED_FEATURES_SIGNATURE],
            )
        ],
        slicing_specs=[
            tfma.SlicingSpec(),
            tfma.SlicingSpec(feature_keys=[label_column]),  # per true class
            tfma.SlicingSpec(feature_keys=[features.TEXT_LENGTH_BUCKET]),  # per text length
        ],
        metrics_specs=[tfma.MetricsSpec(metrics=metric_configs)],
    )


def threshold_key(metric: str) -> str:
    """Execution property (and Kubeflow pipeline parameter) holding a metric's lower bound."""
    return f"min_{metric}"


def apply_threshold_overrides(eval_config: tfma.EvalConfig, overrides: Dict[str, float]) -> tfma.EvalConfig:
    """Sets the lower bounds of gated headline metrics (per-run values from pipeline parameters)."""
    by_class = {cls.__name__: name for name, cls in metrics_lib.HEADLINE_CLASSES.items()}
    seen = set()
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            name = by_class.get(metric.class_name)
            if name in overrides:
                if not metric.per_slice_thresholds:
                    raise ValueError(f"{name} is not gated in this pipeline; set evaluation.thresholds.{name} and recompile")
                for pst in metric.per_slice_thresholds:
                    pst.threshold.value_threshold.lower_bound.value = float(overrides[name])
                seen.add(name)
    unknown = sorted(set(overrides) - seen)
    if unknown:
        raise ValueError(f"no gated metric(s) {unknown} in the eval config")
    return eval_config


class TextOpsEvaluatorSpec(standard_component_specs.EvaluatorSpec):
    PARAMETERS = {
        **standard_component_specs.EvaluatorSpec.PARAMETERS,
        # Per-run lower bounds (pipeline parameters on Kubeflow); unset: those of eval_config.
        **{threshold_key(m): ExecutionParameter(type=float, optional=True) for m in metrics_lib.HEADLINE_METRICS},
        # <repository>/<model_name>: where the model in service lives.
        BASELINE_MODEL_DIR_KEY: ExecutionParameter(type=str),
        # Identifies the model in service when the pipeline was launched (part of the cache key,
        # so a cached evaluation is never reused after a different model was pushed).
        BASELINE_HINT_KEY: ExecutionParameter(type=str, optional=True),
    }


def forget_unrecorded_baseline_id(blessing: types.Artifact) -> None:
    """Drops ``baseline_model_id`` when it names no MLMD artifact (0: the staged baseline)."""
    key = evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
    if blessing.has_custom_property(key) and not blessing.get_int_custom_property(key):
        del blessing.mlmd_artifact.custom_properties[key]


class Executor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator executor, given the newest pushed version as ``baseline_model``."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        overrides = {
            m: exec_properties[threshold_key(m)]
            for m in metrics_lib.HEADLINE_METRICS
            if exec_properties.get(threshold_key(m)) is not None
        }
        if overrides:
            config = tfma.EvalConfig()
            proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY], config)
            exec_properties = {
                **exec_properties,
                standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(
                    apply_threshold_overrides(config, overrides)
                ),
            }
        base = exec_properties[BASELINE_MODEL_DIR_KEY]
        repository, model_name = os.path.split(base.rstrip("/"))
        baseline = model_repository.latest_version(repository, model_name)
        if baseline is None:
            logging.info("No model in service under %s: first push, change thresholds skipped.", base)
            return super().Do(input_dict, output_dict, exec_properties)
        staging = tempfile.mkdtemp(prefix="textops-baseline-")
        try:
            # TFX expects a Model artifact (<uri>/Format-Serving/saved_model.pb); the repository
            # holds bare SavedModels. Link locally, copy from remote storage.
            serving_dir = os.path.join(staging, "Format-Serving")
            if "://" in baseline.path:
                model_repository.copy_tree(baseline.path, serving_dir)
            else:
                os.symlink(os.path.abspath(baseline.path), serving_dir)
            artifact = standard_artifacts.Model()
            artifact.uri = staging
            artifact.set_string_custom_property("textops_version", str(baseline.version))
            artifact.set_string_custom_property("textops_path", baseline.path)
            input_dict = {**input_dict, standard_component_specs.BASELINE_MODEL_KEY: [artifact]}
            logging.info("Baseline (model in service): version %s at %s", baseline.version, baseline.path)
            super().Do(input_dict, output_dict, exec_properties)
            blessing = output_dict[standard_component_specs.BLESSING_KEY][0]
            # TFX recorded the temporary staging URI; record where the baseline really lives.
            blessing.set_string_custom_property(
                evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.path
            )
            blessing.set_string_custom_property("baseline_version", str(baseline.version))
            # TFX records the baseline's MLMD id; this baseline is a staged copy with no MLMD
            # record (id 0), and TFX's Kubeflow v2 entrypoint maps every recorded id back to an
            # artifact name (refactor_model_blessing: KeyError 0). The URI and version above
            # identify the baseline instead.
            forget_unrecorded_baseline_id(blessing)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class Evaluator(base_beam_component.BaseBeamComponent):
    """Evaluator whose baseline is the newest version in the model repository."""

    SPEC_CLASS = TextOpsEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        eval_config: tfma.EvalConfig,
        baseline_model_dir: str,
        baseline_hint: Optional[str] = None,
        schema: Optional[types.BaseChannel] = None,
        example_splits: Optional[List[str]] = None,
        thresholds: Optional[Dict[str, Any]] = None,
    ):
        """``thresholds``: per-run lower bounds (floats or Kubeflow RuntimeParameters) of gated metrics."""
        spec = TextOpsEvaluatorSpec(
            examples=examples,
            model=model,
            eval_config=eval_config,
            schema=schema,
            example_splits=json_utils.dumps(example_splits),
            fairness_indicator_thresholds=json_utils.dumps(None),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            baseline_model_dir=baseline_model_dir,
            baseline_hint=baseline_hint or "",
            **{threshold_key(m): v for m, v in (thresholds or {}).items()},
        )
        super().__init__(spec=spec)


CANDIDATE_NAME = "candidate"
BASELINE_NAME = "baseline"


def load_evaluation(evaluation_uri: str) -> dict[str, Any]:
    """Overall-slice metric values per model ('candidate', 'baseline') and the validation result."""
    import tensorflow_model_analysis as tfma

    values: dict[str, dict[str, float]] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue  # overall slice only here; the model-analysis report shows the others
        for kv in slice_metrics.metric_keys_and_values:
            if kv.key.is_diff:
                continue
            model = BASELINE_NAME if kv.key.model_name == BASELINE_NAME else CANDIDATE_NAME
            if kv.value.HasField("double_value"):
                values.setdefault(model, {})[kv.key.name] = kv.value.double_value.value
    validation = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            failures.append(
                {
                    "metric": failure.metric_key.name,
                    "is_diff": failure.metric_key.is_diff,
                    "value": failure.metric_value.double_value.value
                    if failure.metric_value.HasField("double_value")
                    else None,
                    "message": failure.message,
                }
            )
    return {"values": values, "validation_ok": validation.validation_ok, "failures": failures}
