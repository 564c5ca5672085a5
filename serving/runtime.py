"""The model runtime: load one SavedModel version, warm it up, predict on a batch of texts.

Knows nothing about HTTP, gRPC, queues or versions policy; the data plane drives it. The
signature contract is ``textops.features``: ``serving_default`` takes ``text`` (string [batch])
and returns ``probabilities`` (float32 [batch, C]), ``label`` and ``classes``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Optional, Sequence

import numpy as np

from textops import features

log = logging.getLogger(__name__)

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Inputs used when a version ships no TF Serving warmup records: short, long, empty, non-ASCII.
SAMPLE_TEXTS = (
    "hello",
    "my package has not arrived yet and the tracking number does not work",
    "",
    "the app crashes when I open the settings page",
    "please refund the extra payment on my invoice",
    "我的包裹还没有到",
    "Ünïcödé ½ — text with emoji 🙂",
    "a " * 200,
)
MAX_WARMUP_RECORDS = 1000  # as TF Serving


class LoadError(RuntimeError):
    """A version that cannot be served (unreadable, wrong signature, failed warmup)."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # float32 [n, C]
    labels: list[str]  # [n]
    classes: list[str]  # [C], the column order of probabilities


def _read_signature_defs(path: str):
    """The SignatureDef map of the SavedModel (what TF Serving's GetModelMetadata returns)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(path, "saved_model.pb")
    saved = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        saved.ParseFromString(f.read())
    if not saved.meta_graphs:
        raise LoadError(f"{pb} holds no MetaGraph")
    return saved.meta_graphs[0].signature_def


class ModelRuntime:
    """One loaded, warmed-up model version. ``predict`` is thread-safe (TF functions are)."""

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self._loaded = None
        self._signature = None
        self.signature_defs = None
        self.classes: list[str] = []
        self.warmup_source = ""
        self.load_seconds = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def load(self) -> "ModelRuntime":
        import tensorflow as tf

        start = time.perf_counter()
        try:
            self.signature_defs = _read_signature_defs(self.path)
            self._loaded = tf.saved_model.load(self.path)
        except LoadError:
            raise
        except Exception as exc:  # TF raises many types for a damaged SavedModel
            raise LoadError(f"cannot load SavedModel {self.path}: {type(exc).__name__}: {_first_line(exc)}") from exc
        signature = self._loaded.signatures.get(features.SERVING_SIGNATURE)
        if signature is None:
            raise LoadError(
                f"{self.path} has no '{features.SERVING_SIGNATURE}' signature "
                f"(found {sorted(self._loaded.signatures.keys())})"
            )
        inputs = signature.structured_input_signature[1]
        spec = inputs.get(features.SERVING_INPUT)
        if set(inputs) != {features.SERVING_INPUT} or spec is None or spec.dtype != tf.string:
            raise LoadError(
                f"{self.path}: '{features.SERVING_SIGNATURE}' must take one string input "
                f"'{features.SERVING_INPUT}', it takes {inputs}"
            )
        outputs = set(signature.structured_outputs)
        wanted = {features.OUTPUT_PROBABILITIES, features.OUTPUT_LABEL, features.OUTPUT_CLASSES}
        if not wanted <= outputs:
            raise LoadError(f"{self.path}: signature outputs {sorted(outputs)} lack {sorted(wanted - outputs)}")
        self._signature = signature
        self.load_seconds = time.perf_counter() - start
        return self

    def warmup(self, sample_count: int = len(SAMPLE_TEXTS)) -> int:
        """Runs the warmup records (or sample texts); returns how many model calls it made.

        Any failure (an exception, wrong shapes, non-finite or non-normalised probabilities)
        raises ``LoadError``: such a version must never be served.
        """
        batches = self._warmup_batches()
        if batches:
            self.warmup_source = WARMUP_FILE
        else:
            self.warmup_source = "sample texts"
            samples = [t.encode("utf-8") for t in SAMPLE_TEXTS]
            samples = (samples * (sample_count // len(samples) + 1))[:sample_count]
            batches = [samples[:1], samples]
        for batch in batches:
            try:
                prediction = self.predict(batch)
            except Exception as exc:
                raise LoadError(f"warmup of {self.name} v{self.version} failed: {type(exc).__name__}: {_first_line(exc)}") from exc
            problem = _check_prediction(prediction, len(batch))
            if problem:
                raise LoadError(f"warmup of {self.name} v{self.version} failed: {problem}")
            if not self.classes:
                self.classes = prediction.classes
        return len(batches)

    def _warmup_batches(self) -> list[list[bytes]]:
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return []
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        batches: list[list[bytes]] = []
        try:
            for raw in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
                entry = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
                if not entry.HasField("predict_log"):
                    raise LoadError(f"{path}: only predict_log warmup records are supported, got {entry.WhichOneof('log_type')}")
                tensor = entry.predict_log.request.inputs.get(features.SERVING_INPUT)
                if tensor is None:
                    raise LoadError(f"{path}: a warmup request has no '{features.SERVING_INPUT}' input")
                batches.append(list(tf.make_ndarray(tensor).reshape(-1)))
        except LoadError:
            raise
        except Exception as exc:
            raise LoadError(f"cannot read warmup records {path}: {type(exc).__name__}: {_first_line(exc)}") from exc
        return batches

    # -- inference ---------------------------------------------------------------------------
    def predict(self, texts: Sequence[bytes]) -> Prediction:
        import tensorflow as tf

        out = self._signature(**{features.SERVING_INPUT: tf.constant(list(texts), dtype=tf.string)})
        probabilities = out[features.OUTPUT_PROBABILITIES].numpy()
        labels = [b.decode("utf-8") for b in out[features.OUTPUT_LABEL].numpy()]
        classes = self.classes
        if not classes and len(texts):
            classes = [b.decode("utf-8") for b in out[features.OUTPUT_CLASSES].numpy()[0]]
        return Prediction(probabilities, labels, classes)

    def output_names(self) -> list[str]:
        return sorted(self._signature.structured_outputs) if self._signature is not None else []


def _check_prediction(p: Prediction, n: int) -> Optional[str]:
    probs = p.probabilities
    if probs.ndim != 2 or probs.shape[0] != n or len(p.labels) != n:
        return f"expected {n} rows of probabilities, got shape {probs.shape} and {len(p.labels)} labels"
    if probs.shape[1] != len(p.classes):
        return f"{probs.shape[1]} probability columns but {len(p.classes)} classes"
    if n and not np.all(np.isfinite(probs)):
        return "non-finite probabilities"
    if n and not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        return "probabilities do not sum to 1"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
