"""Monitor settings: what to compare (reference, log window), which checks run and their thresholds.

Declarative, like the pipeline's settings: a YAML file plus ``--set key=value`` overrides,
validated once at the entry point and passed down. Unknown keys are errors.

    reference: runs/demo                # a run directory, a saved reference, or a CSV (+ model)
    log: /var/log/textops/predictions   # prediction-log directory (or one file)
    window: {last: 24h}                 # or {since: ..., until: ...}, {max_records: 10000}
    feedback: labels.jsonl              # optional ground truth keyed by request_id
    drift: {text_threshold: 0.6, ...}
    quality: {min_labeled: 50, f1_min: 0.7, ...}
    estimate: {calibration: isotonic, ...}   # label-free performance estimate (CBPE)
    service: {error_rate_max: 0.02, p99_latency_ms_max: 500}
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from textops.errors import ExitCode, TextOpsError
from textops.config import ConfigError, StrictModel, load_model


class MonitorError(TextOpsError):
    """A problem the person running the monitor can fix; the message says what and how."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILED):
        super().__init__(message)
        self.exit_code = exit_code


_Section = StrictModel


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> Optional[float]:
    """``"15m"`` -> 900.0 seconds; ``"all"`` -> None (no time limit)."""
    if text.strip().lower() == "all":
        return None
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"window {text!r} is not a duration such as 30m, 24h, 7d (or 'all')")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_time(value: Any) -> Optional[float]:
    """Unix seconds from a number or an ISO-8601 string (UTC when no zone is given)."""
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, dt.datetime):
        stamp = value
    else:
        try:
            stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is neither unix seconds nor an ISO-8601 time (2026-11-28T10:00:00Z)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


class WindowSettings(_Section):
    """Which logged predictions form the window: a time range, then at most the newest N."""

    last: str = Field("24h", description="duration ending at `until` (30m, 24h, 7d) or 'all'")
    since: Optional[float] = Field(None, description="start (unix seconds or ISO time); overrides `last`")
    until: Optional[float] = Field(None, description="end (unix seconds or ISO time); default: now")
    max_records: Optional[int] = Field(None, ge=1, description="keep only the newest N records")
    min_records: int = Field(100, ge=1, description="fewer records than this: exit 3, no verdict")

    @field_validator("last")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Optional[float]:
        return parse_time(v)

    def bounds(self, now: float) -> tuple[Optional[float], float]:
        until = self.until if self.until is not None else now
        if self.since is not None:
            return self.since, until
        seconds = parse_duration(self.last)
        return (None if seconds is None else until - seconds), until


class DriftSettings(_Section):
    """Drift of the window against the reference, per column, with Evidently's stat tests.

    Columns: ``text`` (domain classifier: ROC AUC of a TF-IDF model telling window from
    reference), the text descriptors ``length``, ``oov_share``, ``non_letter_share``, and the
    model's outputs ``prediction`` (label distribution) and ``confidence`` (top probability).
    """

    enabled: bool = True
    text_method: Literal["abs_text_content_drift"] = "abs_text_content_drift"
    text_threshold: float = Field(0.6, gt=0.5, le=1.0, description="domain-classifier ROC AUC above which text drifted")
    num_method: Literal[
        "wasserstein", "psi", "kl_div", "jensenshannon", "hellinger", "ks", "mannw", "anderson", "cramer_von_mises"
    ] = "wasserstein"
    num_threshold: float = Field(0.2, gt=0.0, description="distance above which (p-value below which) a numeric column drifted")
    cat_method: Literal["jensenshannon", "psi", "kl_div", "hellinger", "chisquare", "z", "g_test"] = "jensenshannon"
    cat_threshold: float = Field(0.1, gt=0.0, le=1.0, description="distance above which (p-value below which) the label distribution drifted")
    columns: list[Literal["text", "length", "oov_share", "non_letter_share", "prediction", "confidence"]] = Field(
        default_factory=lambda: ["text", "length", "oov_share", "non_letter_share", "prediction", "confidence"],
        min_length=1,
    )
    confidence_threshold: float = Field(
        0.2, gt=0.0, description="distance (num_method) above which the confidence distribution drifted"
    )
    drift_share: float = Field(0.5, gt=0.0, le=1.0, description="dataset drift when this share of columns drifted")
    alert_on_text_drift: bool = Field(True, description="text drift alone fires the drift alert")
    alert_on_prediction_drift: bool = Field(True, description="predicted-label drift alone fires the drift alert")
    alert_on_confidence_drift: bool = Field(True, description="confidence drift alone fires the drift alert")
    noise_quantile: Optional[float] = Field(
        0.99,
        gt=0.5,
        lt=1.0,
        description="prediction and confidence alert alone only above this quantile of their score between "
        "reference samples of the window's size and the rest of the reference (sampling noise); null: off",
    )
    noise_draws: int = Field(200, ge=20, le=5000, description="reference samples drawn for the noise level")
    max_rows: int = Field(20_000, ge=100, description="drift tests use a seeded sample of at most this many rows")
    seed: int = 0


class QualitySettings(_Section):
    """Classification quality on the window's records whose true label was fed back."""

    enabled: bool = True
    min_labeled: int = Field(50, ge=1, description="fewer labelled records: quality is reported but never alerts")
    accuracy_min: Optional[float] = Field(None, ge=0.0, le=1.0)
    precision_min: Optional[float] = Field(None, ge=0.0, le=1.0)
    recall_min: Optional[float] = Field(None, ge=0.0, le=1.0)
    f1_min: Optional[float] = Field(0.5, ge=0.0, le=1.0)
    max_drop: Optional[float] = Field(
        0.1, ge=0.0, le=1.0, description="alert when a metric falls this far (absolute) below the reference's"
    )

    def minimums(self) -> dict[str, float]:
        pairs = {"accuracy": self.accuracy_min, "precision": self.precision_min, "recall": self.recall_min, "f1": self.f1_min}
        return {k: v for k, v in pairs.items() if v is not None}


