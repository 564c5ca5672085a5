"""Finding the input data and checking it before a pipeline starts.

``--data`` may be:
- a directory with ``train.csv`` and ``test.csv`` (or ``eval.csv`` / ``validation.csv``):
  the given split is kept;
- a directory of other ``*.csv`` files, or a single CSV file: split by hash buckets;
- the same with TFRecord files of tf.Example (``*.tfrecord``, ``*.tfrecord.gz``).

- a directory of span directories (``span-1/``, ``span-2/``, ... each with train.csv and
  test.csv; the prefix is ``data.spans.prefix``): ExampleGen reads them through ``{SPAN}``
  patterns. Training uses the newest ``data.spans.window`` spans, evaluation the newest span's
  test file. A window of one span is read in place; a wider window is staged (copied, keeping
  modification times so the pipeline cache still hits) into one span directory under the run's
  output, because one ExampleGen split pattern selects exactly one span.

The preflight reads local files once, without TensorFlow (non-empty, UTF-8, a header with the
configured columns once each, every record parsed as CsvExampleGen will: quotes balanced, no stray
carriage returns, as many fields as the header, fields within the csv module's size limit, a
non-empty label; the text and label columns typed as CsvExampleGen will type them; at least one
row; between 2 and ``data.max_classes`` training labels, none spelled both with and without
surrounding spaces; no class in a given test split that training lacks) so mistakes fail in a
second with the file and line, instead of minutes into a pipeline. The ExampleValidator gate checks the same contract inside the pipeline, where
data may be remote (gs://, s3://) and no preflight ran.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import shutil
import unicodedata
import zlib
from dataclasses import dataclass, field
from typing import Any, Optional

from textops.errors import DataValidationError
from textops.settings import DataSettings, SpanSettings

TRAIN_NAMES = ("train",)
# A directory with train + one of EVAL_NAMES: two splits (train, eval). With train + a file of
# VALIDATION_NAMES + a file of TEST_NAMES: three splits; the Trainer and the Tuner evaluate on
# ``validation``, the Evaluator (the gate) and the reports on ``eval`` (the test file).
VALIDATION_NAMES = ("validation", "valid", "val", "dev")
TEST_NAMES = ("test", "eval")
EVAL_NAMES = TEST_NAMES + VALIDATION_NAMES
TRAIN_SPLIT, VALIDATION_SPLIT, EVAL_SPLIT = "train", "validation", "eval"
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz")
FORMATS_HELP = ".csv, .jsonl[.gz], .parquet or .tfrecord[.gz]"


@dataclass(frozen=True)
class DataSource:
    """What ExampleGen reads: a base directory, a format, and split patterns (or hash split)."""

    input_base: str
    format: str  # "csv" | "tfrecord"
    train_pattern: Optional[str] = None  # given split, relative to input_base
    eval_pattern: Optional[str] = None  # the gate's split (the test file)
    validation_pattern: Optional[str] = None  # three given splits: what the Trainer/Tuner evaluate on
    single_pattern: Optional[str] = None  # hash-split input, relative to input_base
    files: tuple[str, ...] = field(default_factory=tuple)
    # Span-numbered input: the spans the run uses (oldest first) and the one ExampleGen's
    # {SPAN} patterns resolve to (pinned with a RangeConfig).
    spans: tuple[int, ...] = field(default_factory=tuple)
    span: Optional[int] = None

    @property
    def has_given_split(self) -> bool:
        return self.train_pattern is not None


def has_validation_split(source: DataSource, settings: DataSettings) -> bool:
    """Three splits: a given validation file, or hash buckets for one (``data.validation_buckets``)."""
    if source.has_given_split:
        return source.validation_pattern is not None
    return settings.validation_buckets > 0


def training_eval_split(source: DataSource, settings: DataSettings) -> str:
    """The split the Trainer and the Tuner evaluate on: ``validation`` when there is one, so the
    gate's split (``eval``, the test file) never steers training; else ``eval`` (two splits)."""
    return VALIDATION_SPLIT if has_validation_split(source, settings) else EVAL_SPLIT


def _is_remote(path: str) -> bool:
    return "://" in path


def _format_of(name: str) -> Optional[str]:
    lower = name.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(TFRECORD_SUFFIXES):
        return "tfrecord"
    return None


def _stem(name: str) -> str:
    base = os.path.basename(name).lower()
    for suffix in sorted((*TFRECORD_SUFFIXES, *CSV_SUFFIXES, *JSONL_SUFFIXES, *PARQUET_SUFFIXES), key=len, reverse=True):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


SPAN_TOKEN = "{SPAN}"


