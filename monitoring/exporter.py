"""The monitor's verdict as Prometheus metrics, next to the server's.

The monitor is a batch job, so its metrics are written where Prometheus can scrape the latest
values: a node_exporter textfile-collector file (``export.textfile``, written atomically) and/or
a Pushgateway (``export.pushgateway``).

Every metric carries the label ``model`` (the model name the window was answered by).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import push_to_gateway

PREFIX = "textops_monitor_"

# name -> (help, extra labels); the single source of truth for what the monitor exports
# (the alert rules and dashboards are checked against it).
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "last_run_timestamp_seconds": ("Unix time the last monitoring run finished.", ()),
    "run_duration_seconds": ("Seconds the last monitoring run took.", ()),
    "exit_code": ("Exit status of the last run (0 ok, 5 drift, 6 quality, 7 service alert).", ()),
    "alert": ("1 when an alert of this kind fired in the last run.", ("kind",)),
    "window_records": ("Records in the window.", ()),
    "corrupt_lines": ("Corrupt prediction-log lines skipped while reading the window.", ()),
    "drift_score": ("Drift score per column (text: domain-classifier ROC AUC; others: distance).", ("column",)),
    "drift_threshold": ("Drift threshold per column.", ("column",)),
    "column_drifted": ("1 when the column drifted.", ("column",)),
    "drifted": ("1 when a drift alert fired (dataset drift, or text drift).", ()),
    "drifted_columns_share": ("Share of monitored columns that drifted.", ()),
    "signal_score": ("Score of each signal that alerts alone (text: ROC AUC; prediction, confidence: distance).", ("signal",)),
    "signal_limit": ("Limit of each signal: its threshold, or its sampling-noise level when higher.", ("signal",)),
    "signal_fired": ("1 when the signal fired a drift alert on its own.", ("signal",)),
    "estimated_quality": ("Quality estimated without labels (CBPE): accuracy, precision, recall, f1.", ("metric", "bound")),
    "labelled_records": ("Window records with a ground-truth label fed back.", ()),
    "quality": ("Classification quality on the labelled records (argmax; macro over classes).", ("metric",)),
    "reference_quality": ("The same metrics on the reference (the evaluation split).", ("metric",)),
    "error_rate": ("Share of window records that are errors.", ()),
    "latency_p99_ms": ("p99 request latency in the window, from the log (ms).", ()),
}

ALERT_KINDS = ("drift", "quality", "service")


def build_registry(verdict: dict[str, Any], finished_at: float) -> CollectorRegistry:
    """A registry holding the verdict's numbers (``verdict`` is ``Verdict.to_dict()``)."""
    registry = CollectorRegistry()
    gauges = {
        name: Gauge(PREFIX + name, help_text, ["model", *labels], registry=registry)
        for name, (help_text, labels) in METRICS.items()
    }
    models = verdict["window"].get("models") or []
    model = models[0].split("/")[0] if models else str(verdict["reference"].get("model_name") or "unknown")

    def put(name: str, value: Optional[float], **labels: str) -> None:
        if value is not None:
            gauges[name].labels(model=model, **labels).set(float(value))

    put("last_run_timestamp_seconds", finished_at)
    put("run_duration_seconds", verdict.get("seconds"))
    put("exit_code", verdict["exit_code"])
    fired = {a["kind"] for a in verdict["alerts"]}
    for kind in ALERT_KINDS:
        put("alert", 1.0 if kind in fired else 0.0, kind=kind)
    put("window_records", verdict["window"]["records"])
    put("corrupt_lines", verdict["window"]["corrupt_lines"])
    drift = verdict.get("drift") or {}
    for column, c in (drift.get("columns") or {}).items():
        put("drift_score", c["score"], column=column)
        put("drift_threshold", c["threshold"], column=column)
        put("column_drifted", 1.0 if c["drifted"] else 0.0, column=column)
    put("drifted", 1.0 if verdict["drifted"] else 0.0)
    if drift:
        put("drifted_columns_share", drift["drifted_share"])
    for signal, sig in (drift.get("signals") or {}).items():
        put("signal_score", sig["score"], signal=signal)
        put("signal_limit", sig["limit"], signal=signal)
        put("signal_fired", 1.0 if sig["fired"] else 0.0, signal=signal)
    for metric, interval in ((verdict.get("estimate") or {}).get("metrics") or {}).items():
        for bound in ("value", "low", "high"):
            put("estimated_quality", interval.get(bound), metric=metric, bound=bound)
    quality = verdict.get("quality") or {}
    put("labelled_records", quality.get("labelled", 0))
    for metric, value in (quality.get("metrics") or {}).items():
        put("quality", value, metric=metric)
    for metric, value in (quality.get("reference") or {}).items():
        put("reference_quality", value, metric=metric)
    service = verdict.get("service") or {}
    put("error_rate", service.get("error_rate"))
    put("latency_p99_ms", service.get("latency_p99_ms"))
    return registry


def write_textfile(registry: CollectorRegistry, path: os.PathLike) -> Path:
    """Writes the exposition atomically (node_exporter must never read a half-written file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(generate_latest(registry))
    os.replace(tmp, target)
    return target


def push(registry: CollectorRegistry, gateway: str, job: str) -> None:
    push_to_gateway(gateway, job=job, registry=registry)


def add_to_workspace(workspace: os.PathLike, project_name: str, snapshots: list[Any]) -> str:
    """Adds the run's Evidently snapshots to a local workspace (created when absent), in the
    project ``project_name``; ``evidently ui --workspace DIR`` then shows the runs over time."""
    from evidently.ui.workspace import Workspace

    ws = Workspace.create(str(workspace))
    found = ws.search_project(project_name)
    project = found[0] if found else ws.create_project(project_name, description="TextOps production monitoring")
    for snapshot in snapshots:
        ws.add_run(project.id, snapshot)
    return str(project.id)