class EstimateSettings(_Section):
    """Performance estimated without labels (confidence-based performance estimation, CBPE).

    The model's probabilities are calibrated on the reference (its predictions on the reference
    run's evaluation split, whose labels are known) with scikit-learn; on the window the calibrated
    probabilities give the expected confusion matrix, hence estimated accuracy, precision, recall
    and F1 (the gate's definitions) with intervals from labels drawn from those probabilities.
    """

    enabled: bool = True
    calibration: Literal["isotonic", "sigmoid", "temperature", "auto"] = Field(
        "isotonic", description="isotonic/sigmoid (scikit-learn, per class), temperature; auto: lowest cross-validated log loss on the reference"
    )
    top_label: bool = Field(
        True, description="calibrate the probability of the model's decision on all reference rows at once (calibration: then unused)"
    )
    adjust_priors: Literal["auto", "always", "never"] = Field(
        "auto", description="re-weight to the window's class priors (EM); auto: when the prediction signal fired or the prior-shift test rejects"
    )
    prior_shift_p: Optional[float] = Field(
        0.01, gt=0.0, lt=1.0, description="auto also re-weights when the likelihood-ratio test of the priors gives a p-value below this; null: off"
    )
    prior_shift_alert_p: Optional[float] = Field(
        1e-4, gt=0.0, lt=1.0, description="the prior-shift test alerts alone (drift:prior_shift) below this p-value; null: off"
    )
    noise_quantile: float = Field(
        0.99, gt=0.5, lt=1.0, description="the prior-shift test also needs its statistic above this quantile of unshifted resamples of the reference"
    )
    noise_draws: int = Field(100, ge=10, le=2000, description="resamples of the reference behind that noise level")
    prior_support_p: Optional[float] = Field(
        0.01, gt=0.0, lt=1.0, description="re-weighted: a class keeps a prior only if dropping it is rejected at this level; null: all keep one"
    )
    alert_when: Literal["interval", "value"] = Field(
        "interval", description="interval: the whole interval lies below the threshold; value: the estimate does"
    )
    interval: float = Field(0.95, gt=0.5, lt=1.0, description="coverage of the reported intervals")
    draws: int = Field(200, ge=20, le=5000, description="label draws behind the intervals")
    seed: int = 0
    accuracy_min: Optional[float] = Field(None, ge=0.0, le=1.0, description="default: the reference run's gate threshold")
    precision_min: Optional[float] = Field(None, ge=0.0, le=1.0, description="default: the reference run's gate threshold")
    recall_min: Optional[float] = Field(None, ge=0.0, le=1.0, description="default: the reference run's gate threshold")
    f1_min: Optional[float] = Field(None, ge=0.0, le=1.0, description="default: the reference run's gate threshold")

    def minimums(self) -> dict[str, float]:
        pairs = {"accuracy": self.accuracy_min, "precision": self.precision_min, "recall": self.recall_min, "f1": self.f1_min}
        return {k: v for k, v in pairs.items() if v is not None}


class ServiceSettings(_Section):
    """Errors and latency read from the log (the server's /metrics has the live view)."""

    enabled: bool = True
    error_rate_max: Optional[float] = Field(0.05, ge=0.0, le=1.0)
    p99_latency_ms_max: Optional[float] = Field(1000.0, gt=0.0)


class ExportSettings(_Section):
    """Where the verdict goes besides the report: Prometheus textfile and/or a Pushgateway, and
    an Evidently workspace (reports over time in `evidently ui`)."""

    textfile: Optional[Path] = Field(None, description="node_exporter textfile-collector .prom file")
    pushgateway: Optional[str] = Field(None, description="Pushgateway address, e.g. localhost:9091")
    job: str = Field("textops_monitor", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    workspace: Optional[Path] = Field(None, description="local Evidently workspace: `evidently ui --workspace DIR`")
    project: str = Field("textops", min_length=1, description="Evidently project the runs are added to")


class MonitorSettings(_Section):
    reference: Optional[Path] = Field(None, description="run dir, saved reference dir, or CSV with text,label")
    model: Optional[Path] = Field(None, description="SavedModel that scores a CSV reference")
    log: Optional[Path] = Field(None, description="prediction-log directory or file")
    feedback: Optional[Path] = Field(None, description="ground-truth labels: JSONL or CSV with request_id,label")
    output: Path = Field(Path("runs/monitor"), description="where report.html, snapshot.json, verdict.json go")
    window: WindowSettings = Field(default_factory=WindowSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    estimate: EstimateSettings = Field(default_factory=EstimateSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)

    @model_validator(mode="after")
    def _window_order(self) -> "MonitorSettings":
        w = self.window
        if w.since is not None and w.until is not None and w.since >= w.until:
            raise ValueError("window.since must be before window.until")
        return self


def load_monitor_settings(
    config_file: Optional[Path] = None,
    overrides: Optional[list[str]] = None,
    **explicit: Any,
) -> MonitorSettings:
    """Settings from an optional YAML file, ``KEY=VALUE`` overrides, then explicit values
    (command-line options such as ``log=...``; ``None`` values are ignored)."""
    try:
        return load_model(
            MonitorSettings, config_file, overrides, explicit, what="monitor config",
            title="invalid monitor settings", unknown_hint="see docs/monitoring.md for every valid key",
        )
    except ConfigError as exc:
        raise MonitorError(str(exc), ExitCode.USAGE) from None
