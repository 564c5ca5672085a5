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


def _score_bins(probabilities: np.ndarray) -> np.ndarray:
    """Each probability's histogram bin, 0..AUC_BINS - 1."""
    return np.clip((probabilities * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)


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
        bins = _score_bins(probabilities)
        for c in range(n):
            (self.pos_hist if c == true else self.neg_hist)[c, bins[c]] += weight

    def add_rows(self, probabilities: np.ndarray, true: np.ndarray) -> None:
        """``add`` for many rows at once, each of weight 1: ``probabilities`` ``[n, classes]`` in
        the order of ``self.classes``, ``true`` ``[n]`` the index of each row's label in it
        (``len(self.classes)``: a label outside them). A block of rows at a time (a few million
        histogram cells: bounded memory however large the split and the class count)."""
        n = len(self.classes or ())
        if probabilities.ndim != 2 or probabilities.shape[1] != n or true.shape != (probabilities.shape[0],):
            raise ValueError(f"{probabilities.shape} probabilities and {true.shape} labels for {n} classes")
        self.confusion += np.bincount(
            true * n + probabilities.argmax(axis=1), minlength=(n + 1) * n
        ).reshape(n + 1, n)
        offsets = np.arange(n) * AUC_BINS
        rows = max(1, (1 << 22) // n)
        for start in range(0, probabilities.shape[0], rows):
            cells = _score_bins(probabilities[start : start + rows]) + offsets
            positive = true[start : start + rows, np.newaxis] == np.arange(n)
            self.pos_hist += np.bincount(cells[positive], minlength=n * AUC_BINS).reshape(n, AUC_BINS)
            self.neg_hist += np.bincount(cells[~positive], minlength=n * AUC_BINS).reshape(n, AUC_BINS)

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
    gate computes it (``ClassificationStats``). Numpy: no TensorFlow op to trace or warm up once per process.
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
    stats = ClassificationStats(tuple(str(c) for c in range(classes)))
    stats.add_rows(probabilities, labels)
    present = stats._present()
    # The gate's per-class formulas; scikit-learn's zero_division=0 where they answer NaN (recall
    # and F1 of a class that is predicted but never the label).
    def macro(metric) -> float:
        return float(np.mean([0.0 if math.isnan(v) else v for v in map(metric, present)]))

    aucs = [v for v in map(stats.auc, range(classes)) if not math.isnan(v)]  # NaN: no positives or no negatives
    return {
        "loss": loss,
        "accuracy": stats.accuracy(),
        "precision": macro(stats.precision),
        "recall": macro(stats.recall),
        "f1": macro(stats.f1),
        "auc": float(np.mean(aucs)) if aucs else math.nan,
    }
