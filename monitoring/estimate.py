"""Performance estimated without labels: confidence-based performance estimation (CBPE).

NannyML's method, on scikit-learn (NannyML itself needs pyarrow >= 13 and TFX 1.16 pins pyarrow
< 11, so the two cannot share an environment; see docs/monitoring.md):

1. **Calibrate on the reference.** The reference is the model's predictions on the reference
   run's evaluation split, whose true labels are known. scikit-learn's
   ``CalibratedClassifierCV(cv="prefit")`` fits one isotonic (or sigmoid) calibrator per class,
   one-vs-rest, on the model's probability for that class, and normalises the calibrated row
   (two classes: one calibrator on the second class).
2. **Expected confusion matrix of the window.** With calibrated probabilities ``q_i``, text ``i``
   predicted as ``j`` (the model's argmax) is truly of class ``t`` with probability ``q_i[t]``:
   ``E[C[t, j]] = sum over i predicted j of q_i[t]``. Expected accuracy is ``mean_i q_i[pred_i]``.
3. **Metrics and intervals.** Precision, recall and F1 are not linear in the confusion matrix, so
   labels are drawn ``draws`` times from ``q`` and the gate's own definitions
   (``components/metrics.py``: argmax decision, macro over the classes present, two classes: the
   positive class) are applied to each draw; the estimate is the mean over draws and the interval
   their central ``interval`` share. Accuracy's interval is analytical: it is a mean of
   independent Bernoullis with ``p_i = q_i[pred_i]``, variance ``sum p_i (1 - p_i) / n^2``.

Under a label-prior shift (the prediction signal fired: some classes arrive far more or less
often than in the reference) the calibrated probabilities are first re-weighted to the window's
priors, estimated by EM (``adjust_to_priors``); ``estimate.adjust_priors`` chooses when.

The intervals cover the randomness of the labels given calibrated probabilities; they do not
cover a calibration that no longer holds (a window of another domain, where ``P(label | text)``
itself changed): that is what the drift signals are for.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1")


def probability_matrix(frame: pd.DataFrame, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``[n, len(classes)]`` in ``classes`` order from the logged ``probabilities``
    (and ``classes`` when the log names them), and a mask of the rows that carried them."""
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(frame), len(classes)), dtype=np.float64)
    ok = np.zeros(len(frame), dtype=bool)
    names_col = frame["classes"] if "classes" in frame else [None] * len(frame)
    for row, (probs, names) in enumerate(zip(frame["probabilities"], names_col)):
        if probs is None or (isinstance(probs, float) and math.isnan(probs)) or len(probs) != len(classes):
            continue
        if names is not None and list(names) != classes:
            if set(names) != set(classes):
                continue
            for name, value in zip(names, probs):
                out[row, index[name]] = value
        else:
            out[row] = probs
        ok[row] = True
    return out, ok


class _Scores:
    """A fitted 'classifier' whose probabilities are its input: it lets scikit-learn's
    ``CalibratedClassifierCV(cv="prefit")`` calibrate probabilities a model already produced."""

    _estimator_type = "classifier"

    def __init__(self, n_classes: int):
        self.classes_ = np.arange(n_classes)

    def fit(self, X: Any, y: Any = None) -> "_Scores":  # noqa: N803  (scikit-learn's names)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(X, dtype=np.float64)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"n_classes": len(self.classes_)}


class Calibrator:
    """Per-class calibration of the model's probabilities, fitted on the reference."""

    def __init__(self, classes: Sequence[str], method: str = "isotonic"):
        self.classes = list(classes)
        self.method = method
        self._calibrated: Any = None

    def fit(self, probabilities: np.ndarray, targets: Sequence[str]) -> "Calibrator":
        from sklearn.calibration import CalibratedClassifierCV

        index = {c: i for i, c in enumerate(self.classes)}
        known = np.array([t in index for t in targets])
        if known.sum() < 2:
            raise ValueError("the reference has fewer than two labelled rows with a class the model knows")
        y = np.array([index[t] for t, k in zip(targets, known) if k])
        estimator = _Scores(len(self.classes))
        self._calibrated = CalibratedClassifierCV(estimator, method=self.method, cv="prefit").fit(probabilities[known], y)
        return self

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        if self._calibrated is None:
            raise RuntimeError("Calibrator.fit first")
        return self._calibrated.predict_proba(probabilities)


