"""The run summary: metrics against thresholds, blessed or not and why, what was pushed.

Built from what the run recorded (MLMD executions, the Evaluator's TFMA output, the Pusher's
artifact), written as ``run_summary.json`` and printed for people.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from textops.components import metrics as metrics_lib
from textops.errors import ExitCode
from textops.mlmd import RunRecord
from textops.settings import Settings

CANDIDATE_NAMES = ("", "candidate")
BASELINE_NAME = "baseline"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def load_evaluation(evaluation_uri: str) -> dict[str, Any]:
    """Overall-slice metric values per model ('candidate', 'baseline') and the validation result."""
    import tensorflow_model_analysis as tfma

    values: dict[str, dict[str, float]] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue  # overall slice only here; the model-analysis report shows the others
        for kv in slice_metrics.metric_keys_and_values:
            if kv.key.is_diff:
                continue
            model = BASELINE_NAME if kv.key.model_name == BASELINE_NAME else "candidate"
            if kv.value.HasField("double_value"):
                values.setdefault(model, {})[kv.key.name] = kv.value.double_value.value
    validation = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            failures.append(
                {
                    "metric": failure.metric_key.name,
                    "is_diff": failure.metric_key.is_diff,
                    "value": failure.metric_value.double_value.value
                    if failure.metric_value.HasField("double_value")
                    else None,
                    "message": failure.message,
                }
            )
    return {"values": values, "validation_ok": validation.validation_ok, "failures": failures}


def gate_table(settings: Settings, evaluation: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Per headline metric: value, threshold, baseline, change; plus human reasons for failures."""
    candidate = evaluation["values"].get("candidate", {})
    baseline = evaluation["values"].get(BASELINE_NAME)
    thresholds = settings.evaluation.thresholds.gated()
    tolerance = settings.evaluation.change_tolerance
    table: dict[str, Any] = {}
    reasons: list[str] = []
    for name in metrics_lib.HEADLINE_METRICS:
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
    status: str,
    exit_code: ExitCode,
    *,
    data: dict[str, Any],
    components: list[dict[str, Any]],
    wall_seconds: float,
    error: Optional[str] = None,
    problems: Optional[list[str]] = None,
) -> dict[str, Any]:
    summary: dict[str, Any] = {
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
    }
    if run is None:
        return summary
    evaluation_artifact = run.output("Evaluator", "evaluation")
    blessing = run.output("Evaluator", "blessing")
    if evaluation_artifact is not None:
        evaluation = load_evaluation(evaluation_artifact.uri)
        summary["metrics"], summary["reasons"] = gate_table(settings, evaluation)
        summary["per_class"] = per_class_table(evaluation)
        summary["evaluation_uri"] = evaluation_artifact.uri
    if blessing is not None:
        summary["blessed"] = bool(blessing.prop("blessed", 0))
        if blessing.prop("baseline_version"):
            summary["baseline"] = {
                "version": int(blessing.prop("baseline_version")),
                "path": blessing.prop("baseline_model"),
            }
    pushed = run.output("Pusher", "pushed_model")
    if pushed is not None and pushed.prop("pushed", 0):
        summary["pushed"] = {
            "version": int(pushed.prop("pushed_version")),
            "path": pushed.prop("pushed_destination"),
            "already_in_service": bool(pushed.prop("already_in_service", 0)),
        }
    model = run.output("Trainer", "model_run")
    if model is not None:
        summary["model_run_uri"] = model.uri
        summary["training"] = training_summary(model.uri)
    return summary


def training_summary(model_run_uri: str) -> Optional[dict[str, Any]]:
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
    last = {k[len("val_"):]: _clean(v[kept - 1] if kept and len(v) >= kept else v[-1]) for k, v in history.items() if k.startswith("val_") and v}
    return {
        "eval_splits": record.get("eval_splits") or ["eval"],
        "epochs": max((len(v) for v in history.values()), default=0),
        "last_epoch": last,  # the kept epoch's figures (named before early stopping existed)
        "kept_epoch": kept,
    }


def write_summary(path: str, summary: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=False)
        f.write("\n")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render_text(summary: dict[str, Any]) -> str:
    lines = []
    if summary["metrics"]:
        lines.append("")
        lines.append(f"{'metric':<10} {'value':>8} {'threshold':>10} {'baseline':>9} {'change':>8}  gate")
        for name, row in summary["metrics"].items():
            gate = "-"
            if "passed_threshold" in row:
                gate = "ok" if row["passed_threshold"] and row.get("passed_change", True) else "FAIL"
            lines.append(
                f"{name:<10} {_fmt(row['value']):>8} {_fmt(row['threshold']):>10} "
                f"{_fmt(row.get('baseline')):>9} {_fmt(row.get('change')):>8}  {gate}"
            )
    if summary["per_class"]:
        lines.append("")
        lines.append(f"{'class':<16} {'precision':>9} {'recall':>8} {'f1':>8} {'auc':>8} {'support':>8}")
        for name, row in summary["per_class"].items():
            lines.append(
                f"{name[:16]:<16} {_fmt(row.get('precision')):>9} {_fmt(row.get('recall')):>8} "
                f"{_fmt(row.get('f1')):>8} {_fmt(row.get('auc')):>8} {_fmt(int(row.get('support') or 0)):>8}"
            )
    training = summary.get("training")
    if training and training.get("last_epoch"):
        figures = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(training["last_epoch"].items()))
        lines.append("")
        lines.append(f"Trainer, epoch {training.get('kept_epoch') or training['epochs']} of {training['epochs']} kept, on the {'/'.join(training['eval_splits'])} split: {figures}")
        if "validation" in training["eval_splits"]:
            lines.append("The gate above scored the test split, which training never saw.")
    lines.append("")
    status = summary["status"]
    if status == "pushed" and summary["pushed"].get("already_in_service"):
        lines.append(
            f"BLESSED; this model is already in service as {summary['model_name']} version "
            f"{summary['pushed']['version']} ({summary['pushed']['path']}): nothing new to push."
        )
    elif status == "pushed":
        lines.append(
            f"BLESSED and pushed: {summary['model_name']} version {summary['pushed']['version']} -> {summary['pushed']['path']}"
        )
    elif status == "blessed_not_pushed":
        lines.append("BLESSED; the Pusher did not publish a new version (see the log).")
    elif status == "not_blessed":
        lines.append("NOT BLESSED: nothing was pushed; the model in service is unchanged.")
        for reason in summary["reasons"]:
            lines.append(f"  - {reason}")
    elif status == "data_invalid":
        lines.append("DATA REJECTED before training: nothing was trained or pushed.")
        for problem in summary["problems"]:
            lines.append(f"  - {problem}")
    else:
        lines.append(f"FAILED: {summary.get('error') or 'see the log'}")
    if summary.get("baseline"):
        lines.append(f"Compared with the model in service: version {summary['baseline']['version']}")
    return "\n".join(lines)
