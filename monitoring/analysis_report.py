"""The model-analysis report: one standalone HTML page per pipeline run.

What it shows, and where each part comes from:

- the gate: headline metrics against their thresholds and the baseline (the model in service),
  and why the model was or was not blessed (``run_summary.json``, TFMA's validation result);
- metrics per slice: every slice the Evaluator computed (overall, per true class, per text-length
  bucket, ...), candidate and baseline (``tfma.load_metrics`` on the Evaluator's output);
- per-class precision/recall/F1/AUC, a confusion matrix, ROC and precision-recall curves
  (one-vs-rest per class). TFMA stores no full curves for the project's argmax metrics, so these
  are computed by scoring the eval split (ExampleGen's ``Split-eval``) with the candidate
  SavedModel, and with the baseline model when there is one;
- training curves from the Trainer's Keras history (``history.json`` in the model run).

Charts are PNG images embedded as base64: the page needs no Jupyter, JavaScript or network.
``write_analysis_report(run_dir)`` is what the pipeline's runner calls after each evaluation.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from textops import features
from textops.monitoring import curves
from textops.monitoring.htmlpage import esc, figure_png, fmt, page, table
from textops.summary import RunSummary, read_summary

log = logging.getLogger(__name__)
REPORT_NAME = "analysis_report.html"
HEADLINE = ("accuracy", "precision", "recall", "f1", "auc")


# -- TFMA slices ----------------------------------------------------------------------------------
def _slice_name(slice_key: Any) -> tuple[str, str]:
    keys = list(slice_key.single_slice_keys)
    if not keys:
        return "overall", "overall"
    feature = " x ".join(k.column for k in keys)
    values = []
    for k in keys:
        kind = k.WhichOneof("kind")
        v = getattr(k, kind) if kind else ""
        values.append(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v))
    return feature, " x ".join(values)


def load_slices(evaluation_uri: str) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """feature -> slice value -> model ('candidate'/'baseline') -> metric -> value."""
    import tensorflow_model_analysis as tfma

    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        feature, value = _slice_name(slice_metrics.slice_key)
        for kv in slice_metrics.metric_keys_and_values:
            if kv.key.is_diff or not kv.value.HasField("double_value"):
                continue
            model = "baseline" if kv.key.model_name == "baseline" else "candidate"
            out.setdefault(feature, {}).setdefault(value, {}).setdefault(model, {})[kv.key.name] = kv.value.double_value.value
    return out


def _slice_sort_key(value: str) -> tuple:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def confusion_rows(labels: Sequence[str], probabilities: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """true class -> predicted class -> count, from scoring the eval split."""
    out: dict[str, dict[str, int]] = {}
    for label, row in zip(labels, probabilities.argmax(axis=1)):
        predicted = out.setdefault(str(label), {})
        predicted[classes[row]] = predicted.get(classes[row], 0) + 1
    return out


def _confusions_text(true_class: str, counts: Optional[dict[str, int]], top: int = 3) -> str:
    if not counts:
        return "-"
    total = sum(counts.values())
    wrong = sorted(((n, c) for c, n in counts.items() if c != true_class), reverse=True)
    if not wrong:
        return "none"
    shown = ", ".join(f"{c} {100 * n / total:.1f}% ({n})" for n, c in wrong[:top])
    more = len(wrong) - top
    return shown + (f", {more} more" if more > 0 else "")


def _class_slices_html(values: dict[str, Any], confusions: dict[str, dict[str, dict[str, int]]]) -> str:
    """Slices of one true class: that class's recall (and the baseline's) and what it is
    mistaken for. The headline metrics keep their macro definition inside a slice, where they
    mislead: macro precision averages in the classes the slice's texts were confused with."""
    has_baseline = any("baseline" in v for v in values.values())
    headers = ["true class", "examples", "recall"]
    if has_baseline:
        headers.append("recall (baseline)")
    headers += [f"mistaken for ({m})" for m in confusions] or ["mistaken for"]
    rows = []
    for value in sorted(values, key=_slice_sort_key):
        cand, base = values[value].get("candidate", {}), values[value].get("baseline", {})
        recall = cand.get(f"per_class/recall/{value}", cand.get("accuracy"))
        row: list[Any] = [value, int(cand["example_count"]) if cand.get("example_count") is not None else None, recall]
        if has_baseline:
            row.append(base.get(f"per_class/recall/{value}", base.get("accuracy")))
        row += [_confusions_text(value, c.get(value)) for c in confusions.values()] or ["- (the eval split could not be scored)"]
        rows.append(row)
    note = (
        '<p class="tx-muted">A slice holds the texts of one true class: its recall is the share the model labelled '
        "correctly (the slice's accuracy); precision is a property of a predicted class and is in the per-class "
        "table below. \"Mistaken for\": the most frequent wrong predictions for that class on the eval split.</p>"
    )
    return table(headers, rows) + note


