"""The monitor end to end on a real model's logs: verdicts, exit codes, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.monitoring.conftest import FOREIGN_TEXTS, write_log
from textops.errors import ExitCode
from textops.monitoring.config import MonitorError, load_monitor_settings
from textops.monitoring.monitor import run_monitor, write_outputs


def _settings(reference_dir: Path, log: Path, out: Path, *overrides: str, **explicit):
    return load_monitor_settings(None, ["window.last=all", *overrides], reference=reference_dir, log=log, output=out, **explicit)


def test_window_from_the_same_distribution_raises_no_alert(model_dir, reference_dir, held_out, tmp_path):
    log = write_log(model_dir, held_out.text.tolist(), tmp_path / "log")
    result = run_monitor(_settings(reference_dir, log, tmp_path / "out"))
    v = result.verdict
    assert v.exit_code == ExitCode.OK, v.line()
    assert not v.drifted
    assert v.drift["columns"]["text"]["score"] < v.drift["columns"]["text"]["threshold"]
    assert v.window["records"] == len(held_out)


def test_foreign_texts_are_flagged_as_drift(model_dir, reference_dir, tmp_path):
    log = write_log(model_dir, FOREIGN_TEXTS, tmp_path / "log")
    result = run_monitor(_settings(reference_dir, log, tmp_path / "out"))
    v = result.verdict
    assert v.exit_code == ExitCode.DRIFT
    assert v.drifted
    assert {"drift:text"} <= set(v.fired)
    cols = v.drift["columns"]
    assert cols["text"]["score"] > 0.9
    assert cols["oov_share"]["drifted"] and cols["non_letter_share"]["drifted"]
    assert v.drift["descriptor_means"]["oov_share"]["window"] > v.drift["descriptor_means"]["oov_share"]["reference"]


def test_outputs_report_snapshot_verdict(model_dir, reference_dir, held_out, tmp_path):
    from evidently.core.report import Snapshot

    log = write_log(model_dir, held_out.text.tolist()[:200], tmp_path / "log")
    result = run_monitor(_settings(reference_dir, log, tmp_path / "out"))
    paths = write_outputs(result, tmp_path / "out")
    verdict = json.loads(Path(paths["verdict"]).read_text())
    assert verdict["status"] == "ok" and verdict["exit_code"] == 0
    snapshot = Snapshot.load(paths["snapshot"])  # a real Evidently snapshot, loadable again
    assert any("ValueDrift" in m["metric_name"] for m in snapshot.dict()["metrics"])
    html = Path(paths["report"]).read_text()
    assert "TextOps monitoring report" in html and "drawDashboard" in html
    assert '<script src="http' not in html and "<link" not in html  # nothing fetched from a CDN


def test_corrupt_lines_are_skipped_counted_and_shown(model_dir, reference_dir, held_out, tmp_path):
    log = write_log(model_dir, held_out.text.tolist()[:200], tmp_path / "log")
    file = next(log.iterdir())
    with open(file, "a", encoding="utf-8") as f:
        f.write("{truncated json\n")
        f.write('{"request_id": "x", "ts": 1}\n')  # missing fields
        f.write("not json at all\n")
    result = run_monitor(_settings(reference_dir, log, tmp_path / "out"))
    assert result.verdict.window["corrupt_lines"] == 3
    assert result.verdict.window["records"] == 200
    assert "3 corrupt line(s) skipped" in result.verdict.line()
    paths = write_outputs(result, tmp_path / "out")
    html = Path(paths["report"]).read_text()
    assert "corrupt lines skipped" in html and "missing field(s)" in html


def test_empty_window_is_a_clear_no_data_error(model_dir, reference_dir, held_out, tmp_path):
    old = time.time() - 30 * 86400
    log = write_log(model_dir, held_out.text.tolist()[:50], tmp_path / "log", start_ts=old)
    settings = load_monitor_settings(None, ["window.last=24h"], reference=reference_dir, log=log, output=tmp_path / "out")
    with pytest.raises(MonitorError) as err:
        run_monitor(settings)
    assert err.value.exit_code == ExitCode.NO_DATA
    assert "is empty" in str(err.value) and "--window" in str(err.value)
    assert "50 valid records" in str(err.value)


def test_log_directory_without_log_files(reference_dir, tmp_path):
    (tmp_path / "log").mkdir()
    with pytest.raises(MonitorError, match="holds no predictions-") as err:
        run_monitor(_settings(reference_dir, tmp_path / "log", tmp_path / "out"))
    assert err.value.exit_code == ExitCode.NO_DATA


def test_too_few_records_for_a_verdict(model_dir, reference_dir, held_out, tmp_path):
    log = write_log(model_dir, held_out.text.tolist()[:20], tmp_path / "log")
    with pytest.raises(MonitorError, match="fewer than window.min_records=100") as err:
        run_monitor(_settings(reference_dir, log, tmp_path / "out"))
    assert err.value.exit_code == ExitCode.NO_DATA


def test_missing_reference_is_a_usage_error(model_dir, held_out, tmp_path):
    log = write_log(model_dir, held_out.text.tolist()[:50], tmp_path / "log")
    with pytest.raises(MonitorError, match="does not exist") as err:
        run_monitor(_settings(tmp_path / "no-such-run", log, tmp_path / "out"))
    assert err.value.exit_code == ExitCode.USAGE


def test_csv_reference_needs_a_model(held_out, tmp_path):
    from textops.monitoring.reference import load_reference

    csv = tmp_path / "ref.csv"
    held_out.to_csv(csv, index=False)
    with pytest.raises(MonitorError, match="--model"):
        load_reference(csv)


def test_csv_reference_labels_must_be_filled_and_known_to_the_model(model_dir, held_out, tmp_path):
    from textops.monitoring.reference import load_reference

    frame = held_out.head(40).copy()
    frame.loc[[3, 7], "label"] = ["", "  "]
    frame.to_csv(tmp_path / "blank.csv", index=False)
    with pytest.raises(MonitorError, match=r"2 row\(s\) with an empty label \(row\(s\) 4, 8 after the header\)") as err:
        load_reference(tmp_path / "blank.csv", model_dir)
    assert err.value.exit_code == ExitCode.USAGE
    frame = held_out.head(40).copy()
    frame["label"] = ["pos", "neg"] * 20  # another data set's labels: every class the model does not have
    frame.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(MonitorError, match=r"label\(s\) the model .* does not know \('neg', 'pos'; its classes: ") as err:
        load_reference(tmp_path / "other.csv", model_dir)
    assert err.value.exit_code == ExitCode.USAGE
    held_out.head(40).to_csv(tmp_path / "good.csv", index=False)
    assert len(load_reference(tmp_path / "good.csv", model_dir).frame) == 40


def test_service_alert_on_errors_and_latency(model_dir, reference_dir, held_out, tmp_path):
    from textops.prediction_log import PredictionRecord

    log = write_log(model_dir, held_out.text.tolist()[:300], tmp_path / "log", latency_ms=2000.0)
    with open(tmp_path / "log" / "predictions-99999999T000000-0001.jsonl", "w", encoding="utf-8") as f:
        for i in range(60):
            f.write(PredictionRecord(f"e{i}", time.time(), "m", 1, "some text", status="error", error="overloaded").to_json() + "\n")
    result = run_monitor(_settings(reference_dir, log, tmp_path / "out"))
    v = result.verdict
    assert v.exit_code == ExitCode.SERVICE, v.line()
    assert {"service:error_rate", "service:latency_p99"} == set(v.fired)
    assert v.service["errors"] == 60 and v.service["error_rate"] == pytest.approx(60 / 360)


def test_cli_exit_codes_and_textfile(model_dir, reference_dir, held_out, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from textops.cli import main

    runner = CliRunner()
    ok_log = write_log(model_dir, held_out.text.tolist()[:300], tmp_path / "ok")
    prom = tmp_path / "metrics" / "monitor.prom"
    res = runner.invoke(
        main,
        ["monitor", "--log", str(ok_log), "--reference", str(reference_dir), "--window", "all", "--output", str(tmp_path / "o1"), "--textfile", str(prom)],
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].startswith("OK:")
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert families["textops_monitor_drifted"].samples[0].value == 0.0

    bad_log = write_log(model_dir, FOREIGN_TEXTS, tmp_path / "bad")
    res = runner.invoke(main, ["monitor", "--log", str(bad_log), "--reference", str(reference_dir), "--window", "all", "--output", str(tmp_path / "o2")])
    assert res.exit_code == ExitCode.DRIFT, res.output
    assert res.stdout.startswith("ALERT (drift:")

    res = runner.invoke(main, ["monitor", "--log", str(bad_log), "--reference", str(tmp_path / "nope"), "--output", str(tmp_path / "o3")])
    assert res.exit_code == ExitCode.USAGE
    assert "reference" in res.output and "does not exist" in res.output

    res = runner.invoke(main, ["monitor", "--log", str(bad_log), "--reference", str(reference_dir), "--window", "5 parsecs"])
    assert res.exit_code == ExitCode.USAGE
    assert "is not a duration" in res.output
