"""Evidently (0.7 API) reports: drift of the window against the reference, and classification
quality on the window's labelled records.

Drift is measured per column with Evidently's stat tests (``ValueDrift``), and summarised as
the share of drifted columns (``DriftedColumnsCount``); ``text`` uses Evidently's domain
classifier (``abs_text_content_drift``: ROC AUC of a TF-IDF + linear model that tells window
texts from reference texts; 0.5 means indistinguishable).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import pandas as pd

from textops.monitoring.config import DriftSettings

TEXT_COLUMNS = ("text",)
NUMERIC_COLUMNS = ("length", "oov_share", "non_letter_share", "confidence")
CATEGORICAL_COLUMNS = ("prediction",)
# Stat tests whose score is a p-value (drift when below the threshold); every other method
# allowed in the settings is a distance (drift when above).
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z", "g_test", "fisher_exact", "mannw", "t_test", "anderson", "cramer_von_mises", "epps_singleton"})


@dataclasses.dataclass
class ColumnDrift:
    column: str
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclasses.dataclass
class DriftResult:
    columns: dict[str, ColumnDrift]
    drifted_share: float
    dataset_drift: bool
    rows_reference: int  # distinct texts compared (after the max_rows sample)
    rows_current: int
    snapshot: Any  # evidently Snapshot

    @property
    def text_drift(self) -> Optional[ColumnDrift]:
        return self.columns.get("text")


def _method_for(column: str, settings: DriftSettings) -> tuple[str, float]:
    if column in TEXT_COLUMNS:
        return settings.text_method, settings.text_threshold
    if column in CATEGORICAL_COLUMNS:
        return settings.cat_method, settings.cat_threshold
    if column == "confidence":
        return settings.num_method, settings.confidence_threshold
    return settings.num_method, settings.num_threshold


def is_drifted(score: float, method: str, threshold: float) -> bool:
    return bool(score < threshold if method in P_VALUE_METHODS else score > threshold)


def stat_score(reference: pd.Series, current: pd.Series, method: str, categorical: bool) -> float:
    """Evidently's stat test ``method`` (the one the preset runs) on two columns."""
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    return float(get_registered_stattest(method, kind)(reference, current, kind, None).drift_score)


def _jensenshannon_codes(reference: np.ndarray, current: np.ndarray, categories: int) -> float:
    """Evidently's ``jensenshannon`` on categorical codes (the same scipy distance over the
    categories' shares; a category absent on both sides adds nothing), without pandas per call:
    the noise level runs it hundreds of times."""
    from scipy.spatial import distance

    ref = np.bincount(reference, minlength=categories) / len(reference)
    cur = np.bincount(current, minlength=categories) / len(current)
    return float(distance.jensenshannon(ref, cur))


def noise_level(
    reference: pd.Series, size: int, method: str, quantile: float, draws: int, seed: int, categorical: bool
) -> tuple[float, int]:
    """The score a window of ``size`` rows reaches from sampling alone: ``draws`` times, the stat
    test compares a random sample of ``size`` reference rows with the rest of the reference;
    returns the ``quantile`` of those scores (the lower quantile for p-value tests) and the sample
    size used (at most half the reference)."""
    values = reference.dropna().reset_index(drop=True)
    size = max(1, min(size, len(values) // 2))
    rng = np.random.default_rng(seed)
    scores = []
    fast = categorical and method == "jensenshannon"
    codes, uniques = pd.factorize(values) if fast else (None, None)
    for _ in range(draws):
        picked = np.zeros(len(values), dtype=bool)
        picked[rng.choice(len(values), size=size, replace=False)] = True
        if fast:
            scores.append(_jensenshannon_codes(codes[~picked], codes[picked], len(uniques)))
        else:
            scores.append(stat_score(values[~picked], values[picked], method, categorical))
    q = 1.0 - quantile if method in P_VALUE_METHODS else quantile
    return float(np.quantile(scores, q)), size


def _definition(columns: list[str]) -> Any:
    from evidently import DataDefinition

    return DataDefinition(
        text_columns=[c for c in columns if c in TEXT_COLUMNS],
        numerical_columns=[c for c in columns if c in NUMERIC_COLUMNS],
        categorical_columns=[c for c in columns if c in CATEGORICAL_COLUMNS],
    )


def sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= max_rows else frame.sample(n=max_rows, random_state=seed)


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings) -> DriftResult:
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(settings.columns)
    # Distinct texts on both sides: a text repeated across the window (a popular query, a
    # retry) would otherwise land in both halves of the domain classifier's split and be
    # "recognised", flagging drift that is only repetition. The duplicate share is reported.
    ref = sample(reference.drop_duplicates("text"), settings.max_rows, settings.seed)[columns].reset_index(drop=True)
    cur = sample(current.drop_duplicates("text"), settings.max_rows, settings.seed)[columns].reset_index(drop=True)
    definition = _definition(columns)
    preset = DataDriftPreset(
        columns=columns,
        drift_share=settings.drift_share,
        text_method=settings.text_method,
        text_threshold=settings.text_threshold,
        num_method=settings.num_method,
        num_threshold=settings.num_threshold,
        cat_method=settings.cat_method,
        cat_threshold=settings.cat_threshold,
        per_column_threshold={"confidence": settings.confidence_threshold} if "confidence" in columns else None,
    )
    report = Report([preset])
    snapshot = report.run(Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition))
    scores: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    result: dict[str, ColumnDrift] = {}
    for column in columns:
        method, threshold = _method_for(column, settings)
        score = scores.get(column, float("nan"))
        result[column] = ColumnDrift(column, method, threshold, score, is_drifted(score, method, threshold))
    share = sum(c.drifted for c in result.values()) / len(result)
    return DriftResult(result, share, share >= settings.drift_share, len(ref), len(cur), snapshot)


def quality_report(reference: pd.DataFrame, labelled: pd.DataFrame, classes: list[str]) -> Any:
    """Evidently's classification preset: labelled window records vs the reference."""
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset

    definition = DataDefinition(
        classification=[MulticlassClassification(target="target", prediction_labels="prediction")],
        categorical_columns=["target", "prediction"],
    )
    cols = ["target", "prediction"]
    report = Report([ClassificationPreset()])
    return report.run(
        Dataset.from_pandas(labelled[cols].astype(str).reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference[cols].astype(str).reset_index(drop=True), data_definition=definition),
    )