def list_spans(path: str | os.PathLike, spans: SpanSettings) -> dict[int, str]:
    """Span number -> directory, for the ``<prefix><number>`` directories of a local ``path``."""
    path = os.fspath(path)
    if _is_remote(path) or not os.path.isdir(path):
        return {}
    rx = re.compile(rf"^{re.escape(spans.prefix)}(\d+)$")
    found: dict[int, str] = {}
    for entry in os.listdir(path):
        m = rx.match(entry)
        if m and os.path.isdir(os.path.join(path, entry)):
            number = int(m.group(1))
            if number in found:
                raise DataValidationError(
                    [f"{path} has two directories for span {number} ({os.path.basename(found[number])}, {entry}); keep one"],
                    where="reading --data",
                )
            found[number] = os.path.join(path, entry)
    return dict(sorted(found.items()))


def split_roles(directory: str, evals: list[str]) -> tuple[Optional[str], Optional[str]]:
    """(test file, validation file or None) among a directory's evaluation files, or an error
    naming them: one file of either kind, or one validation file and one test file."""
    if len(evals) <= 1:
        return (evals[0] if evals else None), None
    tests = [e for e in evals if _stem(e) in TEST_NAMES]
    validations = [e for e in evals if _stem(e) in VALIDATION_NAMES]
    if len(evals) == 2 and len(tests) == 1 and len(validations) == 1:
        return tests[0], validations[0]
    raise DataValidationError(
        [
            f"{directory} has evaluation files {', '.join(evals)}; keep one test file ({' or '.join(TEST_NAMES)}) and "
            f"at most one validation file ({', '.join(VALIDATION_NAMES)}): the validation file steers training, "
            "the test file is the one the gate scores"
        ],
        where="reading --data",
    )


def _span_files(span_dir: str, need_eval: bool) -> tuple[str, Optional[str], str, Optional[str]]:
    """(train file name, eval file name or None, format, validation file name or None) of one span directory."""
    files = [e for e in sorted(os.listdir(span_dir)) if not e.startswith(".") and _format_of(e)]
    train = [e for e in files if _stem(e) in TRAIN_NAMES]
    evals = [e for e in files if _stem(e) in EVAL_NAMES]
    problems = []
    if len(train) != 1:
        problems.append(f"{span_dir} needs exactly one train file (train.csv or train.tfrecord[.gz]); found {train or 'none'}")
    if need_eval and not evals:
        problems.append(f"{span_dir} is the newest span and needs exactly one test file (test.csv, eval.csv, ...); found none")
    if problems:
        raise DataValidationError(problems, where="reading the data spans")
    test, validation = split_roles(span_dir, evals) if need_eval else (None, None)
    fmt = _format_of(train[0])
    return train[0], test, fmt, validation  # type: ignore[return-value]


def _discover_spans(
    path: str, spans: dict[int, str], settings: DataSettings, staging_dir: Optional[str], check_only: bool = False
) -> DataSource:
    window = list(spans)[-settings.spans.window :]
    newest = window[-1]
    prefix = settings.spans.prefix
    train_name, eval_name, fmt, validation_name = _span_files(spans[newest], need_eval=True)
    trains = {newest: train_name}
    for number in window[:-1]:
        name, _, other_fmt, _ = _span_files(spans[number], need_eval=False)
        if other_fmt != fmt:
            raise DataValidationError(
                [f"span {number} is {other_fmt} but span {newest} is {fmt}; keep one format across spans"],
                where="reading the data spans",
            )
        trains[number] = name
    eval_file = os.path.join(spans[newest], eval_name)  # type: ignore[arg-type]
    train_files = tuple(os.path.join(spans[n], trains[n]) for n in window)
    # The newest span's validation file, if it has one (the eval file stays last: preflight's rule).
    validation_files = (os.path.join(spans[newest], validation_name),) if validation_name else ()
    if len(window) == 1:
        return DataSource(
            input_base=path,
            format=fmt,
            train_pattern=f"{prefix}{SPAN_TOKEN}/{train_name}",
            eval_pattern=f"{prefix}{SPAN_TOKEN}/{eval_name}",
            validation_pattern=f"{prefix}{SPAN_TOKEN}/{validation_name}" if validation_name else None,
            files=(*train_files, *validation_files, eval_file),
            spans=tuple(window),
            span=newest,
        )
    if check_only:  # the files where they lie, for preflight; nothing is staged
        return DataSource(
            input_base=path, format=fmt, train_pattern="", eval_pattern="",
            validation_pattern="" if validation_name else None, files=(*train_files, *validation_files, eval_file),
            spans=tuple(window), span=newest,
        )
    if staging_dir is None:
        raise DataValidationError(
            [
                f"a window of {len(window)} spans ({window}) is staged into the run's output, and this command has none; "
                "use `textops run`/`textops schedule`, or set data.spans.window=1 (newest span only)"
            ],
            where="reading the data spans",
        )
    target = stage_window(train_files, eval_file, window, staging_dir, prefix, validation_files[0] if validation_files else None)
    suffix = "*"
    staged_validation = (os.path.join(target, "validation", validation_name),) if validation_name else ()
    return DataSource(
        input_base=os.path.abspath(staging_dir),
        format=fmt,
        train_pattern=f"{prefix}{SPAN_TOKEN}/train/{suffix}",
        eval_pattern=f"{prefix}{SPAN_TOKEN}/eval/{suffix}",
        validation_pattern=f"{prefix}{SPAN_TOKEN}/validation/{suffix}" if validation_name else None,
        files=tuple(os.path.join(target, "train", f) for f in sorted(os.listdir(os.path.join(target, "train"))))
        + staged_validation
        + (os.path.join(target, "eval", os.path.basename(eval_file)),),
        spans=tuple(window),
        span=newest,
    )


