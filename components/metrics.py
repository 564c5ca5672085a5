"""Classification metrics for the TFMA gate, computed on the argmax decision.

TFMA's built-in precision/recall/F1 binarize each class at a 0.5 probability threshold, which
for a softmax over several classes is not what anyone means by "precision" (a 3-class model
whose top probability is often below 0.5 scores precision NaN and recall 0). These metrics use
the predicted label (argmax) instead, as scikit-learn does:

- accuracy over all examples;
- precision, recall, F1 and one-vs-rest ROC AUC per class;
- headline values: for two classes, those of the *positive* class (``positive_label``, or the
  rarer class of the evaluation labels when unset); otherwise the macro average over classes.

One combiner accumulates a confusion matrix and per-class score histograms; every metric below
derives from it (TFMA runs the shared combiner once). Thresholds in the EvalConfig apply to the
headline metrics like to any built-in metric.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Mapping, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from textops import features

AUC_BINS = 10_000
_STATS_NAME = "_textops_classification_stats"
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


def _decode(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    if isinstance(value, (np.floating, float)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _select(value: Any, key: str) -> Any:
    if key and isinstance(value, Mapping) and key in value:
        return value[key]
    return value


class _StatsCombiner(beam.CombineFn):
    def __init__(self, key: metric_types.MetricKey, example_weighted: bool):
        self._key = key
        self._example_weighted = example_weighted

    def create_accumulator(self) -> ClassificationStats:
        return ClassificationStats()

    def add_input(self, acc: ClassificationStats, element: metric_types.StandardMetricInputs) -> ClassificationStats:
        prediction = _select(_select(element.prediction, self._key.model_name), self._key.output_name)
        label = _select(_select(element.label, self._key.model_name), self._key.output_name)
        if not isinstance(prediction, Mapping):
            raise ValueError(
                "textops metrics need the model's output dict (probabilities/scores and classes); "
                "do not set ModelSpec.prediction_key"
            )
        probabilities = prediction.get(features.OUTPUT_SCORES, prediction.get(features.OUTPUT_PROBABILITIES))
        classes = prediction.get(features.OUTPUT_CLASSES)
        if probabilities is None or classes is None:
            raise ValueError(f"model outputs {sorted(prediction)} lack probabilities and classes")
        probabilities = np.asarray(probabilities, dtype=np.float64)
        classes = np.asarray(classes)
        labels = np.asarray(label).reshape(-1)
        weights = np.ones(labels.shape[0])
        if self._example_weighted and element.example_weight is not None:
            weights = np.broadcast_to(np.asarray(element.example_weight, dtype=np.float64).reshape(-1), labels.shape)
        if probabilities.ndim == 1:
            probabilities = probabilities[np.newaxis, :]
            classes = classes.reshape(1, -1)
        for i in range(probabilities.shape[0]):
            names = tuple(_decode(c) for c in classes[i])
            acc.add(names, probabilities[i], _decode(labels[i]), float(weights[i]))
        return acc

    def merge_accumulators(self, accumulators: Iterable[ClassificationStats]) -> ClassificationStats:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for acc in accumulators:
            result = result.merge(acc)
        return result

    def extract_output(self, acc: ClassificationStats) -> Dict[metric_types.MetricKey, Any]:
        return {self._key: acc}


def _stats_computation(model_name: str, output_name: str, example_weighted: bool):
    key = metric_types.MetricKey(
        name=_STATS_NAME, model_name=model_name, output_name=output_name, example_weighted=example_weighted
    )
    return key, metric_types.MetricComputation(
        keys=[key], preprocessors=None, combiner=_StatsCombiner(key, example_weighted)
    )


def _headline_computations(
    name: str,
    positive_label: Optional[str] = None,
    eval_config=None,
    model_name: str = "",
    output_name: str = "",
    sub_key=None,
    aggregation_type=None,
    class_weights=None,
    example_weighted: bool = False,
    **_unused,
) -> metric_types.MetricComputations:
    stats_key, stats = _stats_computation(model_name, output_name, example_weighted)
    key = metric_types.MetricKey(
        name=name, model_name=model_name, output_name=output_name, sub_key=sub_key, example_weighted=example_weighted
    )
    metric = name.split("/")[-1]

    def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
        return {key: metrics[stats_key].headline(metric, positive_label)}

    result.__name__ = f"_textops_{name}_result"
    return [stats, metric_types.DerivedMetricComputation(keys=[key], result=result)]


def _per_class_computations(
    name: str,
    eval_config=None,
    model_name: str = "",
    output_name: str = "",
    sub_key=None,
    aggregation_type=None,
    class_weights=None,
    example_weighted: bool = False,
    **_unused,
) -> metric_types.MetricComputations:
    stats_key, stats = _stats_computation(model_name, output_name, example_weighted)

    def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
        out = {}
        for class_name, values in metrics[stats_key].per_class().items():
            for metric, value in values.items():
                out[
                    metric_types.MetricKey(
                        name=f"{name}/{metric}/{class_name}",
                        model_name=model_name,
                        output_name=output_name,
                        example_weighted=example_weighted,
                    )
                ] = value
        return out

    result.__name__ = f"_textops_{name}_result"
    return [stats, metric_types.DerivedMetricComputation(keys=[], result=result)]


class _Headline(metric_types.Metric):
    NAME = ""

    def __init__(self, name: Optional[str] = None, positive_label: Optional[str] = None):
        super().__init__(
            metric_util.merge_per_key_computations(_headline_computations),
            name=name or self.NAME,
            positive_label=positive_label,
        )


class TextAccuracy(_Headline):
    NAME = "accuracy"


class TextPrecision(_Headline):
    NAME = "precision"


class TextRecall(_Headline):
    NAME = "recall"


class TextF1(_Headline):
    NAME = "f1"


class TextAUC(_Headline):
    NAME = "auc"


class TextPerClass(metric_types.Metric):
    """Per-class precision, recall, F1, AUC and support as ``per_class/<metric>/<class>``."""

    def __init__(self, name: str = "per_class"):
        super().__init__(metric_util.merge_per_key_computations(_per_class_computations), name=name)


# Class names must not collide with TFMA's registered metrics (tfma.metrics.Precision, Recall,
# AUC, ...): TFMA resolves a MetricConfig by class name first and would silently ignore `module`.
HEADLINE_CLASSES = {
    "accuracy": TextAccuracy,
    "precision": TextPrecision,
    "recall": TextRecall,
    "f1": TextF1,
    "auc": TextAUC,
}
