"""One monitoring run: window vs reference -> checks -> verdict, report, snapshot, metrics.

``run_monitor(settings)`` is the Python API (drift-triggered retraining calls it); it returns a
``MonitorResult`` whose ``verdict`` says whether drift was found, which checks fired, with what
scores, and the exit status a scheduler acts on (``ExitCode``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from textops.monitoring import descriptors
from textops.errors import ExitCode
from textops.monitoring.config import MonitorError, MonitorSettings
from textops.monitoring.feedback import FeedbackStats, join_feedback, read_feedback
from textops.monitoring.reference import Reference, load_reference
from textops.monitoring.window import Window, load_window
from textops.verdict import VERDICT_FILE, Alert, Verdict

QUALITY_METRICS = ("accuracy", "precision", "recall", "f1", "auc")


@dataclasses.dataclass
class MonitorResult:
    verdict: Verdict
    drift_snapshot: Any = None
    quality_snapshot: Any = None
    reference: Optional[Reference] = None
    window: Optional[Window] = None


# -- quality ------------------------------------------------------------------------------------
def _stats(frame: pd.DataFrame, classes: list[str]) -> Any:
    from textops.components.classification import ClassificationStats

    stats = ClassificationStats(tuple(classes))
    index = {c: i for i, c in enumerate(classes)}
    for target, prediction, probs, probs_classes in zip(
        frame["target"], frame["prediction"], frame["probabilities"], frame.get("classes", [None] * len(frame))
    ):
        p = np.zeros(len(classes))
        if probs is not None and len(probs) == len(classes):
            if probs_classes is not None and list(probs_classes) != classes:
                for name, value in zip(probs_classes, probs):
                    if name in index:
                        p[index[name]] = value
            else:
                p[:] = probs
        elif prediction in index:
            p[index[prediction]] = 1.0  # no probabilities logged: the decision only
        stats.add(tuple(classes), p, str(target), 1.0)
    return stats


def quality_metrics(frame: pd.DataFrame, classes: list[str], positive_label: Optional[str]) -> dict[str, Any]:
    """The gate's definitions (``components/metrics.py``): argmax decision, macro over classes
    (two classes: the positive class)."""
    stats = _stats(frame, classes)
    return {
        "metrics": {m: stats.headline(m, positive_label) for m in QUALITY_METRICS},
        "per_class": stats.per_class(),
    }


def _positive_label(reference: Reference) -> Optional[str]:
    if len(reference.classes) != 2:
        return None
    if reference.meta.get("positive_label") in reference.classes:
        return reference.meta["positive_label"]
    counts = reference.frame["target"].value_counts()
    return min(reference.classes, key=lambda c: (counts.get(c, 0), c))


# -- drift signals that alert on their own -------------------------------------------------------
def _shares_meaning(reference: dict[str, float], window: dict[str, float], top: int = 5) -> str:
    labels = sorted(set(reference) | set(window), key=lambda c: (-abs(window.get(c, 0.0) - reference.get(c, 0.0)), str(c)))
    shown = [f"{c!r} {100 * window.get(c, 0.0):.1f}% (reference {100 * reference.get(c, 0.0):.1f}%)" for c in labels[:top]]
    more = f", {len(labels) - top} more classes" if len(labels) > top else ""
    return "the model now predicts " + ", ".join(shown) + more + " of requests"


def _confidence_meaning(reference: pd.Series, window: pd.Series) -> str:
    low = float(reference.quantile(0.1))
    return (
        f"mean confidence {window.mean():.3f} (reference {reference.mean():.3f}); {100 * (window < low).mean():.1f}% of "
        f"requests are below {low:.3f}, the reference's 10th percentile (10% of the reference)"
    )


def _drift_signals(
    result: Any, reference: pd.DataFrame, current: pd.DataFrame, settings: MonitorSettings, alerts: list[Alert]
) -> dict[str, Any]:
    """The text, prediction and confidence signals, each alerting alone.

    Prediction and confidence count every request (a campaign repeating one text is a real change
    in what the model answers; the per-column table compares distinct texts, as the domain
    classifier must). Each fires when Evidently's stat test scores it above both its threshold and
    its noise level: the score that reference samples of the window's size reach against the rest
    of the reference, so that a many-class model does not alert on sampling alone."""
    from textops.monitoring.drift import P_VALUE_METHODS, is_drifted, noise_level, sample, stat_score

    d = settings.drift
    signals: dict[str, Any] = {}
    text = result.text_drift
    if text is not None:
        signals["text"] = {
            "score": text.score, "method": text.method, "threshold": text.threshold, "limit": text.threshold,
            "enabled": d.alert_on_text_drift, "fired": bool(text.drifted and d.alert_on_text_drift),
            "meaning": f"a domain classifier tells window texts from reference texts with ROC AUC {text.score:.3f} "
            "(0.5: indistinguishable)",
        }
    specs = {
        "prediction": (d.alert_on_prediction_drift, True, d.cat_method, d.cat_threshold),
        "confidence": (d.alert_on_confidence_drift, False, d.num_method, d.confidence_threshold),
    }
    ref_rows = sample(reference, d.max_rows, d.seed)
    cur_rows = sample(current, d.max_rows, d.seed)
    for name, (enabled, categorical, method, threshold) in specs.items():
        if name not in d.columns:
            continue
        ref_col, cur_col = ref_rows[name].dropna(), cur_rows[name].dropna()
        if ref_col.empty or cur_col.empty:
            continue
        score = stat_score(ref_col, cur_col, method, categorical)
        noise, rows = (None, None)
        limit = threshold
        if d.noise_quantile is not None:
            noise, rows = noise_level(ref_col, len(cur_col), method, d.noise_quantile, d.noise_draws, d.seed, categorical)
            limit = min(limit, noise) if method in P_VALUE_METHODS else max(limit, noise)
        fired = bool(enabled and is_drifted(score, method, limit))
        if categorical:
            meaning = _shares_meaning(
                reference["prediction"].value_counts(normalize=True).to_dict(),
                current["prediction"].value_counts(normalize=True).to_dict(),
            )
        else:
            meaning = _confidence_meaning(reference["confidence"].dropna(), current["confidence"].dropna())
        signals[name] = {
            "score": score, "method": method, "threshold": threshold, "noise": noise, "noise_rows": rows,
            "limit": limit, "enabled": enabled, "fired": fired, "meaning": meaning,
        }
        if fired:
            floor = f"; sampling noise reaches {noise:.3f}" if noise is not None else ""
            alerts.append(
                Alert(
                    "drift",
                    name,
                    f"{name} drift: {method} {score:.3f} above {limit:.3f} (threshold {threshold:.3f}{floor}): {meaning}",
                    score,
                    limit,
                )
            )
    return signals


# -- label-free performance estimate ----------------------------------------------------------------
def _estimate(
    current: pd.DataFrame,
    reference: Reference,
    settings: MonitorSettings,
    prior_shift: bool,
    drift_fired: bool,
    notes: list[str],
    alerts: list[Alert],
) -> dict[str, Any]:
    from scipy.stats import chi2

    from textops.monitoring.estimate import (
        ESTIMATED_METRICS,
        Calibrator,
        class_indices,
        estimate,
        falls_below,
        prior_shift_noise,
        prior_shift_test,
        priors_meaning,
        probability_matrix,
        reference_recall,
    )

    e = settings.estimate
    classes = reference.classes
    ref_probs, ref_ok = probability_matrix(reference.frame, classes)
    probs, ok = probability_matrix(current, classes)
    if not ok.any():
        notes.append("the window's log carries no class probabilities matching the reference's classes: no label-free estimate")
        return {}
    if not ok.all():
        notes.append(f"{int((~ok).sum())} window record(s) carry no usable probabilities; the estimate covers the other {int(ok.sum())}")
    try:
        calibrator = Calibrator(classes, e.calibration, top_label=e.top_label, seed=e.seed).fit(ref_probs[ref_ok], reference.frame["target"][ref_ok].tolist())
    except ValueError as exc:
        notes.append(f"no label-free estimate: {exc}")
        return {}
    positive = _positive_label(reference)
    calibrated = calibrator.transform(probs[ok])
    predicted = probs[ok].argmax(axis=1)
    ref_calibrated = calibrator.transform(ref_probs[ref_ok])
    reference_priors = ref_calibrated.mean(axis=0)
    shift = prior_shift_test(calibrated, reference_priors, e.prior_support_p)
    # the test rejects above both the chi-squared quantile and what unshifted windows of this size
    # reach against a reference of this size (the drift signals' noise level, for this statistic)
    noise = None
    if e.prior_shift_p is not None or e.prior_shift_alert_p is not None:
        noise = prior_shift_noise(ref_calibrated, len(calibrated), e.noise_quantile, e.noise_draws, e.seed)
    dof = max(1, len(classes) - 1)

    def above(p: Optional[float]) -> bool:
        return p is not None and noise is not None and shift.statistic > max(float(chi2.isf(p, dof)), noise)

    tested = above(e.prior_shift_p)
    # part of the prediction signal (the label mix moved), valid while the texts and confidences look
    # like the reference's: it alerts only when no drift alert fired (the evidence no other signal has)
    alarm = above(e.prior_shift_alert_p) and not prior_shift
    alarm = alarm and settings.drift.alert_on_prediction_drift and not drift_fired
    if alarm:
        meaning = priors_meaning(classes, shift.priors, reference_priors)
        alerts.append(
            Alert(
                "drift",
                "prior_shift",
                f"label-prior shift: likelihood-ratio statistic {shift.statistic:.1f} on {len(classes) - 1} degrees of freedom, "
                f"p = {shift.p_value:.1e} below {e.prior_shift_alert_p:.0e} (estimate.prior_shift_alert_p) and above the noise "
                f"level {noise or 0.0:.1f} of unshifted resamples of the reference: {meaning}",
                shift.p_value,
                e.prior_shift_alert_p,
            )
        )
    adjusted = e.adjust_priors == "always" or (e.adjust_priors == "auto" and (prior_shift or tested))
    priors, recall_prior = None, None
    if adjusted:
        calibrated, priors = shift.adjusted, shift.priors
        known, y_ref = class_indices(reference.frame["target"][ref_ok].tolist(), classes)
        recall_prior = reference_recall(ref_probs[ref_ok][known], y_ref, len(classes))

    def run(rows: np.ndarray) -> Any:
        return estimate(
            calibrated[rows], predicted[rows], classes, positive, interval=e.interval, draws=e.draws, seed=e.seed, recall_prior=recall_prior
        )

    est = run(np.ones(len(calibrated), dtype=bool))
    out = est.to_dict()
    out.update({"calibration": calibrator.chosen, "interval": e.interval, "positive_label": positive, "priors_adjusted": adjusted})
    out.update({"calibration_setting": e.calibration, "top_label": e.top_label, "calibration_cv_log_loss": calibrator.cv_log_loss, "alert_when": e.alert_when})
    out["prior_shift_test"] = {
        "statistic": shift.statistic, "p_value": shift.p_value, "limit": e.prior_shift_p, "alert_limit": e.prior_shift_alert_p,
        "noise": noise, "signal": prior_shift, "fired": bool(alarm),
    }
    if priors is not None:
        out["estimated_priors"] = {c: float(v) for c, v in zip(classes, priors)}
        out["prior_support"] = [c for c, kept in zip(classes, shift.support) if kept]
    out["reference"] = quality_metrics(reference.frame, classes, positive)["metrics"]
    thresholds, source = e.minimums(), "estimate.*_min (monitor settings)"
    if not thresholds:
        gate = reference.meta.get("gate_thresholds") or {}
        thresholds = {m: float(v) for m, v in gate.items() if m in ESTIMATED_METRICS and v is not None}
        source = f"the gate of run {reference.meta.get('run_id')} (evaluation.thresholds)"
    out["thresholds"], out["threshold_source"] = thresholds, source if thresholds else None
    if not thresholds:
        notes.append(
            "the reference records no gate thresholds (it was not built from a pipeline run): the label-free estimate "
            "raises no alert; set estimate.accuracy_min / f1_min / ... to hold it to a bound"
        )
    share = int(100 * e.interval)
    for name, minimum in thresholds.items():
        v = est.metrics[name]
        if falls_below(v, minimum, e.alert_when):
            alerts.append(
                Alert(
                    "quality",
                    f"estimated_{name}",
                    f"estimated {name} {v.value:.3f} ({share}% interval {v.low:.3f}-{v.high:.3f}; no labels, CBPE) "
                    f"{'lies wholly' if e.alert_when == 'interval' else 'is'} below {minimum:.3f}, the threshold of {source}",
                    v.value,
                    minimum,
                )
            )
    # against the truth where labels were fed back: the estimate on exactly those rows
    targets = current["target"].to_numpy()[ok]
    labelled = np.array([t is not None and not (isinstance(t, float) and math.isnan(t)) for t in targets])
    if labelled.any():
        check = run(labelled)
        rows = current[ok][labelled]
        truth = quality_metrics(rows, classes, positive)["metrics"]
        out["versus_labels"] = {
            "rows": int(labelled.sum()),
            "estimated": {m: check.metrics[m].value for m in ESTIMATED_METRICS},
            "true": {m: truth[m] for m in ESTIMATED_METRICS},
            "error": {m: check.metrics[m].value - truth[m] for m in ESTIMATED_METRICS},
        }
    return out


# -- the run --------------------------------------------------------------------------------------
def _service(window: Window, settings: MonitorSettings, alerts: list[Alert]) -> dict[str, Any]:
    frame = window.frame
    errors = int((frame["status"] != "ok").sum())
    rate = errors / len(frame)
    per_request = frame.drop_duplicates("request_id")["latency_ms"].dropna()
    lat = {f"latency_p{q}_ms": float(np.percentile(per_request, q)) if len(per_request) else None for q in (50, 95, 99)}
    out = {"records": len(frame), "errors": errors, "error_rate": rate, "requests": int(frame["request_id"].nunique()), **lat}
    s = settings.service
    if s.enabled:
        if s.error_rate_max is not None and rate > s.error_rate_max:
            alerts.append(Alert("service", "error_rate", f"error rate {rate:.2%} is above {s.error_rate_max:.2%}", rate, s.error_rate_max))
        p99 = lat["latency_p99_ms"]
        if s.p99_latency_ms_max is not None and p99 is not None and p99 > s.p99_latency_ms_max:
            alerts.append(
                Alert("service", "latency_p99", f"p99 latency {p99:.0f} ms is above {s.p99_latency_ms_max:.0f} ms", p99, s.p99_latency_ms_max)
            )
    return out


@dataclasses.dataclass
class CheckResult:
    """What one check found: its section of the verdict, its alerts, notes for the reader, and
    the Evidently snapshot it rendered (if any). Checks share nothing else."""

    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    alerts: list[Alert] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    snapshot: Any = None


@dataclasses.dataclass
class PreparedWindow:
    """The window's successful predictions joined with the fed-back labels (``target``)."""

    window: Window
    current: pd.DataFrame
    versions: list[str]
    feedback: Optional[FeedbackStats]
    notes: list[str]


