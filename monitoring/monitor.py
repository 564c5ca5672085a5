"""One monitoring run: window vs reference -> checks -> verdict, report, snapshot, metrics.

``run_monitor(settings)`` is the Python API (drift-triggered retraining calls it); it returns a
``MonitorResult`` whose ``verdict`` says whether drift was found, which checks fired, with what
scores, and the exit status a scheduler acts on (``MonitorExit``).
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
from textops.monitoring.config import MonitorError, MonitorExit, MonitorSettings
from textops.monitoring.feedback import FeedbackStats, join_feedback, read_feedback
from textops.monitoring.reference import Reference, load_reference
from textops.monitoring.window import Window, load_window

QUALITY_METRICS = ("accuracy", "precision", "recall", "f1", "auc")


@dataclasses.dataclass
class Alert:
    kind: str  # drift | quality | service
    check: str
    message: str
    value: Optional[float] = None
    threshold: Optional[float] = None


@dataclasses.dataclass
class Verdict:
    exit_code: int
    alerts: list[Alert]
    drift: dict[str, Any]
    quality: dict[str, Any]
    service: dict[str, Any]
    window: dict[str, Any]
    feedback: dict[str, Any]
    reference: dict[str, Any]
    notes: list[str]
    seconds: float = 0.0
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(a.kind == "drift" for a in self.alerts)

    @property
    def fired(self) -> list[str]:
        return [f"{a.kind}:{a.check}" for a in self.alerts]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = "alert" if self.alerts else "ok"
        out["drifted"] = self.drifted
        out["fired"] = self.fired
        return _clean(out)

    def line(self) -> str:
        w = self.window
        head = f"ALERT ({', '.join(self.fired)})" if self.alerts else "OK"
        parts = [f"{head}: {w['records']} records {w['range']}"]
        if w.get("corrupt_lines"):
            parts.append(f"{w['corrupt_lines']} corrupt line(s) skipped")
        d = self.drift
        if d.get("columns"):
            text = d["columns"].get("text")
            if text:
                parts.append(f"text drift score {text['score']:.3f} (>{text['threshold']:.2f} drifts)")
            parts.append(f"{d['drifted_count']}/{len(d['columns'])} columns drifted")
        q = self.quality
        if q.get("labelled"):
            f1 = q["metrics"].get("f1")
            shown = "n/a" if f1 is None or math.isnan(f1) else f"{f1:.3f}"
            parts.append(f"f1 {shown} on {q['labelled']} labelled")
        s = self.service
        if s.get("error_rate") is not None:
            parts.append(f"errors {100 * s['error_rate']:.1f}%")
        if s.get("latency_p99_ms") is not None:
            parts.append(f"p99 {s['latency_p99_ms']:.0f} ms")
        return "; ".join(parts)


@dataclasses.dataclass
class MonitorResult:
    verdict: Verdict
    drift_snapshot: Any = None
    quality_snapshot: Any = None
    reference: Optional[Reference] = None
    window: Optional[Window] = None


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# -- quality ------------------------------------------------------------------------------------
def _stats(frame: pd.DataFrame, classes: list[str]) -> Any:
    from textops.components.metrics import ClassificationStats

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
    counts = reference.frame["target"].value_counts()
    return min(reference.classes, key=lambda c: (counts.get(c, 0), c))


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
    window = load_window(settings.log, settings.window, now)
    lap("read_log")
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
            MonitorExit.NO_DATA,
        )
    unknown = sorted(set(current["prediction"].dropna()) - set(reference.classes))
    if unknown:
        notes.append(f"the window predicts labels the reference model does not have: {unknown[:10]}")
    versions = sorted({f"{m}/{v}" for m, v in zip(current["model"], current["version"])})
    ref_version = reference.meta.get("model_version")
    if ref_version is not None and any(not v.endswith(f"/{ref_version}") for v in versions):
        notes.append(f"the window was answered by {versions}; the reference was scored by version {ref_version}")

    # feedback
    fb_stats = FeedbackStats()
    current["target"] = None
    if settings.feedback is not None:
        feedback = read_feedback(settings.feedback, fb_stats)
        targets = join_feedback(window.frame, feedback, fb_stats)
        current["target"] = targets.loc[current.index]
        notes.extend(fb_stats.messages())

    alerts: list[Alert] = []
    service = _service(window, settings, alerts)
    lap("feedback_and_service")

    # drift
    drift_info: dict[str, Any] = {}
    drift_result = None
    if settings.drift.enabled:
        from textops.monitoring.drift import drift_report

        progress("descriptors and drift (Evidently)")
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
                    f"{text.score:.3f} (threshold {text.threshold:.2f})",
                    text.score,
                    text.threshold,
                )
            )

    # quality
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

    lap("quality")
    kinds = {a.kind for a in alerts}
    exit_code = (
        MonitorExit.DRIFT
        if "drift" in kinds
        else MonitorExit.QUALITY
        if "quality" in kinds
        else MonitorExit.SERVICE
        if "service" in kinds
        else MonitorExit.OK
    )
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
        "models": versions,
    }
    reference_info = {k: v for k, v in reference.meta.items() if k != "classes"}
    reference_info.update({"rows": int(len(reference.frame)), "classes": reference.classes})
    verdict = Verdict(
        exit_code=int(exit_code),
        alerts=alerts,
        drift=drift_info,
        quality=quality_info,
        service=service,
        window=window_info,
        feedback=dataclasses.asdict(fb_stats) if settings.feedback is not None else {},
        reference=reference_info,
        notes=notes,
        seconds=time.perf_counter() - started,
        timings=timings,
    )
    return MonitorResult(verdict, drift_result.snapshot if drift_result else None, quality_snapshot, reference, window)


def write_outputs(result: MonitorResult, output: os.PathLike) -> dict[str, str]:
    """report.html (self-contained), snapshot.json (Evidently; loadable with Snapshot.load),
    quality_snapshot.json when labels were fed back, verdict.json."""
    from textops.monitoring.monitor_report import render_monitor_html

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = {"report": str(out / "report.html"), "verdict": str(out / "verdict.json")}
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
