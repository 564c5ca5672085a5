"""Schema inference and the data gate that stops a run before training.

TFX's ExampleValidator records anomalies but lets the components after it run. Here:

- ``SchemaGen`` infers the schema from the *train* split only (so the eval split is validated
  against it: a label that never occurs in training is an anomaly) and applies the text
  contract: the text column has no value domain (free text would otherwise get one on small
  data) and text and label must be present in every example.
- ``ExampleValidator`` validates every split against the schema, checks the data contract
  (columns exist, text is a string, nothing missing, every split has examples, at least two
  labels) and raises ``DataValidationError`` naming each problem. Transform depends on it, so a
  failed gate stops the run before Transform and Trainer; nothing is trained or pushed.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx import types
from tfx.components.example_validator import executor as tfx_example_validator_executor
from tfx.components.schema_gen import executor as tfx_schema_gen_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils, json_utils

from textops.data import too_many_classes
from textops.errors import DataValidationError

TEXT_COLUMN_KEY = "text_column"
LABEL_COLUMN_KEY = "label_column"
FAIL_ON_ANOMALIES_KEY = "fail_on_anomalies"
MAX_CLASSES_KEY = "max_classes"

_TYPE_NAMES = {
    statistics_pb2.FeatureNameStatistics.INT: "integer",
    statistics_pb2.FeatureNameStatistics.FLOAT: "float",
    statistics_pb2.FeatureNameStatistics.STRING: "string",
    statistics_pb2.FeatureNameStatistics.BYTES: "bytes",
    statistics_pb2.FeatureNameStatistics.STRUCT: "struct",
}


# -- pure functions (unit-tested without TFX) ------------------------------------------------


def _feature_stats(stats: statistics_pb2.DatasetFeatureStatistics, name: str):
    for f in stats.features:
        if (f.path.step and f.path.step[0] == name and len(f.path.step) == 1) or f.name == name:
            return f
    return None


def _common(feature: statistics_pb2.FeatureNameStatistics):
    kind = feature.WhichOneof("stats")
    if kind == "num_stats":
        return feature.num_stats.common_stats
    if kind == "string_stats":
        return feature.string_stats.common_stats
    if kind == "bytes_stats":
        return feature.bytes_stats.common_stats
    return None


def _empty_values(common: statistics_pb2.CommonStatistics) -> int:
    """Examples whose feature is present with no value (how CsvExampleGen writes an empty field;
    TFDV does not count them as missing). Exact for a feature of at most one value an example (a
    label); at least 1 when some example of a multi-valued feature has none."""
    if common.min_num_values > 0 or common.max_num_values < 1:  # none empty; or no value counts at all
        return 0
    if common.max_num_values <= 1:
        return int(common.num_non_missing - common.tot_num_values)
    return 1


def _column_names(stats: statistics_pb2.DatasetFeatureStatistics) -> list[str]:
    return sorted(f.path.step[0] if f.path.step else f.name for f in stats.features)


def check_contract(
    stats_by_split: Dict[str, statistics_pb2.DatasetFeatureStatistics],
    text_column: str,
    label_column: str,
    max_classes: Optional[int] = None,
) -> list[str]:
    """Problems with the data that no schema inference can catch, one message each.
    ``max_classes``: ``data.max_classes``, checked here for data the preflight could not read
    (remote files, TFRecords)."""
    problems: list[str] = []
    for split, stats in sorted(stats_by_split.items()):
        if stats.num_examples == 0:
            problems.append(f"split '{split}' has no examples (is the input file empty or only a header?)")
            continue
        columns = _column_names(stats)
        for role, column in (("text", text_column), ("label", label_column)):
            feature = _feature_stats(stats, column)
            if feature is None:
                problems.append(
                    f"split '{split}': the {role} column '{column}' is missing; columns found: "
                    f"{', '.join(columns) or 'none'}. Set data.{role}_column to the right column."
                )
                continue
            if role == "text" and feature.type not in (
                statistics_pb2.FeatureNameStatistics.STRING,
                statistics_pb2.FeatureNameStatistics.BYTES,
            ):
                problems.append(
                    f"split '{split}': the text column '{column}' holds {_TYPE_NAMES.get(feature.type, 'non-string')} "
                    f"values, not text. Point data.text_column at the column with the texts."
                )
            if role == "label" and feature.type == statistics_pb2.FeatureNameStatistics.FLOAT:
                problems.append(
                    f"split '{split}': the label column '{column}' holds floating-point values; "
                    "a classifier needs class names or integer class ids"
                )
            common = _common(feature)
            absent = int(common.num_missing) if common is not None else 0
            if role == "label" and common is not None:
                absent += _empty_values(common)  # a CSV's empty field: present, with no value
            if absent:
                problems.append(
                    f"split '{split}': {absent} of {stats.num_examples} examples have an "
                    f"empty or missing {role} ('{column}'); fix or drop those rows"
                )
        if split == "train":
            label = _feature_stats(stats, label_column)
            if label is not None and label.WhichOneof("stats") == "string_stats":
                if label.string_stats.unique < 2:
                    problems.append(
                        f"split 'train': the label column '{label_column}' has "
                        f"{label.string_stats.unique} distinct value(s); a classifier needs at least 2"
                    )
                elif max_classes is not None and label.string_stats.unique > max_classes:
                    problems.append(
                        too_many_classes(f"split 'train': the label column '{label_column}'", label.string_stats.unique, max_classes)
                    )
    return problems


def describe_anomalies(split: str, anomalies: anomalies_pb2.Anomalies) -> list[str]:
    out = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        descriptions = [r.description for r in info.reason] or [info.description]
        out.append(f"split '{split}', column '{feature}': {info.short_description}: {'; '.join(descriptions)}")
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        out.append(f"split '{split}': {info.short_description}: {info.description}")
    return out


def apply_text_contract(schema: schema_pb2.Schema, text_column: str, label_column: str) -> schema_pb2.Schema:
    """Free text has no value domain; text and label are required in every example."""
    for feature in schema.feature:
        if feature.name == text_column:
            domain_name = feature.domain if feature.HasField("domain") else None
            for field in ("domain", "string_domain"):
                if feature.HasField(field):
                    feature.ClearField(field)
            if domain_name and not any(
                f.HasField("domain") and f.domain == domain_name for f in schema.feature
            ):
                kept = [d for d in schema.string_domain if d.name != domain_name]
                del schema.string_domain[:]
                schema.string_domain.extend(kept)
            feature.presence.min_fraction = 1.0
            feature.presence.min_count = 1
        elif feature.name == label_column:
            feature.presence.min_fraction = 1.0
            feature.presence.min_count = 1
    return schema


# -- TFX components --------------------------------------------------------------------------


class _SchemaGenExecutor(tfx_schema_gen_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        path = os.path.join(
            artifact_utils.get_single_uri(output_dict[standard_component_specs.SCHEMA_KEY]),
            tfx_schema_gen_executor.DEFAULT_FILE_NAME,
        )
        schema = io_utils.SchemaReader().read(path)
        apply_text_contract(schema, exec_properties[TEXT_COLUMN_KEY], exec_properties[LABEL_COLUMN_KEY])
        io_utils.write_pbtxt_file(path, schema)
        logging.info("Applied the text contract to the schema at %s.", path)


class TextSchemaGenSpec(standard_component_specs.SchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.SchemaGenSpec.PARAMETERS,
        TEXT_COLUMN_KEY: ExecutionParameter(type=str),
        LABEL_COLUMN_KEY: ExecutionParameter(type=str),
    }


class SchemaGen(base_component.BaseComponent):
    """SchemaGen on the train split with the text contract applied."""

    SPEC_CLASS = TextSchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(_SchemaGenExecutor)

    def __init__(self, statistics: types.BaseChannel, text_column: str, label_column: str):
        super().__init__(
            spec=TextSchemaGenSpec(
                statistics=statistics,
                infer_feature_shape=1,
                exclude_splits=json_utils.dumps(["eval"]),
                schema=types.Channel(type=standard_artifacts.Schema),
                text_column=text_column,
                label_column=label_column,
            )
        )


class _GateExecutor(tfx_example_validator_executor.Executor):
    def _Validate(self, inputs: Dict[str, Any], outputs: Dict[str, Any]) -> anomalies_pb2.Anomalies:
        anomalies = super()._Validate(inputs, outputs)
        self._seen.append((inputs[standard_component_specs.STATISTICS_KEY], anomalies))
        return anomalies

    def Do(self, input_dict, output_dict, exec_properties):
        self._seen: list = []
        result = super().Do(input_dict, output_dict, exec_properties)
        stats_artifact = artifact_utils.get_single_instance(input_dict[standard_component_specs.STATISTICS_KEY])
        splits = [
            s
            for s in artifact_utils.decode_split_names(stats_artifact.split_names)
            if s not in (json_utils.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY, "null")) or [])
        ]
        problems: list[str] = []
        stats_by_split = {}
        for split, (stats, anomalies) in zip(splits, self._seen):
            stats_by_split[split] = stats.datasets[0] if stats.datasets else statistics_pb2.DatasetFeatureStatistics()
            problems.extend(describe_anomalies(split, anomalies))
        contract = check_contract(
            stats_by_split,
            exec_properties[TEXT_COLUMN_KEY],
            exec_properties[LABEL_COLUMN_KEY],
            exec_properties.get(MAX_CLASSES_KEY),
        )
        problems = contract + [p for p in problems if p not in contract]
        if problems:
            for p in problems:
                logging.error("Data problem: %s", p)
            if exec_properties.get(FAIL_ON_ANOMALIES_KEY, 1):
                raise DataValidationError(problems, where="data validation (ExampleValidator)")
        return result


class TextExampleValidatorSpec(standard_component_specs.ExampleValidatorSpec):
    PARAMETERS = {
        **standard_component_specs.ExampleValidatorSpec.PARAMETERS,
        TEXT_COLUMN_KEY: ExecutionParameter(type=str),
        LABEL_COLUMN_KEY: ExecutionParameter(type=str),
        FAIL_ON_ANOMALIES_KEY: ExecutionParameter(type=int),
        MAX_CLASSES_KEY: ExecutionParameter(type=int, optional=True),
    }


class ExampleValidator(base_component.BaseComponent):
    """ExampleValidator that fails the run on anomalies or contract violations."""

    SPEC_CLASS = TextExampleValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(_GateExecutor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        schema: types.BaseChannel,
        text_column: str,
        label_column: str,
        fail_on_anomalies: bool = True,
        exclude_splits: Optional[List[str]] = None,
        max_classes: Optional[int] = None,
    ):
        super().__init__(
            spec=TextExampleValidatorSpec(
                statistics=statistics,
                schema=schema,
                exclude_splits=json_utils.dumps(exclude_splits or []),
                anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
                text_column=text_column,
                label_column=label_column,
                fail_on_anomalies=int(fail_on_anomalies),
                max_classes=max_classes,
            )
        )
