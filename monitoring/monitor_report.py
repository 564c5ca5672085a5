"""The monitoring report: one self-contained HTML page.

The top is ours (verdict, alerts, the window, corrupt lines, feedback problems, errors and
latency, quality against the reference); below it, Evidently's own dashboards (per-column drift
with distributions, classification quality), rendered by Evidently's bundled JavaScript, which
is inlined in the page (no CDN: it opens offline).
"""

from __future__ import annotations

from typing import Any

from textops.monitoring.htmlpage import STYLE, esc, fmt, table


def _summary_html(result: Any) -> str:
    v = result.verdict
    d = v.to_dict()
    parts = []
    badge = (
        f'<span class="tx-badge tx-alert">ALERT: {esc(", ".join(d["fired"]))}</span>'
        if v.alerts
        else '<span class="tx-badge tx-ok">OK: no alert</span>'
    )
    parts.append(f"<h1>TextOps monitoring report</h1><p>{badge} &nbsp; exit status {v.exit_code}</p>")
    parts.append(f'<p class="tx-muted">{esc(v.line())}</p>')
    if v.alerts:
        parts.append("<h2>Alerts</h2>")
        parts.append(table(["kind", "check", "message"], [(a.kind, a.check, a.message) for a in v.alerts]))
    w = d["window"]
    rows = [
        ("window", w["range"]),
        ("records in window", w["records"]),
        ("successful predictions", w["ok"]),
        ("records outside the window", w["outside_window"]),
        ("log files read", w["files"]),
        ("corrupt lines skipped", w["corrupt_lines"]),
        ("models answering", ", ".join(w["models"]) or "-"),
        ("reference", f"{d['reference'].get('source')} ({d['reference'].get('rows')} rows)"),
        ("reference model", d["reference"].get("model")),
    ]
    parts.append("<h2>Window</h2>" + table(["", "value"], rows))
    if v.notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{esc(n)}</li>" for n in v.notes) + "</ul>")
    if d["drift"].get("signals"):
        parts.append("<h2>Signals that alert on their own</h2>")
        sig_rows = []
        for name, sig in d["drift"]["signals"].items():
            if sig["fired"]:
                flag = '<span class="tx-bad">ALERT</span>'
            elif not sig["enabled"]:
                flag = '<span class="tx-muted">off</span>'
            else:
                flag = '<span class="tx-good">ok</span>'
            sig_rows.append(
                (esc(name), esc(sig["method"]), fmt(sig["score"]), fmt(sig["threshold"]), fmt(sig.get("noise")), fmt(sig["limit"]), flag, esc(sig["meaning"]))
            )
        dataset = d["drift"]
        fired = dataset["dataset_drift"]
        sig_rows.append(
            (
                "dataset (share of columns)", "share", fmt(dataset["drifted_share"], 2), fmt(dataset["drift_share_limit"], 2), "-", "-",
                '<span class="tx-bad">ALERT</span>' if fired else '<span class="tx-good">ok</span>',
                esc(f"{dataset['drifted_count']}/{len(dataset['columns'])} columns drifted"),
            )
        )
        parts.append(table(["signal", "method", "score", "threshold", "noise level", "limit", "result", "what it means"], sig_rows, raw=True))
        parts.append(
            '<p class="tx-muted">Each signal fires a drift alert alone when its score passes its limit: the threshold, '
            "or, for prediction and confidence, the level that reference samples of the window's size reach "
            "against the rest of the reference from sampling alone, when that is higher. Prediction and "
            "confidence count every request; the per-column table below compares distinct texts.</p>"
        )
    e = d.get("estimate") or {}
    if e.get("metrics"):
        parts.append(_estimate_html(e))
    if d["drift"]:
        dr = d["drift"]
        parts.append("<h2>Drift</h2>")
        parts.append(
            f'<p>{dr["drifted_count"]}/{len(dr["columns"])} columns drifted (share {fmt(dr["drifted_share"], 2)}); '
            f'compared {dr["rows_current"]} distinct window texts with {dr["rows_reference"]} distinct reference texts '
            f'({fmt(100 * (dr.get("window_duplicate_share") or 0.0), 1)}% of the window repeats a text).</p>'
        )
        drift_rows = []
        for name, c in dr["columns"].items():
            flag = '<span class="tx-bad">drift</span>' if c["drifted"] else '<span class="tx-good">ok</span>'
            drift_rows.append((esc(name), esc(c["method"]), fmt(c["score"]), fmt(c["threshold"]), flag))
        parts.append(table(["column", "method", "score", "threshold", "result"], drift_rows, raw=True))
        means = dr["descriptor_means"]
        parts.append(
            "<h3>Descriptor means</h3>"
            + table(["descriptor", "reference", "window"], [(k, m["reference"], m["window"]) for k, m in means.items()])
        )
        shares = dr["prediction_share"]
        labels = sorted(set(shares["reference"]) | set(shares["window"]))
        parts.append(
            "<h3>Predicted-label shares</h3>"
            + table(["label", "reference", "window"], [(c, shares["reference"].get(c, 0.0), shares["window"].get(c, 0.0)) for c in labels])
        )
    s = d["service"]
    parts.append(
        "<h2>Errors and latency (from the log)</h2>"
        + table(
            ["records", "requests", "errors", "error rate", "p50 ms", "p95 ms", "p99 ms"],
            [(s["records"], s["requests"], s["errors"], s["error_rate"], s["latency_p50_ms"], s["latency_p95_ms"], s["latency_p99_ms"])],
        )
    )
    q = d["quality"]
    parts.append("<h2>Classification quality (labels fed back)</h2>")
    if q.get("labelled"):
        parts.append(f"<p>{q['labelled']} labelled record(s) in the window.</p>")
        parts.append(
            table(
                ["metric", "window", "reference"],
                [(m, q["metrics"].get(m), q["reference"].get(m)) for m in q["metrics"]],
            )
        )
        parts.append(
            table(
                ["class", "precision", "recall", "f1", "auc", "support"],
                [(c, r["precision"], r["recall"], r["f1"], r["auc"], int(r["support"] or 0)) for c, r in q["per_class"].items()],
            )
        )
    else:
        parts.append("<p>No ground-truth labels for this window (pass --feedback FILE).</p>")
    fb = d["feedback"]
    if fb:
        parts.append(
            "<h3>Feedback file</h3>"
            + table(
                ["rows", "matched", "invalid", "unknown request ids", "ambiguous", "duplicates"],
                [(fb["rows"], fb["matched"], fb["invalid"], fb["unknown_ids"], fb["ambiguous"], fb["duplicates"])],
            )
        )
        if fb["examples"]:
            parts.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in fb["examples"]) + "</ul>")
    parts.append("<h2>Evidently dashboards</h2>")
    return '<div class="tx-page">' + "".join(parts) + "</div>"


