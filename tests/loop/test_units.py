"""Fast tests of continuous training: cron, spans, the run lock, ticks, new spans, rollback, history."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.loop.conftest import make_span, shifted_rows
from textops.ct.cron import Cron
from textops.ct.retrain import retrain_on_drift, write_span
from textops.ct.rollback import rollback
from textops.ct.runners import RunOutcome
from textops.ct.schedule import serve_schedule, tick
from textops.ct.state import DECISION_LOG, LoopError, read_state, run_lock
from textops.data import discover, list_spans
from textops.errors import DataValidationError, ExitCode
from textops.settings import DataSettings, SpanSettings, load_settings

ROWS = [("the app crashes", "technical"), ("refund my payment", "billing")]


# --- cron ----------------------------------------------------------------------------------------


def test_cron_matches_steps_ranges_lists_and_sunday_as_0_or_7():
    c = Cron.parse("*/15 9-17 * * 1-5")
    assert c.matches(dt.datetime(2026, 11, 30, 9, 45))  # a Monday
    assert not c.matches(dt.datetime(2026, 11, 30, 9, 44))
    assert not c.matches(dt.datetime(2026, 11, 30, 18, 0))
    assert not c.matches(dt.datetime(2026, 11, 29, 10, 0))  # a Sunday
    assert Cron.parse("0 3 * * 7").matches(dt.datetime(2026, 11, 29, 3, 0))
    assert Cron.parse("0 3 * * 0").matches(dt.datetime(2026, 11, 29, 3, 0))
    assert Cron.parse("5,35 * * * *").minutes == {5, 35}
    assert Cron.parse("10/20 * * * *").minutes == {10, 30, 50}


def test_cron_day_fields_fire_on_either_when_both_are_restricted():
    c = Cron.parse("0 0 1 * 1")  # the 1st of the month OR any Monday
    assert c.matches(dt.datetime(2026, 12, 1, 0, 0))  # a Tuesday, the 1st
    assert c.matches(dt.datetime(2026, 12, 7, 0, 0))  # a Monday
    assert not c.matches(dt.datetime(2026, 12, 8, 0, 0))


def test_cron_next_after_is_strictly_later_and_skips_to_the_next_match():
    c = Cron.parse("30 2 * * *")
    assert c.next_after(dt.datetime(2026, 11, 28, 2, 30, 10)) == dt.datetime(2026, 11, 29, 2, 30)
    assert c.next_after(dt.datetime(2026, 11, 28, 1, 0)) == dt.datetime(2026, 11, 28, 2, 30)
    assert Cron.parse("0 0 29 2 *").next_after(dt.datetime(2026, 3, 1)) == dt.datetime(2028, 2, 29)


@pytest.mark.parametrize(
    "expr, fragment",
    [("* * * *", "has 4 fields"), ("61 * * * *", "0-59"), ("* * * * mon", "names are not supported"),
     ("*/0 * * * *", "positive"), ("5-1 * * * *", "0-59")],
)
def test_cron_rejects_bad_expressions_saying_why(expr, fragment):
    with pytest.raises(LoopError, match=fragment):
        Cron.parse(expr)


def test_cron_that_never_fires_is_an_error():
    with pytest.raises(LoopError, match="never fires"):
        Cron.parse("0 0 31 2 *").next_after(dt.datetime(2026, 1, 1))


def test_serve_schedule_ticks_at_each_cron_time_without_catch_up():
    clock = [dt.datetime(2026, 11, 28, 10, 7)]
    fired = []

    def sleep(seconds):
        clock[0] += dt.timedelta(seconds=seconds)

    ticks = serve_schedule(
        Cron.parse("*/10 * * * *"), lambda: fired.append(clock[0]) or {}, lambda _: None, max_ticks=3,
        now=lambda: clock[0], sleep=sleep,
    )
    assert ticks == 3
    assert [t.strftime("%H:%M") for t in fired] == ["10:10", "10:20", "10:30"]


# --- spans ---------------------------------------------------------------------------------------


def test_a_window_of_one_span_is_read_in_place_through_span_patterns(tmp_path):
    for n in (1, 2, 10):
        make_span(tmp_path, n, ROWS, ROWS)
    settings = DataSettings(spans=SpanSettings(window=1))
    assert list(list_spans(tmp_path, settings.spans)) == [1, 2, 10]
    src = discover(str(tmp_path), settings)
    assert src.input_base == str(tmp_path)
    assert (src.train_pattern, src.eval_pattern) == ("span-{SPAN}/train.csv", "span-{SPAN}/test.csv")
    assert src.span == 10 and src.spans == (10,)


def test_a_wider_window_is_staged_with_the_newest_span_for_evaluation(tmp_path):
    data, staging = tmp_path / "data", tmp_path / "out" / "staged"
    for n in (1, 2, 3):
        make_span(data, n, shifted_rows(5, n), shifted_rows(3, 10 + n))
    src = discover(str(data), DataSettings(spans=SpanSettings(window=2)), staging_dir=str(staging))
    assert src.spans == (2, 3) and src.span == 3
    assert (src.train_pattern, src.eval_pattern) == ("span-{SPAN}/train/*", "span-{SPAN}/eval/*")
    assert sorted(os.listdir(staging / "span-3" / "train")) == ["span-2-train.csv", "span-3-train.csv"]
    staged_eval = staging / "span-3" / "eval" / "test.csv"
    assert staged_eval.read_bytes() == (data / "span-3" / "test.csv").read_bytes()
    # Modification times survive staging, so an unchanged window keeps ExampleGen's fingerprint.
    assert staged_eval.stat().st_mtime == (data / "span-3" / "test.csv").stat().st_mtime
    # A new span moves the window; the old staging is gone.
    make_span(data, 4, ROWS, ROWS)
    src = discover(str(data), DataSettings(spans=SpanSettings(window=2)), staging_dir=str(staging))
    assert src.spans == (3, 4) and os.listdir(staging) == ["span-4"]


def test_span_problems_are_reported_with_the_directory_and_the_fix(tmp_path):
    make_span(tmp_path, 1, ROWS, ROWS)
    (tmp_path / "span-2").mkdir()
    (tmp_path / "span-2" / "train.csv").write_text("text,label\na,b\n")
    with pytest.raises(DataValidationError, match="newest span and needs exactly one test file"):
        discover(str(tmp_path), DataSettings(spans=SpanSettings(window=1)))
    (tmp_path / "span-2" / "test.csv").write_text("text,label\na,b\n")
    with pytest.raises(DataValidationError, match="staged into the run's output"):
        discover(str(tmp_path), DataSettings(spans=SpanSettings(window=2)))
    (tmp_path / "loose.csv").write_text("text,label\na,b\n")
    with pytest.raises(DataValidationError, match="both span directories"):
        discover(str(tmp_path), DataSettings())


def test_span_settings_validate_and_override():
    assert load_settings(None, ["data.spans.window=3"]).data.spans.window == 3
    with pytest.raises(ValueError, match="data.spans.window"):
        load_settings(None, ["data.spans.window=0"])


def test_the_pipeline_pins_the_span_it_was_given(tmp_path):
    from textops.pipelines.pipeline import Locations, create_pipeline
    from textops.settings import Settings

    make_span(tmp_path / "data", 4, ROWS, ROWS)
    settings = Settings()
    src = discover(str(tmp_path / "data"), settings.data.model_copy(update={"spans": SpanSettings(window=1)}))
    pipeline = create_pipeline(settings, src, Locations(str(tmp_path / "root"), str(tmp_path / "repo")))
    example_gen = pipeline.components[0]
    range_config = json.loads(example_gen.exec_properties["range_config"])
    assert range_config["static_range"] == {"start_span_number": 4, "end_span_number": 4}
    assert "span-{SPAN}/train.csv" in example_gen.exec_properties["input_config"]


# --- the lock and ticks ------------------------------------------------------------------------------


class FakeRun:
    """Stands in for a pipeline run; optionally blocks until released."""

    def __init__(self, status="pushed", exit_code=0, block: threading.Event | None = None):
        self.calls = 0
        self.status, self.exit_code, self.block = status, exit_code, block
        self.started = threading.Event()

    def __call__(self) -> RunOutcome:
        self.calls += 1
        self.started.set()
        if self.block is not None:
            assert self.block.wait(timeout=60), "the test never released the run"
        return RunOutcome(self.exit_code, self.status, 7 if self.status == "pushed" else None)


def _decisions(out: Path) -> list[str]:
    return [json.loads(line)["decision"] for line in (out / DECISION_LOG).read_text().splitlines()]


def test_a_tick_runs_on_a_new_span_only_and_logs_every_decision(tmp_path):
    data, out, run = tmp_path / "data", tmp_path / "out", FakeRun()
    assert tick(data, out, SpanSettings(), run, lambda _: None)["decision"] == "no_spans"
    make_span(data, 1, ROWS, ROWS)
    first = tick(data, out, SpanSettings(), run, lambda _: None)
    assert first["decision"] == "ran" and first["span"] == 1 and first["spans"] == [1] and run.calls == 1
    again = tick(data, out, SpanSettings(), run, lambda _: None)
    assert again["decision"] == "no_new_span" and run.calls == 1  # no new span: no run
    make_span(data, 2, ROWS, ROWS)
    make_span(data, 3, ROWS, ROWS)
    third = tick(data, out, SpanSettings(window=2), run, lambda _: None)
    assert third["decision"] == "ran" and third["spans"] == [2, 3] and run.calls == 2
    assert read_state(out)["last_trained_span"] == 3
    assert _decisions(out) == ["no_spans", "start", "ran", "no_new_span", "start", "ran"]


def test_a_failed_run_is_retried_by_the_next_tick_but_a_rejected_model_is_not(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    make_span(data, 1, ROWS, ROWS)
    crash = FakeRun(status="failed", exit_code=1)
    assert tick(data, out, SpanSettings(), crash, lambda _: None)["exit_code"] == 1
    assert "last_trained_span" not in read_state(out)
    rejected = FakeRun(status="not_blessed", exit_code=4)
    assert tick(data, out, SpanSettings(), rejected, lambda _: None)["decision"] == "ran"
    assert tick(data, out, SpanSettings(), rejected, lambda _: None)["decision"] == "no_new_span"
    assert rejected.calls == 1


def test_two_ticks_at_once_start_one_run(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    make_span(data, 1, ROWS, ROWS)
    release = threading.Event()
    run = FakeRun(block=release)
    results: list[dict] = []
    first = threading.Thread(target=lambda: results.append(tick(data, out, SpanSettings(), run, lambda _: None)))
    first.start()
    try:
        assert run.started.wait(timeout=30)  # tick 1 holds the lock and is "running the pipeline"
        second = tick(data, out, SpanSettings(), run, lambda _: None)
        assert second["decision"] == "busy" and "another run holds the lock" in second["message"]
        assert f"pid {os.getpid()}" in second["message"]  # says who holds it
    finally:
        release.set()
        first.join(timeout=60)
    assert results[0]["decision"] == "ran" and run.calls == 1
    # The lock is free again once the run ends.
    assert tick(data, out, SpanSettings(), run, lambda _: None)["decision"] == "no_new_span"


def test_schedule_once_exits_at_once_when_another_process_holds_the_lock(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    make_span(data, 1, ROWS, ROWS)
    with run_lock(out):
        proc = subprocess.run(
            [sys.executable, "-m", "textops.cli", "schedule", "--once", "--data", str(data), "--output", str(out)],
            capture_output=True, text=True, timeout=300,
        )
    assert proc.returncode == int(ExitCode.BUSY), proc.stdout + proc.stderr
    assert "busy: another run holds the lock" in proc.stdout
    assert not (out / "run_summary.json").exists() and not (out / "metadata.sqlite").exists()
    assert _decisions(out) == ["busy"]


def test_schedule_needs_a_cron_or_once_and_rejects_a_bad_cron(tmp_path):
    from click.testing import CliRunner

    from textops.cli import main

    r = CliRunner().invoke(main, ["schedule", "--data", str(tmp_path), "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--cron" in r.output
    r = CliRunner().invoke(main, ["schedule", "--cron", "* * *", "--data", str(tmp_path), "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and "has 3 fields" in r.output
    # A mistyped --data is an error, not a scheduler waiting forever for spans in a path that does not exist.
    r = CliRunner().invoke(main, ["schedule", "--once", "--data", str(tmp_path / "typo"), "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and "does not exist" in r.output and not (tmp_path / "o").exists()


# --- new spans from feedback ---------------------------------------------------------------------


def test_feedback_becomes_the_next_span_split_by_text(tmp_path):
    from textops.settings import Settings

    data = tmp_path / "data"
    make_span(data, 1, ROWS, ROWS)
    rows = shifted_rows(200, seed=3) + shifted_rows(20, seed=3)  # repeated texts
    number, path = write_span(data, [t for t, _ in rows], [l for _, l in rows], Settings())
    assert number == 2 and path == data / "span-2"
    import pandas as pd

    train, test = pd.read_csv(path / "train.csv"), pd.read_csv(path / "test.csv")
    assert len(train) + len(test) == 220 and 0.15 < len(test) / 220 < 0.45
    assert not set(train.text) & set(test.text)  # a repeated text stays in one split
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_too_little_feedback_for_a_span_is_refused_and_writes_nothing(tmp_path):
    from textops.settings import Settings

    with pytest.raises(LoopError, match="Collect more feedback"):
        write_span(tmp_path, ["one text"], ["billing"], Settings())
    assert list(tmp_path.iterdir()) == []


# --- rollback ------------------------------------------------------------------------------------


def _fake_version(repo: Path, version: int) -> None:
    from textops import model_repository

    src = repo.parent / f"src-{version}"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(f"model {version}".encode())
    model_repository.publish_version(str(src), str(repo), "m", record={"pushed_by": "test"}, version=version)


def test_rollback_republishes_the_version_as_the_newest_with_a_record(tmp_path):
    from textops import model_repository

    repo = tmp_path / "repo"
    for v in (1, 2):
        _fake_version(repo, v)
    published = rollback(str(repo), "m", 1, lambda _: None)
    latest = model_repository.latest_version(str(repo), "m")
    assert latest.version == published.version > 2
    assert (Path(latest.path) / "saved_model.pb").read_bytes() == b"model 1"
    record = model_repository.read_push_record(latest.path)
    assert record["rollback_of"] == 1 and record["replaced_version"] == 2
    assert record["original_record"]["pushed_by"] == "test"
    assert [v.version for v in model_repository.list_versions(str(repo), "m")][:2] == [1, 2]  # untouched


def test_rollback_refuses_unknown_versions_listing_the_available_ones(tmp_path):
    repo = tmp_path / "repo"
    for v in (1, 2):
        _fake_version(repo, v)
    with pytest.raises(LoopError, match="no version 9 .*available versions: 1, 2"):
        rollback(str(repo), "m", 9, lambda _: None)
    with pytest.raises(LoopError, match="already the newest"):
        rollback(str(repo), "m", 2, lambda _: None)
    with pytest.raises(LoopError, match="models there: m"):
        rollback(str(repo), "other", 1, lambda _: None)


def test_rollback_cli_says_what_is_available(tmp_path):
    repo = tmp_path / "repo"
    _fake_version(repo, 3)
    proc = subprocess.run(
        [sys.executable, "-m", "textops.cli", "rollback", "--model", "m", "--to", "1", "--model-repository", str(repo)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1 and "available versions: 3" in proc.stderr


# --- run history -----------------------------------------------------------------------------------


def test_find_run_by_position_prefix_or_keyword():
    from textops.pipelines.runs import RunInfo, RunsError, find_run

    def info(run_id):
        return RunInfo(run_id, "", "pushed", [], {}, {}, True, None, None, None, {})

    history = [info("2026-11-28T10:00:00.1"), info("2026-11-28T11:00:00.2"), info("2026-11-29T09:00:00.3")]
    assert find_run(history, "1").run_id.endswith(".1")
    assert find_run(history, "-1").run_id.endswith(".3")
    assert find_run(history, "previous").run_id.endswith(".2")
    assert find_run(history, "2026-11-29").run_id.endswith(".3")
    with pytest.raises(RunsError, match="matches 2 runs"):
        find_run(history, "2026-11-28")
    with pytest.raises(RunsError, match="no run 'x'"):
        find_run(history, "x")


def test_runs_list_on_a_directory_without_runs_says_so(tmp_path):
    from click.testing import CliRunner

    from textops.cli import main

    r = CliRunner().invoke(main, ["runs", "list", "--output", str(tmp_path)])
    assert r.exit_code == 1 and "not a pipeline output directory" in r.output


# --- drift-triggered retraining (the decision; the real run is in test_loop_e2e) ------------------


def _monitor_result(kinds: list[str], rows):
    import types

    import pandas as pd

    frame = pd.DataFrame(
        {"request_id": [f"r-{i}" for i in range(len(rows))], "index": [0] * len(rows), "text": [t for t, _ in rows]}
    )
    alerts = [types.SimpleNamespace(kind=k) for k in kinds]
    return types.SimpleNamespace(verdict=types.SimpleNamespace(alerts=alerts), window=types.SimpleNamespace(frame=frame))


def _feedback(path: Path, rows, every: int = 1) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, (_, label) in enumerate(rows):
            if i % every == 0:
                f.write(json.dumps({"request_id": f"r-{i}", "label": label}) + "\n")
    return path


def test_drift_writes_the_labelled_window_as_a_span_and_runs_once(tmp_path):
    from textops.settings import Settings

    data, out = tmp_path / "data", tmp_path / "out"
    make_span(data, 1, ROWS, ROWS)
    rows = shifted_rows(120, seed=8)
    run = FakeRun()
    decision = retrain_on_drift(
        _monitor_result(["drift", "service"], rows), _feedback(tmp_path / "fb.jsonl", rows, every=2), data, out,
        Settings(), run, lambda _: None,
    )
    assert decision["decision"] == "ran" and decision["span"] == 2 and decision["spans"] == [1, 2]
    assert decision["trigger"] == "monitor:drift" and run.calls == 1
    import pandas as pd

    written = pd.concat([pd.read_csv(data / "span-2" / n) for n in ("train.csv", "test.csv")])
    assert len(written) == 60  # only the texts whose label was fed back
    expected = {t: l for i, (t, l) in enumerate(rows) if i % 2 == 0}
    assert dict(zip(written.text, written.label)) == expected
    # The scheduler will not retrain span 2 again.
    assert tick(data, out, SpanSettings(), run, lambda _: None)["decision"] == "no_new_span"


def test_no_alert_no_retraining_and_a_busy_output_writes_no_span(tmp_path):
    from textops.settings import Settings

    data, out = tmp_path / "data", tmp_path / "out"
    rows = shifted_rows(60, seed=9)
    fb = _feedback(tmp_path / "fb.jsonl", rows)
    run = FakeRun()
    quiet = retrain_on_drift(_monitor_result(["service"], rows), fb, data, out, Settings(), run, lambda _: None)
    assert quiet["decision"] == "no_retrain" and run.calls == 0 and not data.exists()
    with run_lock(out):
        busy = retrain_on_drift(_monitor_result(["quality"], rows), fb, data, out, Settings(), run, lambda _: None)
    assert busy["decision"] == "busy" and run.calls == 0 and not data.exists()


def test_monitor_retrain_on_drift_needs_its_options(tmp_path):
    from click.testing import CliRunner

    from textops.cli import main

    r = CliRunner().invoke(main, ["monitor", "--log", str(tmp_path), "--retrain-on-drift"])
    assert r.exit_code == 2 and "--data" in r.output and "--pipeline-output" in r.output
    r = CliRunner().invoke(
        main, ["monitor", "--log", str(tmp_path), "--retrain-on-drift", "--data", str(tmp_path), "--pipeline-output", str(tmp_path)]
    )
    assert r.exit_code == 2 and "--feedback" in r.output


def test_a_broken_span_is_logged_as_an_error_decision_with_the_fix(tmp_path):
    from click.testing import CliRunner

    from textops.cli import main

    data, out = tmp_path / "data", tmp_path / "out"
    (data / "span-1").mkdir(parents=True)
    (data / "span-1" / "train.csv").write_text("text,label\na,b\n")
    r = CliRunner().invoke(main, ["schedule", "--once", "--data", str(data), "--output", str(out)])
    assert r.exit_code == 3 and "needs exactly one test file" in r.output
    assert _decisions(out) == ["error"]
