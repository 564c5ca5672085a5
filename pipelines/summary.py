"""Builds a run's :class:`~textops.summary.RunSummary` from what the run recorded: the MLMD
executions, the Evaluator's TFMA output (the gate table, per-class figures, the baseline) and
the Pusher's artifact."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from textops.components.classification import HEADLINE_METRICS
from textops.components.evaluator import BASELINE_NAME, load_evaluation
from textops.errors import ExitCode
from textops.mlmd import RunRecord
from textops.settings import Settings
from textops.summary import BaselineModel, PushedModel, RunStatus, RunSummary, TrainingFigures


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def gate_table(settings: Settings, evaluation: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Per headline metric: value, threshold, baseline, change; plus human reasons for failures."""
    candidate = evaluation["values"].get("candidate", {})
    baseline = evaluation["values"].get(BASELINE_NAME)
    thresholds = settings.evaluation.thresholds.gated()
    tolerance = settings.evaluation.change_tolerance
    table: dict[str, Any] = {}
    reasons: list[str] = []
    for name in HEADLINE_METRICS:
        value = candidate.get(name)
        row: dict[str, Any] = {"value": _clean(value), "threshold": thresholds.get(name)}
        if name in thresholds:
            ok = value is not None and not math.isnan(value) and value >= thresholds[name]
            row["passed_threshold"] = ok
            if not ok:
                shown = "undefined (NaN)" if value is None or math.isnan(value) else f"{value:.4f}"
                gap = "" if value is None or math.isnan(value) else f" by {thresholds[name] - value:.4f}"
                reasons.append(f"{name} {shown} is below its threshold {thresholds[name]:.4f}{gap}")
        if baseline is not None and name in baseline:
            row["baseline"] = _clean(baseline[name])
            if value is not None:
                row["change"] = _clean(value - baseline[name])
                if name in thresholds and tolerance is not None:
                    ok = value - baseline[name] >= -tolerance - 1e-12
                    row["passed_change"] = ok
                    if not ok:
                        reasons.append(
                            f"{name} {value:.4f} regressed {baseline[name] - value:.4f} below the model in service "
                            f"({baseline[name]:.4f}); the tolerance is {tolerance:.4f}"
                        )
        table[name] = row
    if not evaluation["validation_ok"] and not reasons:
        reasons.extend(f["message"] for f in evaluation["failures"])
    return table, reasons


def per_class_table(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in evaluation["values"].get("candidate", {}).items():
        if key.startswith("per_class/"):
            _, metric, class_name = key.split("/", 2)
            out.setdefault(class_name, {})[metric] = _clean(value)
    return out


def build_summary(
    settings: Settings,
    run: Optional[RunRecord],
    status: RunStatus,
    exit_code: ExitCode,
    *,
    data: dict[str, Any],
    components: list[dict[str, Any]],
    wall_seconds: float,
    error: Optional[str] = None,
    problems: Optional[list[str]] = None,
) -> RunSummary:
    summary = RunSummary(**{
        "status": status,
        "exit_code": int(exit_code),
        "run_id": run.run_id if run else None,
        "pipeline": settings.pipeline.name,
        "model_name": settings.push.model_name,
        "wall_seconds": round(wall_seconds, 2),
        "data": data,
        "components": components,
        "blessed": None,
        "reasons": [],
        "metrics": {},
        "per_class": {},
        "baseline": None,
        "pushed": None,
        "error": error,
        "problems": problems or [],
        "settings": settings.to_dict(),
    })
    if run is None:
        return summary
    evaluation_artifact = run.output("Evaluator", "evaluation")
    blessing = run.output("Evaluator", "blessing")
    if evaluation_artifact is not None:
        evaluation = load_evaluation(evaluation_artifact.uri)
        summary.metrics, summary.reasons = gate_table(settings, evaluation)
        summary.per_class = per_class_table(evaluation)
        summary.evaluation_uri = evaluation_artifact.uri
    if blessing is not None:
        summary.blessed = bool(blessing.prop("blessed", 0))
        if blessing.prop("baseline_version"):
            summary.baseline = BaselineModel(int(blessing.prop("baseline_version")), blessing.prop("baseline_model"))
    pushed = run.output("Pusher", "pushed_model")
    if pushed is not None and pushed.prop("pushed", 0):
        summary.pushed = PushedModel(
            int(pushed.prop("pushed_version")),
            pushed.prop("pushed_destination"),
            bool(pushed.prop("already_in_service", 0)),
        )
    model = run.output("Trainer", "model_run")
    if model is not None:
        summary.model_run_uri = model.uri
        summary.training = training_summary(model.uri)
    return summary


def training_summary(model_run_uri: str) -> Optional[TrainingFigures]:
    """The Trainer's last-epoch figures on the split it evaluated on (``validation`` when the data
    has three splits), beside the gate's figures on the test split."""
    import tensorflow as tf

    path = f"{model_run_uri.rstrip('/')}/history.json"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        record = json.load(f)
    history = record.get("history") or {}
    kept = record.get("kept_epoch")  # 1-based; under early stopping the best epoch, not the last
    last = {
        k[len("val_"):]: _clean(v[kept - 1] if kept and len(v) >= kept else v[-1])
        for k, v in history.items()
        if k.startswith("val_") and v
    }
    return TrainingFigures(
        eval_splits=record.get("eval_splits") or ["eval"],
        epochs=max((len(v) for v in history.values()), default=0),
        last_epoch=last,
        kept_epoch=kept,
    )
