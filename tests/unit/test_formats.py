"""JSON Lines and Parquet input: discovery, the preflight (file and line), and ExampleGen's
executors producing the tf.Examples CsvExampleGen produces for the same rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.support.data import write_csv
from textops.data import discover, preflight
from textops.errors import DataValidationError
from textops.settings import DataSettings

ROWS = [('say "hi", then \\ bye\nnext line', "greeting"), ("日本語のテキスト", "other"), ("3 numbers 4", "greeting")]


def write_jsonl(path: Path, rows, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in rows)
    (gzip.open if gz else open)(path, "wt", encoding="utf-8").write(text)
    return path


def write_parquet(path: Path, rows, row_group_size=2):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"text": [t for t, _ in rows], "label": [l for _, l in rows]})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize("name, fmt", [("train.jsonl", "jsonl"), ("train.jsonl.gz", "jsonl"), ("train.parquet", "parquet")])
def test_three_formats_are_discovered_with_their_splits(tmp_path, name, fmt):
    writer = write_parquet if fmt == "parquet" else (lambda p, r: write_jsonl(p, r, gz=p.name.endswith(".gz")))
    writer(tmp_path / name, ROWS)
    writer(tmp_path / name.replace("train", "test"), ROWS)
    src = discover(str(tmp_path), DataSettings())
    assert src.format == fmt and src.train_pattern == name
    preflight(src, DataSettings())


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"text": "ok", "label": "a"}\n{"text": "broken, "label": "b"}\n', r"train.jsonl: line 2, column \d+: not JSON"),
        ('{"text": "ok", "label": "a"}\n["a", "b"]\n', r"line 2: a JSON list, not an object"),
        ('{"text": "ok", "label": "a"}\n{"txt": "x", "label": "b"}\n', r"line 2: no 'text'"),
        ('{"text": "ok", "label": "a"}\n{"text": null, "label": "b"}\n', r"line 2: 'text' is NoneType"),
        ("\n\n", r"has no records"),
        ('{"text": "ok", "label": "a"}\n{"text": "x", "label": " "}\n', r"line 2: the label \('label'\) is empty"),
        ('\ufeff{"text": "ok", "label": "a"}\n', r"train.jsonl starts with a UTF-8 byte-order mark"),
    ],
)
def test_bad_json_lines_are_named_by_file_and_line(tmp_path, content, fragment):
    (tmp_path / "train.jsonl").write_text(content)
    write_jsonl(tmp_path / "test.jsonl", ROWS)
    with pytest.raises(DataValidationError, match=fragment):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())


def test_truncated_gzip_is_named(tmp_path):
    write_jsonl(tmp_path / "full.jsonl.gz", ROWS * 50, gz=True)
    data = (tmp_path / "full.jsonl.gz").read_bytes()
    (tmp_path / "train.jsonl.gz").write_bytes(data[: len(data) // 2])
    write_jsonl(tmp_path / "test.jsonl.gz", ROWS, gz=True)
    (tmp_path / "full.jsonl.gz").unlink()
    # EOFError escaped the check before, and click turned it into a bare "Aborted!" (exit 1).
    with pytest.raises(DataValidationError, match=r"train.jsonl.gz: the gzip stream is truncated or damaged"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())


def test_label_types_must_agree_within_and_across_files(tmp_path):
    # ExampleGen writes an int label as int64 and a string one as bytes: TFXIO failed decoding
    # whichever came second (a traceback from the Transform, exit 1), or the gate refused the test split.
    rows = [{"text": f"t{i}", "label": i % 2 if i % 3 else "x"} for i in range(9)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_jsonl(tmp_path / "test.jsonl", ROWS)
    with pytest.raises(DataValidationError, match=r"holds 6 integers \(the first at line 2: 1\) and 3 strings \(the first at line 1: 'x'\)"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(4)))
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": "t", "label": "1"}) + "\n")
    with pytest.raises(DataValidationError, match=r"test.jsonl: the label '1' is a string, but .*train.jsonl \(0\) is an integer"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": 5, "label": 1}) + "\n")
    with pytest.raises(DataValidationError, match=r"test.jsonl: line 1: 'text' is int 5; it must be a string"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())


def test_parquet_label_types_must_agree_across_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [0, 1, 0]}), tmp_path / "train.parquet")
    pq.write_table(pa.table({"text": ["d"], "label": ["1"]}), tmp_path / "test.parquet")
    with pytest.raises(DataValidationError, match=r"test.parquet: the label '1' is a string, but .*train.parquet \(0\) is an integer"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())
    pq.write_table(pa.table({"text": ["d"], "label": [1]}), tmp_path / "test.parquet")
    preflight(discover(str(tmp_path), DataSettings()), DataSettings())


def test_bad_parquet_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["x"], "label": ["a"]}), tmp_path / "train.parquet")
    write_parquet(tmp_path / "test.parquet", ROWS)
    with pytest.raises(DataValidationError, match=r"train.parquet: column\(s\) 'text' not in the file's columns \['body', 'label'\]"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())
    pq.write_table(pa.table({"text": ["x", None], "label": ["a", "b"]}), tmp_path / "train.parquet", row_group_size=1)
    with pytest.raises(DataValidationError, match=r"row group 1: 1 null value\(s\) in 'text'"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())
    pq.write_table(pa.table({"text": ["x", "y", "z"], "label": ["a", "", "b"]}), tmp_path / "train.parquet")
    with pytest.raises(DataValidationError, match=r"row group 0: 1 empty label\(s\) in 'label'"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())
    (tmp_path / "train.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataValidationError, match="not a readable Parquet file"):
        preflight(discover(str(tmp_path), DataSettings()), DataSettings())


def _examples(executor_cls, tmp_path, pattern):
    import apache_beam as beam
    import tensorflow as tf

    target = tmp_path / f"out-{executor_cls.__module__.replace('.', '-')}-{executor_cls.__name__}"
    transform = executor_cls().GetInputSourceToExamplePTransform()
    with beam.Pipeline() as p:
        _ = (
            p
            | transform({"input_base": str(tmp_path)}, pattern)
            | beam.Map(lambda e: e.SerializeToString())
            | beam.io.WriteToTFRecord(str(target), file_name_suffix=".tfrecord")
        )
    parsed = [tf.train.Example.FromString(r.numpy()) for f in tmp_path.glob(f"{target.name}*") for r in tf.data.TFRecordDataset(str(f))]
    return sorted(
        repr(sorted((k, f.WhichOneof("kind"), list(getattr(f, f.WhichOneof("kind")).value)) for k, f in e.features.feature.items()))
        for e in parsed
    )


def test_json_lines_and_parquet_make_the_examples_csv_makes(tmp_path):
    from tfx.components.example_gen.csv_example_gen.executor import Executor as CsvExecutor

    from textops.components.example_gen import JsonLinesExecutor, ParquetExecutor

    rows = [(t, l) for t, l in ROWS] + [("zero label", "0")]
    write_csv(tmp_path / "data.csv", rows)
    write_jsonl(tmp_path / "data.jsonl.gz", rows, gz=True)
    write_parquet(tmp_path / "data.parquet", rows)
    csv_examples = _examples(CsvExecutor, tmp_path, "data.csv")
    assert len(csv_examples) == 4
    assert _examples(JsonLinesExecutor, tmp_path, "data.jsonl.gz") == csv_examples
    assert _examples(ParquetExecutor, tmp_path, "data.parquet") == csv_examples


def test_integer_labels_including_zero_are_kept():
    from textops.components.example_gen import record_to_example

    example = record_to_example({"text": "", "label": 0, "score": 0.5, "tags": ["a", "b"], "gone": None})
    features = example.features.feature
    assert list(features["label"].int64_list.value) == [0]
    assert list(features["text"].bytes_list.value) == [b""]
    assert list(features["score"].float_list.value) == [0.5]
    assert list(features["tags"].bytes_list.value) == [b"a", b"b"]
    assert features["gone"].WhichOneof("kind") is None
