"""Performance estimated without labels: confidence-based performance estimation (CBPE).

NannyML's method, on scikit-learn (NannyML itself needs pyarrow >= 13 and TFX 1.16 pins pyarrow
< 11, so the two cannot share an environment; see docs/monitoring.md):

1. **Calibrate on the reference.** The reference is the model's predictions on the reference
   run's evaluation split, whose true labels are known. scikit-learn's
   ``CalibratedClassifierCV(cv="prefit")`` fits one isotonic (or sigmoid) calibrator per class,
   one-vs-rest, on the model's probability for that class, and normalises the calibrated row
   (two classes: one calibrator on the second class); or one temperature for all classes; or
   (``auto``) the one of the three with the lowest cross-validated log loss; optionally followed
   by a top-label step (``Calibrator``).
2. **Expected confusion matrix of the window.** With calibrated probabilities ``q_i``, text ``i``
   predicted as ``j`` (the model's argmax) is truly of class ``t`` with probability ``q_i[t]``:
   ``E[C[t, j]] = sum over i predicted j of q_i[t]``. Expected accuracy is ``mean_i q_i[pred_i]``.
3. **Metrics and intervals.** Precision, recall and F1 are not linear in the confusion matrix, so
   labels are drawn ``draws`` times from ``q`` and the gate's own definitions
   (``components/metrics.py``: argmax decision, macro over the classes present, two classes: the
   positive class) are applied to each draw; the estimate is the mean over draws. The interval
   is the metric on this *traffic*: the central ``interval`` share over windows whose texts are
   resampled before their labels are drawn. Accuracy's is analytical (binomial around the mean
   calibrated probability of the decision). ``falls_below`` holds an estimate to a threshold.

Under a label-prior shift (the prediction signal fired, or the likelihood-ratio test of
``prior_shift_test`` rejects: some classes arrive far more or less often than in the reference)
the calibrated probabilities are first re-weighted to the window's priors, estimated by EM
(``adjust_to_priors``); ``estimate.adjust_priors`` chooses when.

The intervals cover the window's sampling and the randomness of the labels given calibrated
probabilities; they do not cover a calibration that no longer holds (a window of another domain, where ``P(label | text)``
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


CALIBRATION_METHODS = ("isotonic", "sigmoid", "temperature")
# probabilities are clipped here before the log loss: an isotonic calibrator outputs exact zeros
LOG_LOSS_FLOOR = 1e-6


class _Temperature:
    """Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks"): one
    parameter ``T`` for all classes, ``softmax(log p / T)``, fitted by the log loss. It keeps the
    model's argmax and the order of its probabilities; with few reference texts per class it
    has far less to estimate than a calibrator per class."""

    def __init__(self) -> None:
        self.temperature = 1.0

    def fit(self, probabilities: np.ndarray, y: np.ndarray) -> "_Temperature":
        from scipy.optimize import minimize_scalar
        from scipy.special import logsumexp

        logits = np.log(np.clip(probabilities, 1e-12, 1.0))
        rows = np.arange(len(y))

        def loss(log_t: float) -> float:
            scaled = logits / math.exp(log_t)
            return float(-(scaled[rows, y] - logsumexp(scaled, axis=1)).mean())

        self.temperature = math.exp(minimize_scalar(loss, bounds=(-4.0, 4.0), method="bounded").x)
        return self

    def predict_proba(self, probabilities: np.ndarray) -> np.ndarray:
        scaled = np.log(np.clip(probabilities, 1e-12, 1.0)) / self.temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        out = np.exp(scaled)
        return out / out.sum(axis=1, keepdims=True)


def _fit_method(method: str, probabilities: np.ndarray, y: np.ndarray, n_classes: int, top_label: bool) -> Any:
    """A fitted calibrator with ``predict_proba``: with ``top_label``, the top-label calibration
    (``_TopLabel``, no per-class step); else temperature scaling, or scikit-learn's
    ``CalibratedClassifierCV(cv="prefit")`` (isotonic or sigmoid, one per class, one-vs-rest)."""
    if top_label:
        return _TopLabel().fit(probabilities, y)
    if method == "temperature":
        return _Temperature().fit(probabilities, y)
    from sklearn.calibration import CalibratedClassifierCV

    return CalibratedClassifierCV(_Scores(n_classes), method=method, cv="prefit").fit(probabilities, y)


class _TopLabel:
    """Top-label calibration: the probability of the model's own decision is replaced by
    ``P(correct | confidence)``, an isotonic regression of "the decision was right" on the model's
    confidence over all reference rows at once (not ~100 per class), and the other classes share
    the rest in the model's own proportions. The expected accuracy CBPE reports is exactly the
    mean of that probability; isotonic regression keeps the reference's own accuracy as the mean
    of its fit. The rest follows the model, not a per-class isotonic calibration: those output
    exact zeros for small probabilities, and a class at zero can never receive a text when the
    probabilities are re-weighted to a window's priors (a confident error stays "right" when its
    true class is the only one arriving; twenty_newsgroups two-class windows: +5.1 points)."""

    def __init__(self) -> None:
        self._correct: Any = None

    def fit(self, probabilities: np.ndarray, y: np.ndarray) -> "_TopLabel":
        from sklearn.isotonic import IsotonicRegression

        right = (probabilities.argmax(axis=1) == y).astype(np.float64)
        self._correct = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probabilities.max(axis=1), right)
        return self

    def predict_proba(self, probabilities: np.ndarray) -> np.ndarray:
        q = np.array(probabilities, dtype=np.float64)
        n, k = q.shape
        rows, top = np.arange(n), probabilities.argmax(axis=1)
        correct = np.clip(self._correct.predict(probabilities.max(axis=1)), 0.0, 1.0)
        q[rows, top] = 0.0
        rest = q.sum(axis=1)
        spread = np.divide(q, rest[:, None], out=np.full_like(q, 1.0 / max(1, k - 1)), where=rest[:, None] > 0)
        spread[rows, top] = 0.0
        out = spread * (1.0 - correct)[:, None]
        out[rows, top] = correct
        return out


def log_loss(calibrated: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log probability of the true class (clipped at ``LOG_LOSS_FLOOR``)."""
    return float(-np.log(np.clip(calibrated[np.arange(len(y)), y], LOG_LOSS_FLOOR, 1.0)).mean())