def _slices_html(
    slices: dict[str, Any], label_feature: Optional[str] = None, confusions: Optional[dict[str, dict[str, dict[str, int]]]] = None
) -> str:
    parts = []
    names = sorted(slices, key=lambda f: (f != "overall", f))
    for feature in names:
        values = slices[feature]
        title = "Overall" if feature == "overall" else f"By {feature}"
        if feature == label_feature:
            parts.append(f"<h3>{esc(title)} (true class)</h3>" + _class_slices_html(values, confusions or {}))
            continue
        metric_names = [m for m in ("example_count", *HEADLINE) if any(m in v.get("candidate", {}) for v in values.values())]
        has_baseline = any("baseline" in v for v in values.values())
        headers = ["slice", *metric_names]
        if has_baseline:
            headers += [f"{m} (baseline)" for m in metric_names if m != "example_count"]
        rows = []
        for value in sorted(values, key=_slice_sort_key):
            cand = values[value].get("candidate", {})
            base = values[value].get("baseline", {})
            row: list[Any] = [value]
            for m in metric_names:
                v = cand.get(m)
                row.append(int(v) if m == "example_count" and v is not None else v)
            if has_baseline:
                row += [base.get(m) for m in metric_names if m != "example_count"]
            rows.append(row)
        parts.append(f"<h3>{esc(title)}</h3>" + table(headers, rows))
        if feature not in ("overall",) and "precision" in metric_names:
            parts.append(
                '<p class="tx-muted">Within a slice the headline metrics keep their definition (macro over the '
                "classes present in the slice, as true or predicted labels).</p>"
            )
    if len(names) <= 1:
        parts.append(
            '<p class="tx-muted">The Evaluator computed the overall slice only (no slicing specs for true class '
            "or text-length bucket in this run).</p>"
        )
    return "".join(parts)


