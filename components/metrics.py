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

from typing import Any, Dict, Iterable, Mapping, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from textops import features
from textops.components.classification import (  # noqa: F401 - re-exported for the TFMA metrics
    AUC_BINS,
    HEADLINE_METRICS,
    PER_CLASS_METRICS,
    ClassificationStats,
)

_STATS_NAME = "_textops_classification_stats"


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
