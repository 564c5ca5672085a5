"""ExampleGen executors for JSON Lines and Parquet, the formats most corpora are published in.

Both are TFX file-based ExampleGen executors (``BaseExampleGenExecutor``), so splits, hash
buckets, ``{SPAN}`` patterns, caching and the Kubeflow driver work as for CSV. Records become
tf.Examples the way CsvExampleGen types a column: integers → int64, floats → float, strings →
bytes (UTF-8), lists element-wise. Unlike TFX's ``dict_to_example`` a falsy value (label ``0``,
an empty string) is kept as a value, not turned into a missing feature; only ``null`` is missing.

JSON Lines are read with Beam's text source (gzip by the file name) and parsed by the standard
library's JSON parser, one object per line; a line that is not a JSON object fails the run
naming the file pattern and the line's start (``textops run`` checks every line before the
pipeline starts, with file and line number). Parquet is read with Beam's ``ReadFromParquet``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils


def _feature(value: Any) -> tf.train.Feature:
    values = value if isinstance(value, (list, tuple)) else [value]
    values = [v.item() if hasattr(v, "item") else v for v in values if v is not None]
    if not values:
        return tf.train.Feature()
    if all(isinstance(v, (bool, int)) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, (bool, int, float)) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    encoded = []
    for v in values:
        if isinstance(v, bytes):
            encoded.append(v)
        elif isinstance(v, str):
            encoded.append(v.encode("utf-8"))
        else:
            raise ValueError(f"a value of type {type(v).__name__} ({v!r:.80}) cannot be a tf.Example feature")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))


def record_to_example(record: Dict[str, Any]) -> tf.train.Example:
    """One record (a JSON object, a Parquet row) as a tf.Example; ``None`` is a missing value."""
    return tf.train.Example(features=tf.train.Features(feature={str(k): _feature(v) for k, v in record.items()}))


def _parse_json_line(line: str, pattern: str) -> Dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{pattern}: a line is not JSON ({exc.msg}): {line[:120]!r}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{pattern}: a line is JSON but not an object ({{...}}): {line[:120]!r}")
    return record


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _JsonLinesToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):  # noqa: N802
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    return (
        pipeline
        | "ReadJsonLines" >> beam.io.ReadFromText(pattern)
        | "SkipBlank" >> beam.Filter(lambda line: line.strip() != "")
        | "Parse" >> beam.Map(_parse_json_line, pattern)
        | "ToTFExample" >> beam.Map(record_to_example)
    )


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ParquetToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):  # noqa: N802
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    return pipeline | "ReadParquet" >> beam.io.ReadFromParquet(pattern) | "ToTFExample" >> beam.Map(record_to_example)


# -- class names for integer labels (data.label_names) -----------------------------------------


def label_names_config(label_column: str, names: list[str]) -> example_gen_pb2.CustomConfig:
    """ExampleGen's custom_config carrying the label column and the class names."""
    struct = struct_pb2.Struct()
    struct.update({"label_column": label_column, "label_names": list(names)})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def _label_names(exec_properties: Dict[str, Any]) -> Optional[tuple[str, list[str]]]:
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return None
    config = example_gen_pb2.CustomConfig()
    if isinstance(raw, str):
        proto_utils.json_to_proto(raw, config)
    else:
        config.CopyFrom(raw)
    struct = struct_pb2.Struct()
    if not config.custom_config.Unpack(struct):
        return None
    values = json_format.MessageToDict(struct)
    return values["label_column"], list(values["label_names"])


def name_labels(example: tf.train.Example, column: str, names: list[str]) -> tf.train.Example:
    """Replaces an integer label (or a string of digits) with its class name."""
    feature = example.features.feature[column]
    kind = feature.WhichOneof("kind")
    raw = list(feature.int64_list.value) if kind == "int64_list" else list(getattr(feature, kind).value) if kind else []
    named = []
    for value in raw:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if not (text.isdigit() and int(text) < len(names)):
            raise ValueError(
                f"label {text!r} has no name: data.label_names has {len(names)} names (labels 0..{len(names) - 1})"
            )
        named.append(names[int(text)].encode("utf-8"))
    feature.Clear()
    feature.bytes_list.value.extend(named)
    return example


class _NamesLabels:
    """Mixin for an ExampleGen executor: integer labels become class names when the
    component's custom_config carries ``label_names`` (set from ``data.label_names``)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        read = super().GetInputSourceToExamplePTransform()  # type: ignore[misc]

        @beam.ptransform_fn
        def _ReadAndName(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):  # noqa: N802
            examples = pipeline | "Read" >> read(exec_properties, split_pattern)
            names = _label_names(exec_properties)
            if names is None:
                return examples
            return examples | "NameLabels" >> beam.Map(name_labels, *names)

        return _ReadAndName


class _JsonLinesReader(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _JsonLinesToExample


class _ParquetReader(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ParquetToExample


class JsonLinesExecutor(_NamesLabels, _JsonLinesReader):
    """ExampleGen executor for JSON Lines (``.jsonl``, ``.jsonl.gz``, ``.ndjson``): one object a line."""


class ParquetExecutor(_NamesLabels, _ParquetReader):
    """ExampleGen executor for Parquet files."""


class CsvExecutor(_NamesLabels, csv_executor.Executor):
    """TFX's CSV ExampleGen executor, with class names for integer labels."""


EXECUTORS = {"jsonl": JsonLinesExecutor, "parquet": ParquetExecutor}  # data.format -> executor
NAMING_EXECUTORS = {"csv": CsvExecutor, **EXECUTORS}  # with data.label_names
