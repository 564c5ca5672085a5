"""The gate's classification statistics in plain numpy: a confusion matrix, per-class score
histograms, and the metrics derived from them (on the argmax decision, as scikit-learn defines
them). The TFMA metrics (``components/metrics.py``) accumulate these in Beam; the monitor's
quality checks and label-free estimate compute the same figures on a window, without Beam,
TFMA or TensorFlow.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

AUC_BINS = 10_000
HEADLINE_METRICS = ("accuracy", "precision", "recall", "f1", "auc")
PER_CLASS_METRICS = ("precision", "recall", "f1", "auc", "support")


class ClassificationStats:
    """Confusion matrix (rows: true class, last row: labels outside the class list; columns:
    predicted class) and per-class histograms of the predicted probability."""

    def __init__(self, classes: Optional[tuple[str, ...]] = None):
        self.classes = classes
        n = len(classes) if classes else 0
        self.confusion = np.zeros((n + 1, n), dtype=np.float64)
        self.pos_hist = np.zeros((n, AUC_BINS), dtype=np.float64)
        self.neg_hist = np.zeros((n, AUC_BINS), dtype=np.float64)

    # -- accumulation -------------------------------------------------------------------------
    def add(self, classes: tuple[str, ...], probabilities: np.ndarray, label: str, weight: float) -> None:
        if self.classes is None:
            self.__init__(classes)
        elif classes != self.classes:
            raise ValueError(f"class list changed within one evaluation: {self.classes} vs {classes}")
        n = len(classes)
        if probabilities.shape[-1] != n:
            raise ValueError(f"{probabilities.shape[-1]} probabilities for {n} classes")
        predicted = int(np.argmax(probabilities))
        true = classes.index(label) if label in classes else n
        self.confusion[true, predicted] += weight
        bins = np.clip((probabilities * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)
        for c in range(n):
            (self.pos_hist if c == true else self.neg_hist)[c, bins[c]] += weight

    def merge(self, other: "ClassificationStats") -> "ClassificationStats":
        if other.classes is None:
            return self
        if self.classes is None:
            return other
        if other.classes != self.classes:
            raise ValueError(f"cannot merge stats over {self.classes} and {other.classes}")
        self.confusion += other.confusion
        self.pos_hist += other.pos_hist
        self.neg_hist += other.neg_hist
        return self

    # -- metrics ------------------------------------------------------------------------------
    @property
    def total(self) -> float:
        return float(self.confusion.sum())

    def accuracy(self) -> float:
        n = len(self.classes or ())
        return float(np.trace(self.confusion[:n, :n]) / self.total) if self.total else math.nan

    def support(self, c: int) -> float:
        return float(self.confusion[c].sum())

    def precision(self, c: int) -> float:
        predicted = self.confusion[:, c].sum()
        return float(self.confusion[c, c] / predicted) if predicted else 0.0

    def recall(self, c: int) -> float:
        support = self.support(c)
        return float(self.confusion[c, c] / support) if support else math.nan

    def f1(self, c: int) -> float:
        p, r = self.precision(c), self.recall(c)
        if math.isnan(r):
            return math.nan
        return 2 * p * r / (p + r) if (p + r) else 0.0

    def auc(self, c: int) -> float:
        pos, neg = self.pos_hist[c], self.neg_hist[c]
        n_pos, n_neg = pos.sum(), neg.sum()
        if not n_pos or not n_neg:
            return math.nan
        neg_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
        return float((pos * (neg_below + 0.5 * neg)).sum() / (n_pos * n_neg))

    def _present(self) -> list[int]:
        """Classes that occur as a true or a predicted label (scikit-learn's macro set)."""
        n = len(self.classes or ())
        return [c for c in range(n) if self.confusion[:n, c].sum() or self.confusion[c].sum()]

    def positive_index(self, positive_label: Optional[str]) -> int:
        classes = self.classes or ()
        if positive_label is not None:
            if positive_label not in classes:
                raise ValueError(
                    f"evaluation.positive_label {positive_label!r} is not one of the model's "
                    f"classes {list(classes)}; set it to one of them or leave it unset"
                )
            return classes.index(positive_label)
        return min(range(len(classes)), key=lambda c: (self.support(c), classes[c]))

    def headline(self, name: str, positive_label: Optional[str] = None) -> float:
        if self.classes is None or not self.total:
            return math.nan
        if name == "accuracy":
            return self.accuracy()
        fn = {"precision": self.precision, "recall": self.recall, "f1": self.f1, "auc": self.auc}[name]
        if len(self.classes) == 2:
            return fn(self.positive_index(positive_label))
        values = [fn(c) for c in self._present()]
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    def per_class(self) -> dict[str, dict[str, float]]:
        out = {}
        for c, name in enumerate(self.classes or ()):
            out[name] = {
                "precision": self.precision(c),
                "recall": self.recall(c),
                "f1": self.f1(c),
                "auc": self.auc(c),
                "support": self.support(c),
            }
        return out


def epoch_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """The training curves' evaluation metrics over one split, from integer labels ``[n]`` and
    class probabilities ``[n, classes]``: the loss (mean cross-entropy), accuracy, and macro
    precision, recall and F1 of the argmax decision over the classes that occur as a label or a
    prediction (scikit-learn's ``average="macro"``, ``zero_division=0``), and the one-vs-rest ROC
    AUC averaged over the classes with positives and negatives, at ``AUC_BINS`` score bins as the
    gate computes it. Vectorized numpy: no TensorFlow op to trace or warm up once per process.
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    n, classes = probabilities.shape
    if labels.shape[0] != n or not n:
        raise ValueError(f"{labels.shape[0]} labels for {n} rows of probabilities")
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in [0, {classes}), got {labels.min()}..{labels.max()}")
    # Keras' cross-entropy on probabilities: renormalized, clipped to [1e-7, 1 - 1e-7].
    chosen = probabilities[np.arange(n), labels].astype(np.float64) / probabilities.sum(axis=1, dtype=np.float64)
    loss = float(-np.log(np.clip(chosen, 1e-7, 1 - 1e-7)).mean())
    predicted = probabilities.argmax(axis=1)
    confusion = np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    tp, support, called = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(called > 0, tp / np.maximum(called, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.where(precision + recall > 0, precision + recall, 1), 0.0)
    present = (support + called) > 0
    # Per-class score histograms, a block of rows at a time (a few million cells: bounded memory
    # however large the split and the class count).
    pos_hist = np.zeros(classes * AUC_BINS, np.int64)
    neg_hist = np.zeros(classes * AUC_BINS, np.int64)
    offsets = np.arange(classes) * AUC_BINS
    rows = max(1, (1 << 22) // classes)
    for start in range(0, n, rows):
        block = probabilities[start : start + rows]
        cells = np.clip((block * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1) + offsets
        positive = labels[start : start + rows, np.newaxis] == np.arange(classes)
        pos_hist += np.bincount(cells[positive], minlength=classes * AUC_BINS)
        neg_hist += np.bincount(cells[~positive], minlength=classes * AUC_BINS)
    pos_hist, neg_hist = pos_hist.reshape(classes, AUC_BINS), neg_hist.reshape(classes, AUC_BINS)
    n_pos, n_neg = pos_hist.sum(axis=1), neg_hist.sum(axis=1)
    neg_below = np.cumsum(neg_hist, axis=1) - neg_hist
    scored = (n_pos > 0) & (n_neg > 0)
    aucs = (pos_hist * (neg_below + 0.5 * neg_hist)).sum(axis=1)[scored] / (n_pos * n_neg)[scored]
    return {
        "loss": loss,
        "accuracy": float(tp.sum() / n),
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
        "auc": float(aucs.mean()) if aucs.size else math.nan,
    }
