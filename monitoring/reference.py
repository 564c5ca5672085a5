"""The reference the window is compared with: the evaluation split, the model's predictions on
it, and the training vocabulary.

A reference is built once and saved as a directory (``reference.json``, ``reference.parquet``,
``vocabulary.txt``) so every monitor run compares against the same thing. It can be built from

- a pipeline run directory (``run_summary.json``): the ExampleGen eval split, scored by the
  pushed model (or the Trainer's model when nothing was pushed); the vocabulary is the model's
  own ``token_vocab`` asset (the Transform vocabulary);
- a CSV with ``text,label`` columns and a SavedModel to score it (``--model``);
- Python: ``build_reference(texts, labels, model_dir)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from textops import features
from textops.monitoring import descriptors
from textops.errors import ExitCode
from textops.monitoring.config import MonitorError
from textops.summary import RunSummary, SummaryError, read_summary, summary_path

REFERENCE_JSON = "reference.json"
REFERENCE_DATA = "reference.parquet"
VOCABULARY_FILE = "vocabulary.txt"
_BATCH = 1024


@dataclasses.dataclass
class Reference:
    frame: pd.DataFrame  # text, target, prediction, confidence, probabilities, + descriptors
    classes: list[str]
    vocabulary: frozenset[str]
    meta: dict[str, Any]

    def save(self, directory: os.PathLike) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(out / REFERENCE_DATA, index=False)
        (out / VOCABULARY_FILE).write_text("".join(w + "\n" for w in sorted(self.vocabulary)), encoding="utf-8")
        meta = dict(self.meta, classes=self.classes, rows=len(self.frame))
        (out / REFERENCE_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, directory: os.PathLike) -> "Reference":
        d = Path(directory)
        missing = [n for n in (REFERENCE_JSON, REFERENCE_DATA, VOCABULARY_FILE) if not (d / n).is_file()]
        if missing:
            raise MonitorError(
                f"reference {d} is incomplete (missing {', '.join(missing)}); rebuild it from the run "
                "directory or CSV it came from",
                ExitCode.USAGE,
            )
        meta = json.loads((d / REFERENCE_JSON).read_text(encoding="utf-8"))
        frame = pd.read_parquet(d / REFERENCE_DATA)
        vocabulary = frozenset(w for w in (d / VOCABULARY_FILE).read_text(encoding="utf-8").splitlines() if w)
        return cls(frame, list(meta["classes"]), vocabulary, meta)


# -- scoring with a SavedModel ----------------------------------------------------------------
def _load_model(model_dir: os.PathLike) -> Any:
    import tensorflow as tf

    path = Path(model_dir)
    if not (path / "saved_model.pb").is_file():
        raise MonitorError(
            f"{path} is not a SavedModel (no saved_model.pb); give the model version directory, "
            "e.g. model_repository/<name>/<version>",
            ExitCode.USAGE,
        )
    loaded = tf.saved_model.load(str(path))
    if features.SERVING_SIGNATURE not in loaded.signatures:
        raise MonitorError(
            f"SavedModel {path} has no {features.SERVING_SIGNATURE!r} signature (found "
            f"{sorted(loaded.signatures)}); export it with textops' exporter",
            ExitCode.USAGE,
        )
    return loaded


def score(model_dir: os.PathLike, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Class probabilities ``[n, classes]`` and the class names, from the serving signature."""
    import tensorflow as tf

    signature = _load_model(model_dir).signatures[features.SERVING_SIGNATURE]
    parts: list[np.ndarray] = []
    classes: list[str] = []
    for start in range(0, len(texts), _BATCH):
        out = signature(**{features.SERVING_INPUT: tf.constant(list(texts[start : start + _BATCH]))})
        parts.append(out[features.OUTPUT_PROBABILITIES].numpy())
        if not classes:
            classes = [c.decode("utf-8") for c in out[features.OUTPUT_CLASSES].numpy()[0]]
    return (np.concatenate(parts) if parts else np.zeros((0, 0))), classes


def model_vocabulary(model_dir: os.PathLike) -> frozenset[str]:
    """Unigrams of the model's token vocabulary asset (Transform's ``token_vocab``, or the bare
    path's ``token_vocab.txt``; the transformer's word pieces, ``piece_words``)."""
    assets = Path(model_dir) / "assets"
    candidates = []
    if assets.is_dir():
        candidates = sorted(assets.glob(f"{features.TOKEN_VOCAB_NAME}*")) or sorted(
            assets.glob(f"{features.WORD_VOCAB_NAME}*")
        )
    if not candidates:
        raise MonitorError(
            f"model {model_dir} has no {features.TOKEN_VOCAB_NAME} asset, so the OOV share cannot be "
            "computed; use a model exported by the textops pipeline or bare trainer",
            ExitCode.USAGE,
        )
    with open(candidates[0], "rb") as f:
        return descriptors.unigram_vocabulary(f)