def resolve_window(path: str | os.PathLike, settings: DataSettings) -> list[int]:
    """The spans a run on ``path`` would use, oldest first, after checking their files
    (the same checks the run makes); an empty list when ``path`` has no span directories."""
    spans = list_spans(path, settings.spans)
    window = list(spans)[-settings.spans.window :]
    fmt = _span_files(spans[window[-1]], need_eval=True)[2] if window else None
    for number in window[:-1]:
        if _span_files(spans[number], need_eval=False)[2] != fmt:
            raise DataValidationError(
                [f"span {number} and span {window[-1]} differ in format; keep one format across spans"],
                where="reading the data spans",
            )
    return window


def stage_window(
    train_files: tuple[str, ...], eval_file: str, window: list[int], staging_dir: str, prefix: str,
    validation_file: Optional[str] = None,
) -> str:
    """Copies a window's files into ``<staging_dir>/<prefix><newest>/{train,eval[,validation]}/``.

    The staging directory is rebuilt each time (it belongs to the run's output, never to the
    user's data); ``copy2`` keeps modification times, so ExampleGen's fingerprint of an
    unchanged window is unchanged and the pipeline cache hits.
    """
    if os.path.isdir(staging_dir):
        shutil.rmtree(staging_dir)
    target = os.path.join(staging_dir, f"{prefix}{window[-1]}")
    os.makedirs(os.path.join(target, "train"))
    os.makedirs(os.path.join(target, "eval"))
    for number, src in zip(window, train_files):
        shutil.copy2(src, os.path.join(target, "train", f"{prefix}{number}-{os.path.basename(src)}"))
    shutil.copy2(eval_file, os.path.join(target, "eval", os.path.basename(eval_file)))
    if validation_file is not None:
        os.makedirs(os.path.join(target, "validation"))
        shutil.copy2(validation_file, os.path.join(target, "validation", os.path.basename(validation_file)))
    return target


def discover(
    path: str, settings: DataSettings, staging_dir: Optional[str] = None, check_only: bool = False
) -> DataSource:
    """Resolves ``--data`` into a DataSource, or raises DataValidationError saying why not.

    ``staging_dir`` (inside the run's output) is where a window of several spans is staged;
    ``check_only`` lists a window's files where they lie instead (for ``preflight``; the
    source's patterns are then not for ExampleGen).
    """
    if _is_remote(path):
        import tensorflow as tf  # only for remote listings

        exists, isdir = tf.io.gfile.exists(path), tf.io.gfile.isdir(path)
        entries = [e.rstrip("/") for e in tf.io.gfile.listdir(path)] if isdir else []
    else:
        path = os.path.abspath(path)
        exists, isdir = os.path.exists(path), os.path.isdir(path)
        entries = sorted(os.listdir(path)) if isdir else []
    if not exists:
        raise DataValidationError([f"{path} does not exist"], where="reading --data")
    if not isdir:
        fmt = settings.format if settings.format != "auto" else _format_of(path)
        if fmt is None:
            raise DataValidationError(
                [f"{path}: cannot tell the format from the name; use {FORMATS_HELP}, or set data.format"],
                where="reading --data",
            )
        return DataSource(
            input_base=os.path.dirname(path) if not _is_remote(path) else path.rsplit("/", 1)[0],
            format=fmt,
            single_pattern=os.path.basename(path),
            files=(path,),
        )
    files = [e for e in entries if not e.startswith(".") and _format_of(e)]
    spans = list_spans(path, settings.spans)
    if spans:
        if files:
            raise DataValidationError(
                [
                    f"{path} holds both span directories ({settings.spans.prefix}N/) and data files "
                    f"({', '.join(files[:5])}); move the files into a span directory"
                ],
                where="reading --data",
            )
        return _discover_spans(path, spans, settings, staging_dir, check_only)
    if settings.format != "auto":
        files = [e for e in files if _format_of(e) == settings.format]
    formats = {_format_of(e) for e in files}
    if not files:
        raise DataValidationError(
            [f"{path} holds no {FORMATS_HELP} files (found: {', '.join(entries[:10]) or 'nothing'})"],
            where="reading --data",
        )
    if len(formats) > 1:
        raise DataValidationError(
            [f"{path} mixes formats ({', '.join(sorted(formats))}); keep one format per directory or set data.format"],
            where="reading --data",
        )
    fmt = formats.pop()
    join = (lambda d, n: f"{d.rstrip('/')}/{n}") if _is_remote(path) else os.path.join
    train = [e for e in files if _stem(e) in TRAIN_NAMES]
    evals = [e for e in files if _stem(e) in EVAL_NAMES]
    if train and evals:
        test, validation = split_roles(path, evals)
        return DataSource(
            input_base=path,
            format=fmt,
            train_pattern=train[0],
            eval_pattern=test,
            validation_pattern=validation,
            files=(join(path, train[0]), *((join(path, validation),) if validation else ()), join(path, test)),
        )
    suffix = os.path.splitext(files[0])[1] if fmt == "csv" else None
    pattern = f"*{suffix}" if suffix else ("*.tfrecord*" if all("tfrecord" in f for f in files) else "*")
    if fmt in ("jsonl", "parquet"):
        known = JSONL_SUFFIXES if fmt == "jsonl" else PARQUET_SUFFIXES
        endings = {next(x for x in sorted(known, key=len, reverse=True) if f.lower().endswith(x)) for f in files}
        pattern = f"*{endings.pop()}" if len(endings) == 1 else "*"
    return DataSource(input_base=path, format=fmt, single_pattern=pattern, files=tuple(join(path, f) for f in files))