def adjust_to_priors(
    calibrated: np.ndarray, reference_priors: np.ndarray, max_iter: int = 300, tol: float = 1e-7
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities re-weighted to the window's own class priors, estimated by EM (Saerens,
    Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a priori
    probabilities"): under a label-prior shift ``P(text | label)`` holds but ``P(label | text)``
    moves with the priors, so probabilities calibrated on the reference over-credit classes that
    no longer arrive. Returns the adjusted probabilities and the estimated priors."""
    base = np.clip(np.asarray(reference_priors, dtype=np.float64), 1e-12, None)
    priors = base.copy()
    adjusted = calibrated
    for _ in range(max_iter):
        weighted = calibrated * (priors / base)
        total = weighted.sum(axis=1, keepdims=True)
        adjusted = np.divide(weighted, total, out=np.full_like(weighted, 1.0 / weighted.shape[1]), where=total > 0)
        new = adjusted.mean(axis=0)
        done = np.abs(new - priors).max() < tol
        priors = new
        if done:
            break
    return adjusted, priors


@dataclasses.dataclass
class Interval:
    value: float
    low: float
    high: float


@dataclasses.dataclass
class Estimate:
    rows: int
    metrics: dict[str, Interval]
    per_class: dict[str, dict[str, Interval]]  # class -> precision/recall -> interval
    expected_share: dict[str, float]  # class -> expected share of true labels in the window
    expected_confusion: Optional[list[list[float]]]  # [true][predicted]; small class counts only

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def gate_metrics(confusions: np.ndarray, positive: Optional[int]) -> dict[str, np.ndarray]:
    """The gate's headline metrics (``components/metrics.py`` ``ClassificationStats``) for a
    stack of confusion matrices ``[draws, true, predicted]`` at once, and per-class precision and
    recall ``[draws, k]``. Precision of a class never predicted is 0 in the headline (as the gate
    counts it) and NaN per class; recall of a class absent from the labels is NaN."""
    tp = np.diagonal(confusions, axis1=1, axis2=2)
    predicted = confusions.sum(axis=1)
    support = confusions.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1e-300), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1e-300), np.nan)
        f1 = np.where(np.isnan(recall), np.nan, np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"accuracy": tp.sum(axis=1) / confusions.sum(axis=(1, 2))}
    present = (predicted > 0) | (support > 0)
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        if positive is not None:
            out[name] = values[:, positive]
        else:
            keep = present & ~np.isnan(values)
            counted = keep.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(counted > 0, np.where(keep, values, 0.0).sum(axis=1) / np.maximum(counted, 1), np.nan)
    empty = confusions.sum(axis=(1, 2)) == 0
    for name in ("accuracy", "precision", "recall", "f1"):
        out[name] = np.where(empty, np.nan, out[name])
    out["class_precision"] = np.where(predicted > 0, precision, np.nan)
    out["class_recall"] = recall
    return out


def estimate(
    calibrated: np.ndarray,
    predicted: np.ndarray,
    classes: Sequence[str],
    positive_label: Optional[str],
    *,
    interval: float = 0.95,
    draws: int = 200,
    seed: int = 0,
) -> Estimate:
    """Estimated metrics of a window from its calibrated probabilities ``[n, k]`` and the model's
    decisions ``predicted`` (class indices, ``n``)."""
    n, k = calibrated.shape
    if n == 0:
        raise ValueError("no rows to estimate on")
    classes = tuple(classes)
    predicted = np.asarray(predicted, dtype=np.int64)
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(calibrated, axis=1)
    cdf[:, -1] = 1.0 + 1e-12
    tail = (1.0 - interval) / 2
    confusions = np.empty((draws, k, k), dtype=np.float64)
    for b in range(draws):
        labels = (cdf < rng.random(n)[:, None]).sum(axis=1)
        confusions[b] = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    positive = None
    if k == 2:  # the gate's positive class: the one named, else the rarer one
        positive = classes.index(positive_label) if positive_label in classes else int(np.argmin(calibrated.sum(axis=0)))
    drawn = gate_metrics(confusions, positive)

    def summarise(samples: np.ndarray) -> Interval:
        a = np.asarray(samples, dtype=np.float64)
        a = a[~np.isnan(a)]
        if not len(a):
            return Interval(math.nan, math.nan, math.nan)
        return Interval(float(a.mean()), float(np.quantile(a, tail)), float(np.quantile(a, 1 - tail)))

    metrics = {m: summarise(drawn[m]) for m in ESTIMATED_METRICS}
    # accuracy: exact expectation and the analytical interval of a mean of Bernoullis
    p = calibrated[np.arange(n), predicted]
    mean = float(p.mean())
    from scipy.stats import norm

    z = float(norm.ppf(1 - tail))
    half = z * math.sqrt(float((p * (1 - p)).sum())) / n
    metrics["accuracy"] = Interval(mean, max(0.0, mean - half), min(1.0, mean + half))
    per_class = {
        c: {"precision": summarise(drawn["class_precision"][:, j]), "recall": summarise(drawn["class_recall"][:, j])}
        for j, c in enumerate(classes)
    }
    expected_share = {c: float(s) for c, s in zip(classes, calibrated.mean(axis=0))}
    confusion = None
    if k <= 20:
        onehot = np.zeros((n, k))
        onehot[np.arange(n), predicted] = 1.0
        confusion = (calibrated.T @ onehot).tolist()
    return Estimate(n, metrics, per_class, expected_share, confusion)