def _estimate_html(e: dict[str, Any]) -> str:
    share = int(round(100 * e["interval"]))
    parts = [
        "<h2>Performance estimated without labels (CBPE)</h2>",
        f"<p>On {e['rows']} predictions: the model's probabilities calibrated on the reference ({esc(e['calibration'])} "
        "calibration), then the expected confusion matrix of the window"
        f"{', re-weighted to the estimated class priors of the window' if e.get('priors_adjusted') else ''}. "
        f"Intervals: {share}% (windows of this traffic: texts resampled, labels drawn from the calibrated probabilities)"
        f"{'; an alert needs the whole interval below the threshold' if e.get('alert_when') == 'interval' else ''}.</p>",
    ]
    thresholds = e.get("thresholds") or {}
    check = e.get("versus_labels") or {}
    headers = ["metric", "estimate", "low", "high", "reference (measured)", "threshold"]
    if check:
        headers += [f"true on {check['rows']} labelled", "estimate on them", "error"]
    rows = []
    for m, iv in e["metrics"].items():
        bound = iv["high"] if e.get("alert_when") == "interval" else iv["value"]  # what the alert compares
        below = m in thresholds and bound is not None and bound < thresholds[m]
        value = f'<span class="tx-bad">{fmt(iv["value"])}</span>' if below else fmt(iv["value"])
        row = [esc(m), value, fmt(iv["low"]), fmt(iv["high"]), fmt(e["reference"].get(m)), fmt(thresholds.get(m))]
        if check:
            row += [fmt(check["true"][m]), fmt(check["estimated"][m]), fmt(check["error"][m])]
        rows.append(row)
    parts.append(table(headers, rows, raw=True))
    if e.get("threshold_source"):
        parts.append(f'<p class="tx-muted">Thresholds: {esc(e["threshold_source"])}.</p>')
    def span(iv: dict[str, Any]) -> str:
        return "-" if iv["low"] is None else f"{fmt(iv['low'], 3)}-{fmt(iv['high'], 3)}"

    per_class_rows = []
    for c, r in e["per_class"].items():
        p, rec = r["precision"], r["recall"]
        per_class_rows.append((c, p["value"], span(p), rec["value"], span(rec), e["expected_share"].get(c)))
    parts.append(
        "<h3>Per class (estimated)</h3>"
        + table(["class", "precision", "interval", "recall", "interval", "expected share of true labels"], per_class_rows)
    )
    return "".join(parts)


def render_monitor_html(result: Any) -> str:
    from evidently.core.metric_types import render_widgets
    from evidently.legacy.renderers.html_widgets import group_widget

    widgets = []
    # Evidently 0.7.23 keeps a snapshot's rendered widgets in ``_widgets`` (what its own
    # get_html_str renders); both snapshots go into one dashboard so the page loads its
    # JavaScript once.
    if result.drift_snapshot is not None:
        widgets.append(group_widget(title="Data and prediction drift", widgets=result.drift_snapshot._widgets))
    if result.quality_snapshot is not None:
        widgets.append(group_widget(title="Classification quality on labelled records", widgets=result.quality_snapshot._widgets))
    summary = STYLE + _summary_html(result)
    if not widgets:
        return f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>TextOps monitoring report</title></head><body>{summary}</body></html>\n"
    document = render_widgets(widgets, as_iframe=False)
    marker = "<body>"
    at = document.index(marker) + len(marker)
    return document[:at] + summary + document[at:]