def prepare_window(
    settings: MonitorSettings, reference: Reference, now: Optional[float], progress: Callable[[str], None]
) -> PreparedWindow:
    """Reads the log window, refuses one too small to judge, and joins the feedback labels."""
    window = load_window(settings.log, settings.window, now)
    progress(f"window {window.describe()}: {len(window.frame)} records ({window.stats.corrupt} corrupt lines skipped)")
    notes: list[str] = []
    if window.stats.corrupt:
        notes.append(
            f"{window.stats.corrupt} corrupt log line(s) were skipped: " + "; ".join(window.stats.corrupt_examples)
        )
    current = window.ok.copy()
    if len(current) < settings.window.min_records:
        raise MonitorError(
            f"the window {window.describe()} has {len(current)} successful predictions, fewer than "
            f"window.min_records={settings.window.min_records}: too few to judge drift. Widen the window "
            "or lower window.min_records.",
            ExitCode.NO_DATA,
        )
    unknown = sorted(set(current["prediction"].dropna()) - set(reference.classes))
    if unknown:
        notes.append(f"the window predicts labels the reference model does not have: {unknown[:10]}")
    versions = sorted({f"{m}/{v}" for m, v in zip(current["model"], current["version"])})
    ref_version = reference.meta.get("model_version")
    if ref_version is not None and any(not v.endswith(f"/{ref_version}") for v in versions):
        notes.append(f"the window was answered by {versions}; the reference was scored by version {ref_version}")
    fb_stats = None
    current["target"] = None
    if settings.feedback is not None:
        fb_stats = FeedbackStats()
        feedback = read_feedback(settings.feedback, fb_stats)
        targets = join_feedback(window.frame, feedback, fb_stats)
        current["target"] = targets.loc[current.index]
        notes.extend(fb_stats.messages())
    return PreparedWindow(window, current, versions, fb_stats, notes)