def cross_validated_log_loss(
    probabilities: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    methods: Sequence[str] = CALIBRATION_METHODS,
    *,
    top_label: bool = False,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Each method's log loss on reference rows it was not fitted on: ``folds`` seeded folds, each
    calibrator fitted on the other folds (the same folds for every method)."""
    order = np.random.default_rng(seed).permutation(len(y))
    parts = [part for part in np.array_split(order, min(folds, len(y))) if len(part)]
    out: dict[str, float] = {}
    for method in methods:
        losses = []
        for f, held in enumerate(parts):
            fit_rows = np.concatenate([part for g, part in enumerate(parts) if g != f])
            fitted = _fit_method(method, probabilities[fit_rows], y[fit_rows], n_classes, top_label)
            losses.append(log_loss(fitted.predict_proba(probabilities[held]), y[held]) * len(held))
        out[method] = float(sum(losses) / len(y))
    return out


def class_indices(targets: Sequence[str], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(a mask of the ``targets`` that are one of ``classes``, those targets' class indices)."""
    index = {c: i for i, c in enumerate(classes)}
    known = np.array([t in index for t in targets], dtype=bool)
    return known, np.array([index[t] for t, k in zip(targets, known) if k], dtype=np.int64)


class Calibrator:
    """Calibration of the model's probabilities, fitted on the reference.

    ``method``: ``isotonic`` or ``sigmoid`` (scikit-learn, one calibrator per class), ``temperature``
    (one temperature for all classes), or ``auto``: the one of those three with the lowest
    cross-validated log loss on the reference (``cv_log_loss``), refitted on all of it.
    ``top_label`` instead calibrates the probability of the model's decision directly
    (``_TopLabel``; ``method`` is then not used, ``chosen`` is ``top-label``): with ~100 reference
    texts per class (20 classes, 2,000 texts) per-class isotonic steps, renormalised, put the
    expected accuracy 2-3 points below the reference's own; one regression on all rows does not."""

    def __init__(self, classes: Sequence[str], method: str = "isotonic", *, top_label: bool = False, folds: int = 5, seed: int = 0):
        if method != "auto" and method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration {method!r} is none of auto, {', '.join(CALIBRATION_METHODS)}")
        self.classes = list(classes)
        self.method = method
        self.top_label = top_label
        self.folds = folds
        self.seed = seed
        self.chosen: Optional[str] = None  # the method fitted (auto: the one cross-validation picked)
        self.cv_log_loss: dict[str, float] = {}
        self._calibrated: Any = None

    def fit(self, probabilities: np.ndarray, targets: Sequence[str]) -> "Calibrator":
        known, y = class_indices(targets, self.classes)
        if known.sum() < 2:
            raise ValueError("the reference has fewer than two labelled rows with a class the model knows")
        probabilities = probabilities[known]
        self.chosen = "top-label" if self.top_label else self.method
        if self.method == "auto" and not self.top_label:
            self.cv_log_loss = cross_validated_log_loss(
                probabilities, y, len(self.classes), top_label=self.top_label, folds=self.folds, seed=self.seed
            )
            self.chosen = min(CALIBRATION_METHODS, key=lambda m: (self.cv_log_loss[m], CALIBRATION_METHODS.index(m)))
        self._calibrated = _fit_method(self.chosen, probabilities, y, len(self.classes), self.top_label)
        return self

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        if self._calibrated is None:
            raise RuntimeError("Calibrator.fit first")
        return self._calibrated.predict_proba(probabilities)


def adjust_to_priors(
    calibrated: np.ndarray,
    reference_priors: np.ndarray,
    max_iter: int = 300,
    tol: float = 1e-7,
    support: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities re-weighted to the window's own class priors, estimated by EM (Saerens,
    Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a priori
    probabilities"): under a label-prior shift ``P(text | label)`` holds but ``P(label | text)``
    moves with the priors, so probabilities calibrated on the reference over-credit classes that
    no longer arrive. ``support``: a mask of the classes allowed a prior above zero (default all).
    Returns the adjusted probabilities and the estimated priors."""
    base = np.clip(np.asarray(reference_priors, dtype=np.float64), 1e-12, None)
    allowed = np.ones(len(base), dtype=bool) if support is None else np.asarray(support, dtype=bool)
    priors = np.where(allowed, base, 0.0)
    priors = priors / priors.sum()
    adjusted = calibrated
    for _ in range(max_iter):
        weighted = calibrated * (priors / base)
        total = weighted.sum(axis=1, keepdims=True)
        adjusted = np.divide(weighted, total, out=np.where(allowed, 1.0 / allowed.sum(), 0.0) * np.ones_like(weighted), where=total > 0)
        new = adjusted.mean(axis=0)
        done = np.abs(new - priors).max() < tol
        priors = new
        if done:
            break
    return adjusted, priors


def _log_likelihood(calibrated: np.ndarray, priors: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Each row's likelihood ratio of the window priors ``priors`` against the reference's ``base``."""
    return np.log(np.clip((calibrated * (priors / base)).sum(axis=1), 1e-300, None))


def prune_support(
    calibrated: np.ndarray, reference_priors: np.ndarray, level: float, rounds: int = 3, priors: Optional[np.ndarray] = None
) -> np.ndarray:
    """The classes the window is evidenced to contain: EM's maximum-likelihood priors never reach
    zero, so every class that stopped arriving keeps the share its few confident errors give it
    (twenty_newsgroups two-class windows: 4-15% of the priors on the 18 absent classes, whose
    texts then count as answered right). A class is dropped when setting its prior to zero (the
    others scaled up) lowers twice the log-likelihood by less than ``level`` (a chi-squared
    quantile on one degree of freedom); EM is then run again on the classes kept. ``priors``: EM's
    priors on every class, where the caller has them already."""
    base = np.clip(np.asarray(reference_priors, dtype=np.float64), 1e-12, None)
    support = np.ones(len(base), dtype=bool)
    if priors is None:
        _, priors = adjust_to_priors(calibrated, base, support=support)
    for _ in range(rounds):
        ratio = (calibrated * (priors / base)).sum(axis=1)
        full = np.log(np.clip(ratio, 1e-300, None))
        kept = support.copy()
        for j in np.flatnonzero(support):
            without = (ratio - calibrated[:, j] * priors[j] / base[j]) / max(1.0 - priors[j], 1e-12)
            drop = 2.0 * float((full - np.log(np.clip(without, 1e-300, None))).sum())
            kept[j] = drop >= level
        if kept.all() or not kept.any() or (kept == support).all():
            break
        support = kept
        _, priors = adjust_to_priors(calibrated, base, support=support)
    return support


@dataclasses.dataclass
class PriorShift:
    """The window's class priors estimated by EM, and the likelihood-ratio test of "the priors are
    the reference's" against them (Saerens et al. 2002, section 3): ``statistic`` is
    ``2 * sum_i log(sum_k q_ik * w_k / r_k)`` for calibrated probabilities ``q``, reference priors
    ``r`` and window priors ``w``; without a prior shift it follows a chi-squared law with
    ``k - 1`` degrees of freedom, whose upper tail gives ``p_value`` (``prior_shift_noise`` gives
    the level it reaches by chance against a reference of the reference's size). ``adjusted`` and
    ``priors`` are re-estimated on ``support``, the classes ``prune_support`` keeps."""

    adjusted: np.ndarray  # the probabilities re-weighted to the window's priors
    priors: np.ndarray
    statistic: float
    p_value: float
    support: np.ndarray  # bool per class: allowed a prior above zero


def priors_meaning(classes: Sequence[str], window: np.ndarray, reference: np.ndarray, top: int = 5) -> str:
    """The classes whose estimated share of the window's true labels moved most, against the
    reference's share."""
    order = sorted(range(len(classes)), key=lambda j: (-abs(window[j] - reference[j]), str(classes[j])))
    shown = [f"{classes[j]!r} {100 * window[j]:.1f}% (reference {100 * reference[j]:.1f}%)" for j in order[:top]]
    more = f", {len(classes) - top} more classes" if len(classes) > top else ""
    return "the texts arriving are estimated to be " + ", ".join(shown) + more


def _statistic(calibrated: np.ndarray, base: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray, float]:
    """EM's adjusted probabilities and priors, and the likelihood-ratio statistic against ``base``."""
    adjusted, priors = adjust_to_priors(calibrated, base, tol=tol)
    return adjusted, priors, max(0.0, float(2.0 * _log_likelihood(calibrated, priors, base).sum()))


def prior_shift_test(calibrated: np.ndarray, reference_priors: np.ndarray, support_p: Optional[float] = 0.01) -> PriorShift:
    """``support_p``: the level of ``prune_support`` (None: every class keeps a prior)."""
    from scipy.stats import chi2

    base = np.clip(np.asarray(reference_priors, dtype=np.float64), 1e-12, None)
    adjusted, priors, statistic = _statistic(calibrated, base)
    support = np.ones(len(base), dtype=bool)
    if support_p is not None and len(base) > 2:
        support = prune_support(calibrated, base, float(chi2.isf(support_p, 1)), priors=priors)
        if not support.all():
            adjusted, priors = adjust_to_priors(calibrated, base, support=support)
    return PriorShift(adjusted, priors, statistic, float(chi2.sf(statistic, max(1, len(base) - 1))), support)


NOISE_MAX_ROWS = 5000  # prior_shift_noise measures windows of at most this many rows


def prior_shift_noise(
    reference_calibrated: np.ndarray, size: int, quantile: float = 0.99, draws: int = 100, seed: int = 0, tol: float = 1e-5
) -> float:
    """The likelihood-ratio statistic an unshifted window of ``size`` rows reaches by chance: the
    ``quantile`` over ``draws`` pairs of resamples of the reference (with replacement), one of the
    reference's size for the priors, one of ``size`` rows for the window. Both sides vary: with
    77 classes a reference of 2,000 texts holds ~26 of each, so its priors are themselves off by
    ~20%, which the chi-squared law of ``prior_shift_test`` does not know (banking77: 7 of 20
    unshifted windows below p = 0.01). EM stops at ``tol`` (the statistic then moves by < 0.01).
    Windows above ``NOISE_MAX_ROWS`` rows are measured at that size and the level scaled by
    ``size / NOISE_MAX_ROWS``: the reference's own error, and a real shift alike, grow the
    statistic in proportion to the rows, so a large window is judged as one of that size is."""
    rng = np.random.default_rng(seed)
    n_ref = len(reference_calibrated)
    rows = max(1, min(int(size), NOISE_MAX_ROWS))
    stats = []
    for _ in range(draws):
        base = np.clip(reference_calibrated[rng.integers(0, n_ref, size=n_ref)].mean(axis=0), 1e-12, None)
        window = reference_calibrated[rng.integers(0, n_ref, size=rows)]
        stats.append(_statistic(window, base, tol)[2])
    return float(np.quantile(stats, quantile)) * max(1.0, size / rows)


def reference_recall(probabilities: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: the reference's labelled rows, and the share of them the model decided right
    (a class's recall does not move under a label-prior shift)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    hits = np.bincount(y[probabilities.argmax(axis=1) == y], minlength=n_classes).astype(np.float64)
    return counts, np.divide(hits, counts, out=np.zeros(n_classes), where=counts > 0)


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


def falls_below(value: Interval, minimum: float, rule: str = "interval") -> bool:
    """Whether an estimate is below its threshold: ``interval``, the whole interval lies below it
    (the model's metric on this traffic is below the threshold, beyond what a window of this size
    varies by chance; at a 95% interval, a model exactly at the threshold alerts in 2.5% of
    windows); ``value``: the estimate itself is below it."""
    bound = value.high if rule == "interval" else value.value
    return not math.isnan(bound) and bound < minimum


def estimate(
    calibrated: np.ndarray,
    predicted: np.ndarray,
    classes: Sequence[str],
    positive_label: Optional[str],
    *,
    interval: float = 0.95,
    draws: int = 200,
    seed: int = 0,
    recall_prior: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> Estimate:
    """Estimated metrics of a window from its calibrated probabilities ``[n, k]`` and the model's
    decisions ``predicted`` (class indices, ``n``).

    ``recall_prior`` (``reference_recall``: per class, labelled reference rows and recall), for
    probabilities re-weighted to the window's priors: accuracy is then ``sum_j w_j * recall_j``
    over the window's estimated priors ``w``, each class's recall the window's expected one
    (its expected hits over its expected texts) pooled with the reference's by their counts.
    Recall is what a label-prior shift leaves alone; a class with a few expected texts in the
    window gets its recall from the reference rather than from those few."""
    n, k = calibrated.shape
    if n == 0:
        raise ValueError("no rows to estimate on")
    classes = tuple(classes)
    predicted = np.asarray(predicted, dtype=np.int64)
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(calibrated, axis=1)
    cdf[:, -1] = 1.0 + 1e-12
    tail = (1.0 - interval) / 2
    positive = None
    if k == 2:  # the gate's positive class: the one named, else the rarer one
        positive = classes.index(positive_label) if positive_label in classes else int(np.argmin(calibrated.sum(axis=0)))

    def drawn(resample: bool) -> dict[str, np.ndarray]:
        confusions = np.empty((draws, k, k), dtype=np.float64)
        for b in range(draws):
            # resample: another window of this traffic (its texts drawn again, then their labels)
            rows = rng.integers(0, n, size=n) if resample else np.arange(n)
            labels = (cdf[rows] < rng.random(n)[:, None]).sum(axis=1)
            confusions[b] = np.bincount(labels * k + predicted[rows], minlength=k * k).reshape(k, k)
        return gate_metrics(confusions, positive)

    # the value: this window's texts, labels drawn; the interval: windows of this traffic
    window, traffic = drawn(False), drawn(True)

    def summarise(name: str, column: Optional[int] = None) -> Interval:
        def values(d: dict[str, np.ndarray]) -> np.ndarray:
            a = np.asarray(d[name] if column is None else d[name][:, column], dtype=np.float64)
            return a[~np.isnan(a)]

        mean, spread = values(window), values(traffic)
        if not len(mean):
            return Interval(math.nan, math.nan, math.nan)
        if not len(spread):
            spread = mean
        return Interval(float(mean.mean()), float(np.quantile(spread, tail)), float(np.quantile(spread, 1 - tail)))

    metrics = {m: summarise(m) for m in ESTIMATED_METRICS}
    # accuracy: exact expectation; a text of this traffic is answered right with probability
    # ``mean`` (its texts resampled, then its labels drawn), so the interval is the binomial one
    p = calibrated[np.arange(n), predicted]
    mean = float(p.mean())
    if recall_prior is not None:
        counts, recall = (np.asarray(a, dtype=np.float64) for a in recall_prior)
        mass = calibrated.sum(axis=0)
        hits = np.bincount(predicted, weights=p, minlength=k)
        pooled = np.divide(hits + counts * recall, mass + counts, out=np.zeros(k), where=mass + counts > 0)
        mean = float(np.clip((calibrated.mean(axis=0) * pooled).sum(), 0.0, 1.0))
    from scipy.stats import norm

    z = float(norm.ppf(1 - tail))
    half = z * math.sqrt(mean * (1 - mean) / n)
    metrics["accuracy"] = Interval(mean, max(0.0, mean - half), min(1.0, mean + half))
    per_class = {
        c: {"precision": summarise("class_precision", j), "recall": summarise("class_recall", j)}
        for j, c in enumerate(classes)
    }
    expected_share = {c: float(s) for c, s in zip(classes, calibrated.mean(axis=0))}
    confusion = None
    if k <= 20:
        onehot = np.zeros((n, k))
        onehot[np.arange(n), predicted] = 1.0
        confusion = (calibrated.T @ onehot).tolist()
    return Estimate(n, metrics, per_class, expected_share, confusion)
