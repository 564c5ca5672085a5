"""The alert rules and the Grafana dashboard name only metrics the project exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from textops.monitoring import exporter

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "monitoring" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"
_PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, groupings, ranges, calls removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:ms|[smhdwy])\b", " ", text)  # durations (offset 5m)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or name.lower() in _PROMQL_WORDS:
            continue  # a function call or a keyword
        names.add(name)
    return names


def exported_names() -> set[str]:
    """What the monitor exports plus what the server's registry exposes (sample names)."""
    from textops.serving import metrics as serving_metrics  # part of this tree: a broken import fails the test
    names = {exporter.PREFIX + n for n in exporter.METRICS}
    for family in serving_metrics.ServingMetrics().registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def test_metric_name_extraction():
    expr = 'histogram_quantile(0.99, sum by (model, le) (rate(a_bucket{stage="total", x=~"5.."}[5m]))) > on(model) b and c offset 5m'
    assert metric_names(expr) == {"a_bucket", "b", "c"}


def test_every_alert_expression_names_an_exported_metric():
    known = exported_names()
    rules = yaml.safe_load(RULES.read_text())["groups"]
    exprs = [(r["alert"], r["expr"]) for g in rules for r in g["rules"]]
    assert {"TextOpsHighErrorRate", "TextOpsHighP99Latency", "TextOpsDataDrift", "TextOpsQualityDrop"} <= {a for a, _ in exprs}
    for alert, expr in exprs:
        names = metric_names(expr)
        assert names, f"{alert}: no metric found in {expr!r}"
        assert names <= known, f"{alert} uses metrics nobody exports: {sorted(names - known)}"


def test_dashboard_queries_name_exported_metrics():
    known = exported_names()
    dashboard = json.loads(DASHBOARD.read_text())
    targets = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 10
    titles = " ".join(p["title"] for p in dashboard["panels"])
    assert "Server" in titles and "Monitor" in titles
    for title, expr in targets:
        names = metric_names(expr)
        assert names and names <= known, f"panel {title!r}: unknown metrics {sorted(names - known)}"


def test_promtool_checks_and_unit_tests_the_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus); the parse-based checks above still ran")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [promtool, "test", "rules", str(Path(__file__).with_name("alerts_test.yml"))],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