def check_service(window: Window, settings: MonitorSettings) -> CheckResult:
    """Error rate and latency percentiles of the window, from the log."""
    alerts: list[Alert] = []
    return CheckResult(_service(window, settings, alerts), alerts)


def check_drift(reference: Reference, current: pd.DataFrame, settings: MonitorSettings, lap: Callable[[str], None]) -> CheckResult:
    """Evidently's per-column drift (text, descriptors, prediction, confidence) and the signals
    that alert on their own. Adds the text descriptors to ``current``."""
    alerts: list[Alert] = []
    if not settings.drift.enabled:
        return CheckResult()
    from textops.monitoring.drift import drift_report

    descriptors.add_descriptors(current, reference.vocabulary)
    lap("descriptors")
    drift_result = drift_report(reference.frame, current, settings.drift)
    lap("drift")
    cols = {c: dataclasses.asdict(v) for c, v in drift_result.columns.items()}
    drift_info = {
        "columns": cols,
        "drifted_count": sum(v.drifted for v in drift_result.columns.values()),
        "drifted_share": drift_result.drifted_share,
        "dataset_drift": drift_result.dataset_drift,
        "drift_share_limit": settings.drift.drift_share,
        "rows_reference": drift_result.rows_reference,
        "rows_current": drift_result.rows_current,
        "window_duplicate_share": 1.0 - current["text"].nunique() / len(current),
        "descriptor_means": {
            d: {"reference": float(reference.frame[d].mean()), "window": float(current[d].mean())}
            for d in (*descriptors.DESCRIPTORS, "confidence")
        },
        "prediction_share": {
            "reference": reference.frame["prediction"].value_counts(normalize=True).to_dict(),
            "window": current["prediction"].value_counts(normalize=True).to_dict(),
        },
    }
    drifted = [c for c in drift_result.columns.values() if c.drifted]
    text = drift_result.text_drift
    if drift_result.dataset_drift:
        names = ", ".join(f"{c.column} {c.score:.3f}" for c in drifted)
        alerts.append(
            Alert(
                "drift",
                "dataset",
                f"{len(drifted)}/{len(drift_result.columns)} columns drifted ({names}); the limit is a share of "
                f"{settings.drift.drift_share:.2f}",
                drift_result.drifted_share,
                settings.drift.drift_share,
            )
        )
    if text is not None and text.drifted and settings.drift.alert_on_text_drift:
        alerts.append(
            Alert(
                "drift",
                "text",
                f"text drift: a domain classifier tells window from reference texts with ROC AUC "
                f"{text.score:.3f} (threshold {text.threshold:.2f}; 0.5 means indistinguishable)",
                text.score,
                text.threshold,
            )
        )
    drift_info["signals"] = _drift_signals(drift_result, reference.frame, current, settings, alerts)
    return CheckResult(drift_info, alerts, snapshot=drift_result.snapshot)


