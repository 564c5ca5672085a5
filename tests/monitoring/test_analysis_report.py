"""The model-analysis report of real pipeline runs (a first run, then a candidate compared with
the model in service). Runs the TFX pipeline twice: marked e2e and slow."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import summary, textops_cli
from tests.monitoring.conftest import chromium, render
from tests.monitoring.test_render import assert_not_blank

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from textops.pipelines.demo_data import generate

    data = generate(tmp_path_factory.mktemp("an_data"), train_rows=600, test_rows=240, seed=5)
    out = tmp_path_factory.mktemp("an_run")
    first = textops_cli("run", "--data", str(data), "--output", str(out), "--set", "training.epochs=3")
    assert first.returncode == 0, first.stdout + first.stderr
    # a different candidate (fewer epochs), evaluated against the model now in service
    second = textops_cli("run", "--data", str(data), "--output", str(out), "--set", "training.epochs=2")
    assert second.returncode in (0, 4), second.stdout + second.stderr
    return out


def test_report_command_writes_a_standalone_page(two_runs, tmp_path):
    run = summary(two_runs)
    target = tmp_path / "analysis.html"
    proc = textops_cli("report", "--run", str(two_runs), "--output", str(target), "--curves-dir", str(tmp_path / "curves"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = target.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # nothing to fetch
    # the gate: thresholds, the baseline comparison, the blessing and why
    assert "Gate: thresholds, baseline, blessing" in html
    assert run["baseline"] is not None
    assert f"Compared with the model in service: version {run['baseline']['version']}" in html
    assert ("Why blessed" in html) == bool(run["blessed"])
    for reason in run["reasons"]:
        assert reason.replace("'", "&#x27;") in html
    # slices as the Evaluator computed them (overall always; per class / length bucket when configured)
    assert "<h3>Overall</h3>" in html
    for feature in ("label", "text_length_bucket"):
        if f"By {feature}" not in html:
            pytest.fail(f"the Evaluator's {feature} slices are missing from the report")
    # charts: confusion matrices for candidate and baseline, ROC/PR, training curves
    assert "confusion matrix" in html or len(re.findall(r"data:image/png;base64", html)) >= 4
    assert len(re.findall(r"<img ", html)) >= 4
    assert "baseline" in html and "ROC AUC" in html
    assert {"accuracy.png", "all.png", "loss.png"} <= {p.name for p in (tmp_path / "curves").iterdir()}


def test_analysis_report_renders_in_chromium(two_runs, tmp_path):
    chromium()
    from textops.monitoring.analysis_report import write_analysis_report

    path = write_analysis_report(two_runs, tmp_path / "analysis.html")
    png, dom = render(path, tmp_path / "analysis.png", height=3600)
    assert_not_blank(png, min_colors=100)
    assert dom.count("data:image/png;base64") >= 4