def build_reference(
    texts: Sequence[str],
    labels: Sequence[str],
    model_dir: os.PathLike,
    *,
    source: str,
    vocabulary: Optional[frozenset[str]] = None,
) -> Reference:
    if len(texts) != len(labels):
        raise MonitorError(f"reference has {len(texts)} texts but {len(labels)} labels", ExitCode.USAGE)
    if len(texts) == 0:
        raise MonitorError(f"reference {source} has no rows", ExitCode.USAGE)
    probabilities, classes = score(model_dir, texts)
    vocabulary = vocabulary if vocabulary is not None else model_vocabulary(model_dir)
    frame = pd.DataFrame(
        {
            "text": list(texts),
            "target": [str(x) for x in labels],
            "prediction": [classes[i] for i in probabilities.argmax(axis=1)],
            "confidence": probabilities.max(axis=1).astype(np.float64),
            "probabilities": [row.astype(np.float64).tolist() for row in probabilities],
        }
    )
    descriptors.add_descriptors(frame, vocabulary)
    meta = {"source": source, "model": str(model_dir), "created": time.time()}
    return Reference(frame, classes, vocabulary, meta)


# -- from a pipeline run ------------------------------------------------------------------------
def _read_examples(split_dir: Path, text_key: str, label_key: str) -> tuple[list[str], list[str]]:
    import tensorflow as tf

    files = sorted(str(p) for p in split_dir.iterdir() if p.is_file())
    if not files:
        raise MonitorError(f"no example files in {split_dir}", ExitCode.USAGE)
    compression = "GZIP" if files[0].endswith(".gz") else ""
    texts, labels = [], []
    for raw in tf.data.TFRecordDataset(files, compression_type=compression):
        example = tf.train.Example.FromString(raw.numpy())
        feats = example.features.feature
        if text_key not in feats or label_key not in feats:
            raise MonitorError(
                f"examples in {split_dir} have no {text_key!r}/{label_key!r} features "
                f"(found {sorted(feats)}); check data.text_column/label_column of the run",
                ExitCode.USAGE,
            )
        texts.append(feats[text_key].bytes_list.value[0].decode("utf-8", errors="replace"))
        label = feats[label_key]
        labels.append(label.bytes_list.value[0].decode("utf-8") if label.bytes_list.value else str(label.int64_list.value[0]))
    return texts, labels


@dataclasses.dataclass
class RunArtifacts:
    """Where a pipeline run keeps what monitoring and model analysis read."""

    run_dir: Path
    summary: RunSummary
    eval_split: Path  # ExampleGen's Split-eval TFRecords
    candidate_model: Optional[Path]  # the Trainer's SavedModel (Format-Serving)
    serving_model: Optional[Path]  # the pushed model, else the candidate
    text_key: str
    label_key: str

    def eval_examples(self) -> tuple[list[str], list[str]]:
        return _read_examples(self.eval_split, self.text_key, self.label_key)


def run_artifacts(run_dir: os.PathLike) -> RunArtifacts:
    from textops import mlmd

    run = Path(run_dir)
    try:
        summary = read_summary(run)
    except SummaryError as exc:
        raise MonitorError(str(exc), ExitCode.USAGE) from None
    data = summary.settings.get("data") or {}
    store_path = run / "metadata.sqlite"
    if not store_path.is_file():
        raise MonitorError(f"run {run} has no metadata.sqlite; was it made by `textops run`?", ExitCode.USAGE)
    store = mlmd.connect_sqlite(str(store_path))
    runs = mlmd.list_runs(store, summary.pipeline or "textops")
    record = next((r for r in runs if r.run_id == summary.run_id), runs[-1] if runs else None)
    if record is None:
        raise MonitorError(f"run {run}: the metadata store records no pipeline run", ExitCode.USAGE)
    examples = record.output("CsvExampleGen", "examples") or record.output("ImportExampleGen", "examples") or record.output("FileBasedExampleGen", "examples")
    if examples is None:
        raise MonitorError(f"run {run}: no ExampleGen output recorded; the run did not get that far", ExitCode.USAGE)
    model = record.output("Trainer", "model")
    candidate = Path(model.uri) / "Format-Serving" if model is not None else None
    serving = Path(summary.pushed.path) if summary.pushed else candidate
    return RunArtifacts(
        run_dir=run,
        summary=summary,
        eval_split=Path(examples.uri) / "Split-eval",
        candidate_model=candidate,
        serving_model=serving,
        text_key=data.get("text_column", features.DEFAULT_TEXT_COLUMN),
        label_key=data.get("label_column", features.DEFAULT_LABEL_COLUMN),
    )