def check_quality(reference: Reference, current: pd.DataFrame, settings: MonitorSettings) -> CheckResult:
    """The gate's metrics on the window's labelled records, against minimums and the reference."""
    alerts: list[Alert] = []
    notes: list[str] = []
    quality_info: dict[str, Any] = {"labelled": 0}
    quality_snapshot = None
    labelled = current[current["target"].notna()]
    if settings.quality.enabled and len(labelled):
        positive = _positive_label(reference)
        window_q = quality_metrics(labelled, reference.classes, positive)
        reference_q = quality_metrics(reference.frame, reference.classes, positive)
        quality_info = {
            "labelled": int(len(labelled)),
            "positive_label": positive,
            "metrics": window_q["metrics"],
            "per_class": window_q["per_class"],
            "reference": reference_q["metrics"],
            "alerting": len(labelled) >= settings.quality.min_labeled,
        }
        if len(labelled) < settings.quality.min_labeled:
            notes.append(
                f"only {len(labelled)} labelled record(s) in the window (quality.min_labeled="
                f"{settings.quality.min_labeled}): quality is shown but raises no alert"
            )
        else:
            q = settings.quality
            for name, minimum in q.minimums().items():
                value = window_q["metrics"][name]
                if not math.isnan(value) and value < minimum:
                    alerts.append(Alert("quality", name, f"{name} {value:.3f} is below its minimum {minimum:.3f}", value, minimum))
            if q.max_drop is not None:
                for name in QUALITY_METRICS:
                    value, ref = window_q["metrics"][name], reference_q["metrics"][name]
                    if not (math.isnan(value) or math.isnan(ref)) and ref - value > q.max_drop:
                        alerts.append(
                            Alert(
                                "quality",
                                f"{name}_drop",
                                f"{name} fell {ref - value:.3f} below the reference's {ref:.3f} (max drop {q.max_drop:.3f})",
                                value,
                                ref - q.max_drop,
                            )
                        )
        outside = ~labelled["target"].isin(reference.classes)
        if outside.any():
            unknown_labels = sorted(set(labelled.loc[outside, "target"]))[:10]
            notes.append(
                f"{int(outside.sum())} labelled record(s) carry labels the model does not know ({unknown_labels}); "
                "they count as errors in the quality metrics and are left out of Evidently's quality dashboard"
            )
        known = labelled[~outside]
        if len(known):
            from textops.monitoring.drift import quality_report

            quality_snapshot = quality_report(reference.frame, known, reference.classes)
    return CheckResult(quality_info, alerts, notes, snapshot=quality_snapshot)