# -- curves from scoring the eval split -------------------------------------------------------------
def _roc(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positives[order].astype(np.float64)
    distinct = np.r_[np.where(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(1 - y)[distinct]
    p, n = y.sum(), len(y) - y.sum()
    tpr = np.r_[0.0, tp / p] if p else np.zeros(len(tp) + 1)
    fpr = np.r_[0.0, fp / n] if n else np.zeros(len(fp) + 1)
    return fpr, tpr, float(np.trapz(tpr, fpr)) if p and n else math.nan


def _pr(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positives[order].astype(np.float64)
    distinct = np.r_[np.where(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(1 - y)[distinct]
    p = y.sum()
    if not p:
        return np.zeros(1), np.ones(1), math.nan
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / p
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return recall, precision, ap


def _curves_html(labels: Sequence[str], models: dict[str, tuple[np.ndarray, list[str]]]) -> str:
    from textops.monitoring.curves import _pyplot

    plt = _pyplot()
    parts = []
    # confusion matrices
    cm_figs = []
    for name, (probs, classes) in models.items():
        idx = {c: i for i, c in enumerate(classes)}
        y = np.array([idx.get(label, -1) for label in labels])
        pred = probs.argmax(axis=1)
        n = len(classes)
        cm = np.zeros((n, n), dtype=int)
        for t, p in zip(y, pred):
            if t >= 0:
                cm[t, p] += 1
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * n, 1.0 + 0.8 * n))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(n), classes, rotation=45, ha="right")
        ax.set_yticks(range(n), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"confusion matrix ({name})")
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
        cm_figs.append(f"<div>{figure_png(fig)}</div>")
    parts.append('<div class="tx-grid">' + "".join(cm_figs) + "</div>")
    # ROC and PR, one-vs-rest per class
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(12, 4.6))
    auc_rows = []
    for m_index, (name, (probs, classes)) in enumerate(models.items()):
        style = "-" if m_index == 0 else "--"
        for c, cls in enumerate(classes):
            positives = np.array([label == cls for label in labels])
            fpr, tpr, auc = _roc(probs[:, c], positives)
            rec, prec, ap = _pr(probs[:, c], positives)
            color = f"C{c % 10}"
            ax_roc.plot(fpr, tpr, style, color=color, label=f"{cls} ({name}) AUC {auc:.3f}")
            ax_pr.plot(rec, prec, style, color=color, label=f"{cls} ({name}) AP {ap:.3f}")
            auc_rows.append((cls, name, auc, ap, int(positives.sum())))
    ax_roc.plot([0, 1], [0, 1], ":", color="grey")
    ax_roc.set_xlabel("false positive rate")
    ax_roc.set_ylabel("true positive rate")
    ax_roc.set_title("ROC (one-vs-rest)")
    ax_pr.set_xlabel("recall")
    ax_pr.set_ylabel("precision")
    ax_pr.set_title("precision-recall (one-vs-rest)")
    for ax in (ax_roc, ax_pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    parts.append(figure_png(fig))
    parts.append(table(["class", "model", "ROC AUC", "average precision", "positives"], auc_rows))
    return "".join(parts)


def _score_models(art: Any, summary: RunSummary) -> tuple[Optional[list[str]], dict[str, tuple[np.ndarray, list[str]]], list[str]]:
    from textops.monitoring.reference import score

    notes: list[str] = []
    if art is None or art.candidate_model is None or not art.eval_split.is_dir():
        notes.append("the eval split or the candidate model is missing, so no confusion matrix or curves")
        return None, {}, notes
    texts, labels = art.eval_examples()
    models = {"candidate": score(art.candidate_model, texts)}
    base_path = Path(summary.baseline.path) if summary.baseline and summary.baseline.path else None
    if base_path is not None and (base_path / "saved_model.pb").is_file():
        models["baseline"] = score(base_path, texts)
    elif base_path is not None:
        notes.append(f"the baseline model {base_path} is no longer on disk; curves show the candidate only")
    return labels, models, notes


# -- the page ---------------------------------------------------------------------------------------
def _gate_html(summary: RunSummary, validation: Optional[dict[str, Any]]) -> str:
    blessed = summary.blessed
    if blessed:
        badge = '<span class="tx-badge tx-ok">BLESSED</span>'
    elif blessed is None:
        badge = '<span class="tx-badge tx-warn">NOT EVALUATED</span>'
    else:
        badge = '<span class="tx-badge tx-alert">NOT BLESSED</span>'
    parts = [f"<p>{badge} &nbsp; status: {esc(str(summary.status))}</p>"]
    if summary.pushed:
        parts.append(f"<p>Pushed as version {esc(summary.pushed.version)}.</p>")
    baseline = summary.baseline
    parts.append(
        f"<p>Compared with the model in service: version {esc(baseline.version)}.</p>"
        if baseline
        else "<p>No model was in service: thresholds only (no baseline comparison).</p>"
    )
    reasons = summary.reasons
    if blessed:
        parts.append("<p>Why blessed: every gated metric met its threshold" + (" and stayed within the change tolerance of the baseline." if baseline else ".") + "</p>")
    elif reasons:
        parts.append("<p>Why not blessed:</p><ul>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>")
    rows = []
    for name, row in summary.metrics.items():
        gate = "-"
        if "passed_threshold" in row:
            ok = row["passed_threshold"] and row.get("passed_change", True)
            gate = '<span class="tx-good">pass</span>' if ok else '<span class="tx-bad">FAIL</span>'
        rows.append((esc(name), fmt(row.get("value")), fmt(row.get("threshold")), fmt(row.get("baseline")), fmt(row.get("change")), gate))
    if rows:
        parts.append(table(["metric", "value", "threshold", "baseline", "change", "gate"], rows, raw=True))
    tolerance = summary.setting("evaluation", "change_tolerance")
    if tolerance is not None:
        parts.append(f'<p class="tx-muted">Change tolerance against the baseline: {fmt(tolerance)} (absolute).</p>')
    if validation is not None and validation.get("failures"):
        parts.append(
            "<h3>TFMA validation failures</h3>"
            + table(["metric", "diff", "value", "message"], [(f["metric"], f["is_diff"], f["value"], f["message"]) for f in validation["failures"]])
        )
    return "".join(parts)


def render_analysis_html(run_dir: os.PathLike, summary: RunSummary) -> str:
    from textops.monitoring.config import MonitorError
    from textops.monitoring.reference import run_artifacts

    notes: list[str] = []
    title = f"Model analysis: {summary.model_name or 'model'} (run {summary.run_id})"
    body = [f"<h1>{esc(title)}</h1>", '<p class="tx-muted">']
    data = summary.data
    body.append(
        esc(f"data {data.get('path')}: {data.get('train_examples')} train / {data.get('eval_examples')} eval examples; "
            f"wall time {summary.wall_seconds} s")
    )
    body.append("</p><h2>Gate: thresholds, baseline, blessing</h2>")
    evaluation_uri = summary.evaluation_uri
    validation = None
    slices: dict[str, Any] = {}
    if evaluation_uri and Path(evaluation_uri).is_dir():
        from textops.components.evaluator import load_evaluation

        validation = load_evaluation(evaluation_uri)
        slices = load_slices(evaluation_uri)
    else:
        notes.append("no Evaluator output for this run: slice metrics are missing")
    body.append(_gate_html(summary, validation))
    try:
        art = run_artifacts(run_dir)
    except (MonitorError, OSError, ValueError) as exc:  # a missing artifact only removes these sections
        art = None
        notes.append(f"run artifacts unavailable: {exc}")
    labels, models, score_notes = _score_models(art, summary)
    notes.extend(score_notes)
    confusions = {name: confusion_rows(labels, probs, classes) for name, (probs, classes) in models.items()} if labels is not None else {}
    label_feature = summary.setting("data", "label_column") or features.DEFAULT_LABEL_COLUMN
    body.append("<h2>Metrics per slice (TFMA)</h2>")
    body.append(_slices_html(slices, label_feature, confusions) if slices else "<p>No TFMA metrics.</p>")
    per_class = summary.per_class
    if per_class:
        body.append("<h2>Per class (overall slice)</h2>")
        body.append(
            table(
                ["class", "precision", "recall", "f1", "auc", "support"],
                [(c, r.get("precision"), r.get("recall"), r.get("f1"), r.get("auc"), int(r.get("support") or 0)) for c, r in per_class.items()],
            )
        )
    body.append("<h2>Confusion matrix, ROC and precision-recall curves (eval split)</h2>")
    if labels is not None and models:
        body.append(
            '<p class="tx-muted">Computed by scoring the eval split with the candidate SavedModel'
            + (" and the baseline" if "baseline" in models else "")
            + (" (solid: candidate, dashed: baseline).</p>" if "baseline" in models else ".</p>")
        )
        body.append(_curves_html(labels, models))
    body.append("<h2>Training curves</h2>")
    history = None
    model_run = summary.model_run_uri
    if model_run:
        history = curves.read_history(model_run)
    if history:
        body.append(figure_png(curves.curves_figure(history, evaluated_on=curves.eval_label(model_run))))
        body.append(f'<p class="tx-muted">From {esc(Path(model_run) / curves.HISTORY_FILE)} (TensorBoard logs: {esc(Path(model_run) / "tensorboard")}).</p>')
    else:
        body.append("<p>No training history recorded for this run.</p>")
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    return page(title, "".join(body))


def write_analysis_report(run: Union[os.PathLike, str, RunSummary], out_path: Optional[os.PathLike] = None) -> Path:
    """Writes the report for a run directory (or its summary, which names the directory in
    ``output``) to ``out_path`` (default ``<run>/analysis_report.html``); returns the path."""
    if isinstance(run, RunSummary):
        summary = run
        if not summary.output:
            raise ValueError("the run summary has no 'output' (run directory); pass the run directory instead")
        run_dir = Path(summary.output)
    else:
        run_dir = Path(run)
        summary = read_summary(run_dir)
    target = Path(out_path) if out_path is not None else run_dir / REPORT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_analysis_html(run_dir, summary), encoding="utf-8")
    return target
