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
from typing import Any, Dict

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs


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


class JsonLinesExecutor(BaseExampleGenExecutor):
    """ExampleGen executor for JSON Lines (``.jsonl``, ``.jsonl.gz``, ``.ndjson``): one object a line."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _JsonLinesToExample


class ParquetExecutor(BaseExampleGenExecutor):
    """ExampleGen executor for Parquet files."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ParquetToExample


EXECUTORS = {"jsonl": JsonLinesExecutor, "parquet": ParquetExecutor}  # data.format -> executor