def check_estimate(
    reference: Reference, current: pd.DataFrame, settings: MonitorSettings, prior_shift: bool, drift_fired: bool = False
) -> CheckResult:
    """The label-free performance estimate (CBPE) of the window, against the gate's thresholds,
    and the label-prior shift test. ``drift_fired``: a drift check before it alerted (the
    prior-shift alert speaks only when no drift alert did)."""
    if not settings.estimate.enabled:
        return CheckResult()
    alerts: list[Alert] = []
    notes: list[str] = []
    info = _estimate(current, reference, settings, prior_shift, drift_fired, notes, alerts)
    return CheckResult(info, alerts, notes)


def verdict_exit_code(alerts: list[Alert]) -> ExitCode:
    """Drift takes precedence over quality, quality over service."""
    kinds = {a.kind for a in alerts}
    for kind, code in (("drift", ExitCode.DRIFT), ("quality", ExitCode.QUALITY), ("service", ExitCode.SERVICE)):
        if kind in kinds:
            return code
    return ExitCode.OK


def run_monitor(
    settings: MonitorSettings,
    *,
    now: Optional[float] = None,
    reference: Optional[Reference] = None,
    progress: Callable[[str], None] = lambda _: None,
) -> MonitorResult:
    """Runs every enabled check; raises ``MonitorError`` (with its exit code) when it cannot judge."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    mark = [started]

    def lap(name: str) -> None:
        t = time.perf_counter()
        timings[name] = t - mark[0]
        mark[0] = t

    if reference is None:
        reference = load_reference(settings.reference, settings.model, progress)
    lap("reference")
    prepared = prepare_window(settings, reference, now, progress)
    window, current = prepared.window, prepared.current
    lap("read_log")
    service = check_service(window, settings)
    lap("feedback_and_service")
    if settings.drift.enabled:
        progress("descriptors and drift (Evidently)")
    drift = check_drift(reference, current, settings, lap)
    quality = check_quality(reference, current, settings)
    lap("quality")
    if settings.estimate.enabled:
        progress("label-free performance estimate (CBPE)")
    prior_shift = bool(((drift.info.get("signals") or {}).get("prediction") or {}).get("fired"))
    estimate = check_estimate(reference, current, settings, prior_shift, drift_fired=bool(drift.alerts))
    lap("estimate")
    # alerts in the order the checks always reported them: service, drift, quality, estimate
    alerts = [*service.alerts, *drift.alerts, *quality.alerts, *estimate.alerts]
    notes = [*prepared.notes, *quality.notes, *estimate.notes]
    window_info = {
        "range": window.describe(),
        "start": window.start,
        "end": window.end,
        "records": int(len(window.frame)),
        "ok": int(len(current)),
        "outside_window": window.outside,
        "files": window.stats.files,
        "corrupt_lines": window.stats.corrupt,
        "corrupt_examples": list(window.stats.corrupt_examples),
        "models": prepared.versions,
    }
    reference_info = {k: v for k, v in reference.meta.items() if k != "classes"}
    reference_info.update({"rows": int(len(reference.frame)), "classes": reference.classes})
    verdict = Verdict(
        exit_code=verdict_exit_code(alerts),
        alerts=alerts,
        drift=drift.info,
        quality=quality.info or {"labelled": 0},
        estimate=estimate.info,
        service=service.info,
        window=window_info,
        feedback=dataclasses.asdict(prepared.feedback) if prepared.feedback is not None else {},
        reference=reference_info,
        notes=notes,
        seconds=time.perf_counter() - started,
        timings=timings,
    )
    return MonitorResult(verdict, drift.snapshot, quality.snapshot, reference, window)


def write_outputs(result: MonitorResult, output: os.PathLike) -> dict[str, str]:
    """report.html (self-contained), snapshot.json (Evidently; loadable with Snapshot.load),
    quality_snapshot.json when labels were fed back, verdict.json."""
    from textops.monitoring.monitor_report import render_monitor_html

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = {"report": str(out / "report.html"), "verdict": str(out / VERDICT_FILE)}
    if result.drift_snapshot is not None:
        paths["snapshot"] = str(out / "snapshot.json")
        Path(paths["snapshot"]).write_text(result.drift_snapshot.dumps(), encoding="utf-8")
    if result.quality_snapshot is not None:
        paths["quality_snapshot"] = str(out / "quality_snapshot.json")
        Path(paths["quality_snapshot"]).write_text(result.quality_snapshot.dumps(), encoding="utf-8")
    result.verdict.outputs = dict(paths)
    Path(paths["report"]).write_text(render_monitor_html(result), encoding="utf-8")
    result.verdict.timings["write_outputs"] = time.perf_counter() - started
    Path(paths["verdict"]).write_text(json.dumps(result.verdict.to_dict(), indent=2) + "\n", encoding="utf-8")
    return paths