MAX_PROBLEMS_PER_FILE = 5  # a broken file reports its first few bad records, then a count


def _csv_records(text: str):
    """``(first line number, record)`` as CsvExampleGen splits a CSV file after its header.

    The same rule as TFX 1.16's ``_ReadCsvRecordsFromTextFile``: lines end at ``\n`` only and a
    record continues over the next lines while its count of ``"`` is odd (a quoted field with a
    newline). A record still open at the end of the file is returned with ``None`` as its text.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line + "\n" for line in lines]
    start, buffer, quotes = 0, [], 0
    for number, line in enumerate(lines[1:], start=2):
        if not buffer:
            start = number
        buffer.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            yield start, "".join(buffer)
            buffer, quotes = [], 0
    if buffer:
        yield start, None


def _record_problem(path: str, line: int, record: str, exc: csv.Error) -> str:
    stripped = record[:-2] if record.endswith("\r\n") else record.rstrip("\n")
    if "\r" in stripped:
        return (
            f"{path}: line {line}: a carriage return (\\r) that does not end the line ({exc}); the file mixes line "
            "endings (e.g. old Mac \\r endings inside \\n ones). Convert it to \\n or \\r\\n line endings "
            "(e.g. `dos2unix`), or quote the field that holds the \\r"
        )
    if "field larger than field limit" in str(exc):
        return (
            f"{path}: line {line}: a field longer than {csv.field_size_limit():,} characters, the most "
            "CsvExampleGen's CSV reader (Python's csv module) takes; shorten that text, or give the data as "
            "JSON Lines or Parquet, which have no such limit"
        )
    return f"{path}: line {line}: malformed CSV record: {exc}"


def _foreign_encoding(raw: bytes) -> Optional[str]:
    """What a file that is not UTF-8 text recognisably is (a compressed or UTF-16/32 file), as the
    rest of a message after its path; None otherwise."""
    if raw.startswith(b"\x1f\x8b"):
        return "is gzip-compressed; decompress it (gunzip) or give it as .jsonl.gz / .tfrecord.gz"
    if raw.startswith(b"PK\x03\x04"):
        return "is a ZIP archive (or an .xlsx workbook); extract it or export the sheet as CSV (UTF-8)"
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if raw.startswith(bom):
            return f"is {name} text, not UTF-8; re-encode it (e.g. iconv -f {name} -t UTF-8)"
    return None


_INT64 = (-(2**63), 2**63 - 1)


def _csv_cell_type(value: str) -> str:
    """The type CsvExampleGen infers for one CSV cell (tfx_bsl's ``_InferValueType``): "int",
    "float", "string", or "" for an empty cell; a column takes the widest type of its cells."""
    if not value:
        return ""
    try:
        return "int" if _INT64[0] <= int(value) <= _INT64[1] else "string"
    except ValueError:
        try:
            float(value)
        except ValueError:
            return "string"
        return "float"


_WIDER = {"": 0, "int": 1, "float": 2, "string": 3}


def _numeric_column_problem(path: str, role: str, column: str, kind: str, example: str) -> Optional[str]:
    """CsvExampleGen would type the whole text or label column as a number."""
    if role == "text" and kind in ("int", "float"):
        return (
            f"{path}: the text column {column!r} holds only numbers (e.g. {example!r}), which CsvExampleGen reads as "
            f"{kind} values, not text; point data.text_column at the column with the texts"
        )
    if role == "label" and kind == "float":
        return (
            f"{path}: the label column {column!r} holds floating-point values (e.g. {example!r}); a classifier needs "
            "class names or integer class ids: write the labels as integers (pandas: df[col].astype(int)) or names"
        )
    return None


def _blank_label(path: str, where: str, column: str) -> str:
    return (
        f"{path}: {where}: the label ({column!r}) is empty; every example needs its class: "
        "fill it in, or drop the row"
    )


def _check_csv(path: str, settings: DataSettings) -> tuple[list[str], Optional[list[str]]]:
    """Problems of one local CSV file, and its label column's values (None when unreadable).

    Reads the file the way CsvExampleGen will (``_csv_records``), so what passes here also
    parses in the pipeline, and a record it would choke on is named by file and line.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        return [f"{path} is empty; it needs a header ({settings.text_column},{settings.label_column}) and rows"], None
    encoding = _foreign_encoding(raw)
    if encoding:
        return [f"{path} {encoding}"], None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [
            f"{path} is not UTF-8: byte 0x{raw[exc.start]:02x} at line {line} (offset {exc.start}); "
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ], None
    if text.startswith("\ufeff"):
        return [f"{path} starts with a UTF-8 byte-order mark, which breaks the header; save it without BOM"], None
    first_line = text.split("\n", 1)[0]
    if "\r" in first_line.rstrip("\r"):
        return [
            f"{path}: line 1: the header holds a carriage return (\\r) that does not end the line: the file uses "
            "old Mac (\\r) or mixed line endings. Convert it to \\n or \\r\\n line endings (e.g. `dos2unix`)"
        ], None
    header = first_line.strip().split(",")  # as CsvExampleGen reads it (tfx.utils.io_utils)
    twice = sorted({c for c in header if header.count(c) > 1 and c in (settings.text_column, settings.label_column)})
    if twice:
        return [
            f"{path}: the header names {', '.join(repr(c) for c in twice)} more than once ({header}); "
            "rename the other column(s) so each name is one column"
        ], None
    missing = [c for c in (settings.text_column, settings.label_column) if c not in header]
    if missing:
        quoted = " (CsvExampleGen reads the header unquoted: write the column names without quotes)" if '"' in first_line else ""
        return [
            f"{path}: column(s) {', '.join(repr(m) for m in missing)} not in the header {header}{quoted}; "
            "set data.text_column / data.label_column to the right names"
        ], None
    label_index = header.index(settings.label_column)
    text_index = header.index(settings.text_column)
    kinds = {"text": "", "label": ""}  # the widest cell type so far, and a cell of it
    examples = {"text": "", "label": ""}
    problems: list[str] = []
    bad = 0
    labels: list[str] = []
    rows = 0
    for line, record in _csv_records(text):
        if record is None:
            bad += 1
            problems.append(
                f"{path}: line {line}: a quote (\") opened in this record never closes (unbalanced quotes: the rest "
                "of the file would be read as one field); close the quote, or double the quotes inside a quoted "
                'field ("")'
            )
            break
        try:
            fields = next(csv.reader([record]), [])
        except csv.Error as exc:
            bad += 1
            if bad <= MAX_PROBLEMS_PER_FILE:
                problems.append(_record_problem(path, line, record, exc))
            continue
        if not fields:  # a blank line: CsvExampleGen skips it too
            continue
        if len(fields) != len(header):
            bad += 1
            if bad <= MAX_PROBLEMS_PER_FILE:
                problems.append(
                    f"{path}: line {line}: {len(fields)} field(s) but the header has {len(header)} ({header}); "
                    'quote fields that contain commas, e.g. "a, b",label'
                )
            continue
        if not fields[label_index].strip():
            bad += 1
            if bad <= MAX_PROBLEMS_PER_FILE:
                problems.append(_blank_label(path, f"line {line}", settings.label_column))
            continue
        rows += 1
        labels.append(fields[label_index])
        for role, index in (("text", text_index), ("label", label_index)):
            if kinds[role] != "string":
                kind = _csv_cell_type(fields[index])
                if _WIDER[kind] > _WIDER[kinds[role]]:
                    kinds[role], examples[role] = kind, fields[index]
    if bad > MAX_PROBLEMS_PER_FILE:
        problems.append(f"{path}: {bad - MAX_PROBLEMS_PER_FILE} more malformed record(s) not listed")
    if not problems and rows == 0:
        problems.append(f"{path} has a header but no rows")
    if not problems:
        for role, column in (("text", settings.text_column), ("label", settings.label_column)):
            problem = _numeric_column_problem(path, role, column, kinds[role], examples[role])
            if problem:
                problems.append(problem)
    return problems, (None if problems else labels)


def too_many_classes(what: str, count: int, max_classes: int) -> str:
    """The message for a label column with more classes than ``data.max_classes`` (the preflight's
    and, for data no preflight could read, the ExampleValidator gate's)."""
    return (
        f"{what} has {count:,} distinct classes, more than data.max_classes ({max_classes:,}); check that "
        "data.label_column names the label and not a text or id column, or raise data.max_classes"
    )


def _check_labels(labels: list[str], files: list[str], settings: DataSettings) -> list[str]:
    """The training labels: at least two classes, at most ``data.max_classes``."""
    classes = set(labels)
    where = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    if len(classes) > settings.max_classes:
        return [too_many_classes(f"the label column '{settings.label_column}' of {where}", len(classes), settings.max_classes)]
    if len(classes) < 2:
        return [
            f"the label column '{settings.label_column}' of {where} has {len(classes)} distinct value(s) "
            f"({', '.join(repr(c) for c in sorted(classes)[:1])}); a classifier needs at least 2"
        ]
    spelled: dict[str, list[str]] = {}
    for label in sorted(classes):  # "pos" / "pos " / " pos"; "café" composed / decomposed (NFC / NFD)
        spelled.setdefault(unicodedata.normalize("NFC", label).strip(), []).append(label)
    clashes = [variants for variants in spelled.values() if len(variants) > 1]
    if clashes:
        shown = "; ".join(" and ".join(repr(v) for v in variants) for variants in clashes[:3])
        return [
            f"the label column '{settings.label_column}' of {where} spells {len(clashes)} class(es) in more than one way, "
            f"with and without surrounding spaces or in two Unicode forms ({shown}{'; ...' if len(clashes) > 3 else ''}): "
            "they would train as different classes. Strip the spaces (a space after the comma in \"text, label\" rows "
            "is part of the field) and normalise the labels to NFC"
        ]
    return []


def _check_eval_classes(train: list[str], evaluation: list[str], eval_file: str, settings: DataSettings) -> list[str]:
    """Classes of the given eval split that no training example has: the model cannot predict them
    (ExampleValidator would find them only after ExampleGen and StatisticsGen)."""
    known = set(train)
    strangers = [label for label in evaluation if label not in known]
    if not strangers:
        return []
    unseen = sorted(set(strangers))
    return [
        f"{eval_file}: {len(strangers):,} of {len(evaluation):,} rows have a class the training data lacks "
        f"({', '.join(repr(u) for u in unseen[:5])}{' and more' if len(unseen) > 5 else ''}) in "
        f"'{settings.label_column}'; the model cannot learn a class it never sees: add training examples of it, "
        "or drop those rows"
    ]


def _check_tfrecord(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        return [f"{path}: cannot read it: {exc}"]
    if len(head) < 12:
        return [f"{path} is empty or truncated; it needs tf.Example records"]
    return []


def _record_problems(path: str, where: str, record: Any, settings: DataSettings) -> Optional[str]:
    """What is wrong with one record's text and label (None: nothing)."""
    missing = [c for c in (settings.text_column, settings.label_column) if c not in record]
    if missing:
        return (
            f"{path}: {where}: no {', '.join(repr(m) for m in missing)} (has {sorted(record)[:8]}); "
            "set data.text_column / data.label_column to the right names"
        )
    for column, allowed in ((settings.text_column, (str,)), (settings.label_column, (str, int))):
        value = record[column]
        if isinstance(value, bool) or not isinstance(value, allowed):
            return f"{path}: {where}: {column!r} is {type(value).__name__} {value!r:.60}; it must be a string" + (
                " or an integer" if column == settings.label_column else ""
            )
    if isinstance(record[settings.label_column], str) and not record[settings.label_column].strip():
        return _blank_label(path, where, settings.label_column)
    return None


def _check_jsonl(path: str, settings: DataSettings) -> tuple[list[str], Optional[list[str]]]:
    """Every line of a JSON Lines file (gzip by the name): one JSON object with the text and label."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        return [f"{path}: cannot read it: {exc}"], None
    except (EOFError, zlib.error) as exc:  # a truncated or damaged gzip stream
        return [f"{path}: the gzip stream is truncated or damaged ({exc}); copy or compress the file again"], None
    encoding = None if path.endswith(".gz") else _foreign_encoding(raw)
    if encoding:
        return [f"{path} {encoding}"], None
    if raw.startswith(b"\xef\xbb\xbf"):
        return [f"{path} starts with a UTF-8 byte-order mark, which is not JSON; save it without BOM"], None
    problems: list[str] = []
    labels: list[Any] = []
    kinds: dict[str, tuple[int, int, Any]] = {}  # label type -> (records, first line, first value)
    bad = rows = 0
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        problem = None
        try:
            record = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problem = f"{path}: line {number} is not UTF-8 (byte 0x{line[exc.start]:02x}); re-encode the file as UTF-8"
        except json.JSONDecodeError as exc:
            problem = f"{path}: line {number}, column {exc.colno}: not JSON ({exc.msg}); each line must be one JSON object"
        else:
            if not isinstance(record, dict):
                problem = f"{path}: line {number}: a JSON {type(record).__name__}, not an object ({{\"text\": ..., \"label\": ...}})"
            else:
                problem = _record_problems(path, f"line {number}", record, settings)
        if problem:
            bad += 1
            if bad <= MAX_PROBLEMS_PER_FILE:
                problems.append(problem)
            continue
        label = record[settings.label_column]
        kind = _label_kind(label)
        count, first_line, first_value = kinds.get(kind, (0, number, label))
        kinds[kind] = (count + 1, first_line, first_value)
        rows += 1
        labels.append(label)
    if bad > MAX_PROBLEMS_PER_FILE:
        problems.append(f"{path}: {bad - MAX_PROBLEMS_PER_FILE} more bad line(s) not listed")
    if not problems and rows == 0:
        problems.append(f"{path} has no records; it needs one JSON object a line")
    if len(kinds) > 1:
        counts = " and ".join(
            f"{n:,} {kind}s (the first at line {line}: {value!r:.40})" for kind, (n, line, value) in sorted(kinds.items())
        )
        problems.append(
            f"{path}: the label column '{settings.label_column}' holds {counts}; ExampleGen writes one as an int64 "
            "feature and the other as bytes, and a column has one type: write every label as a string, or every one "
            "as an integer"
        )
    return problems, (None if problems else labels)


def _label_kind(value: Any) -> str:
    """How ExampleGen writes a JSON Lines or Parquet label: an int64 feature or a bytes one."""
    return "integer" if isinstance(value, int) else "string"


def _article(kind: str) -> str:
    return f"an {kind}" if kind == "integer" else f"a {kind}"


def _mixed_label_types(where: str, value: Any, other_where: str, other: Any, settings: DataSettings) -> str:
    """A label of another type than the column's: ExampleGen writes an integer label as an int64 feature
    and a string as bytes, and one column cannot be both (TFXIO fails decoding the other)."""
    return (
        f"{where}: the label {value!r:.40} is {_article(_label_kind(value))}, but {other_where} ({other!r:.40}) is "
        f"{_article(_label_kind(other))}; "
        f"'{settings.label_column}' needs one type in every record and file: write every label as a string, "
        "or every one as an integer"
    )


def _check_parquet(path: str, settings: DataSettings) -> tuple[list[str], Optional[list[str]]]:
    """A Parquet file's columns, row count and label column (row group by row group)."""
    import pyarrow.parquet as pq  # pyarrow ships with TFX; it does not import TensorFlow

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001  (pyarrow raises several types for a broken file)
        return [f"{path}: not a readable Parquet file: {exc}"], None
    names = parquet.schema_arrow.names
    missing = [c for c in (settings.text_column, settings.label_column) if c not in names]
    if missing:
        return [
            f"{path}: column(s) {', '.join(repr(m) for m in missing)} not in the file's columns {names[:10]}; "
            "set data.text_column / data.label_column to the right names"
        ], None
    problems: list[str] = []
    for column in (settings.text_column, settings.label_column):
        kind = str(parquet.schema_arrow.field(column).type)
        if not (kind in ("string", "large_string") or (column == settings.label_column and kind.startswith(("int", "uint")))):
            problems.append(f"{path}: column {column!r} has type {kind}; it must be a string" + (
                " or an integer" if column == settings.label_column else ""))
    if problems:
        return problems, None
    if parquet.metadata.num_rows == 0:
        return [f"{path} has no rows"], None
    labels: list[str] = []
    for group in range(parquet.num_row_groups):
        try:
            table = parquet.read_row_group(group, columns=[settings.text_column, settings.label_column])
        except Exception as exc:  # noqa: BLE001
            return [f"{path}: row group {group} cannot be read: {exc}"], None
        for column in (settings.text_column, settings.label_column):
            nulls = table.column(column).null_count
            if nulls:
                problems.append(f"{path}: row group {group}: {nulls} null value(s) in {column!r}")
        group_labels = table.column(settings.label_column).to_pylist()  # str or int: the column's type
        blank = sum(1 for v in group_labels if isinstance(v, str) and not v.strip())
        if blank:
            problems.append(
                f"{path}: row group {group}: {blank} empty label(s) in {settings.label_column!r}; every example "
                "needs its class: fill them in, or drop those rows"
            )
        labels.extend(group_labels)
    return problems, (None if problems else labels)


def resolve_label_names(settings: DataSettings) -> Optional[list[str]]:
    """``data.label_names`` as a list (read from its file when it names one), or None."""
    names = settings.label_names
    if names is None or isinstance(names, list):
        return names
    try:
        with open(names, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError as exc:
        raise DataValidationError([f"data.label_names {names!r}: cannot read it ({exc.strerror})"], where="settings") from None
    if not lines or len(set(lines)) != len(lines):
        raise DataValidationError(
            [f"data.label_names {names}: needs distinct class names, one a line (line 1 is label 0); found {len(lines)} line(s)"],
            where="settings",
        )
    return lines


def _check_label_names(labels: list[str], names: list[str], settings: DataSettings) -> list[str]:
    bad = sorted({l for l in labels if not (l.isdigit() and int(l) < len(names))})
    if not bad:
        return []
    return [
        f"the label column '{settings.label_column}' holds {', '.join(repr(b) for b in bad[:5])}"
        f"{' and more' if len(bad) > 5 else ''}, but data.label_names maps only the integers 0..{len(names) - 1} "
        f"({len(names)} names)"
    ]


def _same_split_files(source: DataSource) -> list[str]:
    """The local files ExampleGen reads as one split: every file of a hash-split input, the window's
    train files of span input (one per span, oldest first); the other layouts have one file a split."""
    if not source.has_given_split:
        files = list(source.files)
    elif len(source.spans) > 1:
        files = list(source.files[: len(source.spans)])
    else:
        return []
    return [f for f in files if not _is_remote(f)]


def _csv_header_problem(files: list[str]) -> Optional[str]:
    """CSV files of one split must share their header line: CsvExampleGen reads the column names
    once per split and fails ("Files in same split ... have different header") otherwise."""
    headers: dict[tuple[str, ...], str] = {}
    for path in files:
        with open(path, "rb") as f:
            line = f.readline().decode("utf-8", "replace").strip()
        headers.setdefault(tuple(line.split(",")), path)
    if len(headers) < 2:
        return None
    (first, first_file), (second, second_file) = list(headers.items())[:2]
    return (
        f"{second_file} has the header {list(second)} but {first_file} has {list(first)}; ExampleGen reads these "
        "files as one split and needs one header (same columns, same order) in all of them"
    )


# The formats whose every record the preflight reads: file -> (problems, labels or None).
_RECORD_CHECKS = {"csv": _check_csv, "jsonl": _check_jsonl, "parquet": _check_parquet}


def preflight(source: DataSource, settings: DataSettings) -> None:
    """Checks local files (format, encoding, header, every record, the training labels' class
    count) without TensorFlow; remote data is left to the in-pipeline gate."""
    problems: list[str] = []
    # The files the model trains on: all of a hash-split input, all but the eval file otherwise.
    training = set(source.files[:-1] if source.has_given_split else source.files)
    labels: list[str] = []
    label_files: list[str] = []
    eval_labels: Optional[list[str]] = None
    first_label: Optional[tuple[str, Any]] = None  # (file, label): the type every file's labels must have
    complete = True
    for path in source.files:
        if _is_remote(path):
            complete = complete and path not in training
            continue
        check = _RECORD_CHECKS.get(source.format)
        if check is not None:
            file_problems, file_labels = check(path, settings)
            problems.extend(file_problems)
            if file_labels:  # JSON Lines and Parquet labels keep their type (str or int): one for all files
                if first_label is None:
                    first_label = (path, file_labels[0])
                elif _label_kind(file_labels[0]) != _label_kind(first_label[1]):
                    problems.append(_mixed_label_types(path, file_labels[0], first_label[0], first_label[1], settings))
                file_labels = [str(label) for label in file_labels]
            if path in training and file_labels is not None:
                labels.extend(file_labels)
                label_files.append(path)
            elif file_labels is not None:
                eval_labels = file_labels
        else:
            complete = False
            problems.extend(_check_tfrecord(path))
    if not problems and source.format == "csv":
        header_problem = _csv_header_problem(_same_split_files(source))
        if header_problem:
            problems.append(header_problem)
    names = resolve_label_names(settings)
    if not problems and names is not None and label_files:
        problems.extend(_check_label_names(labels, names, settings))
    if not problems and complete and label_files:
        problems.extend(_check_labels(labels, label_files, settings))
        if eval_labels is not None and names is None:
            problems.extend(_check_eval_classes(labels, eval_labels, source.files[-1], settings))
    if problems:
        raise DataValidationError(problems, where="input check")


def check_input(path: str, settings: DataSettings) -> DataSource:
    """``discover`` + ``preflight`` without writing anything (a window of several spans is
    checked where it lies, not staged): what ``textops run`` does before importing TensorFlow."""
    source = discover(path, settings, check_only=True)
    preflight(source, settings)
    return source