def reference_from_run(run_dir: os.PathLike) -> Reference:
    art = run_artifacts(run_dir)
    if art.serving_model is None:
        raise MonitorError(f"run {run_dir} trained no model; nothing to monitor against", ExitCode.USAGE)
    texts, labels = art.eval_examples()
    ref = build_reference(texts, labels, art.serving_model, source=f"run {run_dir} (eval split)")
    evaluation = art.summary.settings.get("evaluation") or {}
    thresholds = {k: float(v) for k, v in (evaluation.get("thresholds") or {}).items() if v is not None}
    ref.meta.update(
        {
            "model_name": art.summary.model_name,
            "model_version": art.summary.pushed_version,
            "run_id": art.summary.run_id,
            # the gate's lower bounds (evaluation.thresholds): what the label-free estimate is held to
            "gate_thresholds": thresholds,
            "positive_label": evaluation.get("positive_label"),
        }
    )
    return ref


def reference_from_csv(csv_path: os.PathLike, model_dir: Optional[os.PathLike]) -> Reference:
    if model_dir is None:
        raise MonitorError(
            f"reference {csv_path} is a CSV: also give the model that should score it "
            "(--model model_repository/<name>/<version>)",
            ExitCode.USAGE,
        )
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise MonitorError(f"cannot read reference CSV {csv_path}: {exc}", ExitCode.USAGE) from None
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise MonitorError(
            f"reference CSV {csv_path} needs columns text,label (missing {sorted(missing)}; found {list(frame.columns)})",
            ExitCode.USAGE,
        )
    labels = frame["label"].tolist()
    blank = [i + 1 for i, label in enumerate(labels) if not label.strip()]
    if blank:
        raise MonitorError(
            f"reference CSV {csv_path}: {len(blank)} row(s) with an empty label (row(s) "
            f"{', '.join(map(str, blank[:5]))}{', ...' if len(blank) > 5 else ''} after the header); the reference's labels are what "
            "the model's answers are compared with: fill them in or drop those rows",
            ExitCode.USAGE,
        )
    ref = build_reference(frame["text"].tolist(), labels, model_dir, source=f"csv {csv_path}")
    unknown = sorted(set(labels) - set(ref.classes))
    if unknown:
        raise MonitorError(
            f"reference CSV {csv_path} has label(s) the model {model_dir} does not know "
            f"({', '.join(repr(u) for u in unknown[:5])}{' and more' if len(unknown) > 5 else ''}; its classes: "
            f"{', '.join(repr(c) for c in ref.classes[:10])}{' ...' if len(ref.classes) > 10 else ''}): is it the data "
            "this model was trained for, and is --model the right model?",
            ExitCode.USAGE,
        )
    return ref


def load_reference(
    path: Optional[os.PathLike],
    model_dir: Optional[os.PathLike] = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Reference:
    """A saved reference directory, a run directory, or a CSV (scored by ``model_dir``)."""
    if path is None:
        raise MonitorError(
            "no reference given: pass --reference RUN_DIR (a pipeline run), a saved reference "
            "directory, or a CSV with text,label plus --model",
            ExitCode.USAGE,
        )
    p = Path(path)
    if not p.exists():
        raise MonitorError(
            f"reference {p} does not exist; pass a pipeline run directory (with run_summary.json), "
            "a saved reference directory (with reference.json), or a CSV with text,label",
            ExitCode.USAGE,
        )
    if p.is_dir() and (p / REFERENCE_JSON).is_file():
        return Reference.load(p)
    if p.is_dir() and summary_path(p).is_file():
        progress(f"building the reference from run {p} (eval split, scored by its model)")
        return reference_from_run(p)
    if p.is_file() and p.suffix.lower() == ".csv":
        progress(f"building the reference from {p}, scored by {model_dir}")
        return reference_from_csv(p, model_dir)
    raise MonitorError(
        f"reference {p} is none of: a saved reference directory (reference.json), a pipeline run "
        "directory (run_summary.json), a .csv file with text,label",
        ExitCode.USAGE,
    )
