"""Ground truth fed back by request id: quality metrics, alerts, and bad feedback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.monitoring.conftest import write_log
from textops.monitoring.config import MonitorError, load_monitor_settings
from textops.monitoring.feedback import FeedbackServer, FeedbackStats, join_feedback, read_feedback
from textops.monitoring.monitor import run_monitor


def _run(reference_dir, log, feedback, out):
    settings = load_monitor_settings(None, ["window.last=all"], reference=reference_dir, log=log, feedback=feedback, output=out)
    return run_monitor(settings).verdict


def test_true_labels_give_quality_close_to_the_reference(model_dir, reference_dir, held_out, tmp_path):
    rows = held_out.iloc[:300]
    log = write_log(model_dir, rows.text.tolist(), tmp_path / "log", id_prefix="q")
    fb = tmp_path / "labels.jsonl"
    fb.write_text("".join(json.dumps({"request_id": f"q-{i}", "label": lab}) + "\n" for i, lab in enumerate(rows.label)))
    v = _run(reference_dir, log, fb, tmp_path / "out")
    assert v.quality["labelled"] == 300
    assert v.exit_code == 0, v.line()
    for metric in ("accuracy", "f1", "auc"):
        assert abs(v.quality["metrics"][metric] - v.quality["reference"][metric]) < 0.1


def test_wrong_labels_fire_a_quality_alert_and_unknown_ids_are_counted(model_dir, reference_dir, held_out, tmp_path):
    rows = held_out.iloc[:300]
    log = write_log(model_dir, rows.text.tolist(), tmp_path / "log", id_prefix="q")
    classes = sorted(set(held_out.label))
    wrong = [classes[(classes.index(lab) + 1) % len(classes)] for lab in rows.label]  # every label shifted
    fb = tmp_path / "labels.csv"
    lines = ["request_id,label"] + [f"q-{i},{lab}" for i, lab in enumerate(wrong)]
    lines += ["ghost-1,billing", "ghost-2,account", ",billing"]  # unknown ids and an invalid row
    fb.write_text("\n".join(lines) + "\n")
    v = _run(reference_dir, log, fb, tmp_path / "out")
    assert v.exit_code == 6, v.line()
    assert "quality:f1" in v.fired and "quality:accuracy_drop" in v.fired
    assert v.feedback["unknown_ids"] == 2 and v.feedback["invalid"] == 1 and v.feedback["matched"] == 300
    assert any("not in this window" in n for n in v.notes)


def test_feedback_only_for_unknown_ids_does_not_crash(model_dir, reference_dir, held_out, tmp_path):
    log = write_log(model_dir, held_out.text.tolist()[:200], tmp_path / "log")
    fb = tmp_path / "labels.jsonl"
    fb.write_text('{"request_id": "nobody", "label": "billing"}\n{broken\n')
    v = _run(reference_dir, log, fb, tmp_path / "out")
    assert v.exit_code == 0
    assert v.quality["labelled"] == 0
    assert v.feedback["unknown_ids"] == 1 and v.feedback["invalid"] == 1


def test_missing_feedback_file_is_a_clear_error(tmp_path):
    with pytest.raises(MonitorError, match="feedback file .* does not exist"):
        read_feedback(tmp_path / "nope.jsonl")


def test_multi_text_requests_need_an_index():
    import pandas as pd

    frame = pd.DataFrame({"request_id": ["a", "a", "b"], "index": [0, 1, 0]})
    feedback = pd.DataFrame(
        [{"request_id": "a", "index": None, "label": "x"}, {"request_id": "a", "index": 1, "label": "y"}, {"request_id": "b", "index": None, "label": "z"}, {"request_id": "b", "index": None, "label": "w"}]
    )
    stats = FeedbackStats()
    target = join_feedback(frame, feedback, stats)
    assert target.tolist() == [None, "y", "w"]
    assert stats.ambiguous == 1 and stats.duplicates == 1 and stats.matched == 2


def test_feedback_endpoint_appends_valid_rows_and_rejects_bad_ones(tmp_path):
    path = tmp_path / "fb" / "labels.jsonl"
    server = FeedbackServer(path).start()
    try:
        def post(payload):
            req = urllib.request.Request(f"{server.url}/feedback", data=json.dumps(payload).encode(), method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())

        assert post([{"request_id": "r1", "label": "billing"}, {"request_id": "r2", "label": "account", "index": 0}]) == (200, {"accepted": 2})
        with pytest.raises(urllib.error.HTTPError) as err:
            post({"request_id": "r3"})
        assert err.value.code == 400 and "missing label" in err.value.read().decode()
    finally:
        server.stop()
    rows = read_feedback(path)
    assert rows.request_id.tolist() == ["r1", "r2"]
