"""The closed loop, end to end, with zero manual steps (acceptance 1, 2 and the real-run half of 3).

span 1 -> `textops schedule --once` trains and pushes -> `textops serve` -> shifted traffic with
fed-back labels -> `textops monitor --retrain-on-drift` flags drift, writes span 2 and retrains on
spans 1+2 -> the gate passes -> the server swaps under load with no failed request -> fresh
shifted traffic: quality recovered. Then a span with wrong labels trains a worse model, which is
not pushed while the server keeps the good one. Three full pipeline runs (minutes, marked e2e).
Each stage's time is printed (``pytest -s``); nothing asserts a duration.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.loop.conftest import make_span, shifted_rows
from tests.support.server import ServerProcess
from textops import model_repository
from textops.ct.state import read_state
from textops.pipelines.demo_data import generate
from textops.prediction_log import iter_records

pytestmark = pytest.mark.e2e

MODEL = "text_classifier"
PREDICT = f"/v1/models/{MODEL}:predict"
FAST = ["--set", "training.epochs=3"]


def cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textops.cli", *args], capture_output=True, text=True, timeout=timeout)


def predict(url: str, text: str, request_id: str) -> tuple[int, str]:
    body = json.dumps({"instances": [text]}).encode()
    req = urllib.request.Request(
        url + PREDICT, data=body, headers={"Content-Type": "application/json", "X-Request-Id": request_id}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status, r.headers.get("X-Model-Version", "?")
    except urllib.error.HTTPError as exc:
        return exc.code, "?"
    except (urllib.error.URLError, ConnectionError) as exc:
        return -1, type(exc).__name__


def send_labelled(srv: ServerProcess, rows, prefix: str, log_dir: Path, feedback: Path) -> list[tuple[int, str]]:
    """One request per text (request id ``prefix-i``); the true labels go to ``feedback``."""
    answers = [predict(srv.url, text, f"{prefix}-{i}") for i, (text, _) in enumerate(rows)]
    with open(feedback, "w", encoding="utf-8") as f:
        for i, (_, label) in enumerate(rows):
            f.write(json.dumps({"request_id": f"{prefix}-{i}", "label": label}) + "\n")
    wanted = {f"{prefix}-{i}" for i in range(len(rows))}
    for _ in range(300):  # the logger writes in the background: wait until every record is on disk
        if wanted <= {r.request_id for r in iter_records(log_dir)}:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the prediction log never held all {len(rows)} {prefix} records")
    return answers


class BackgroundLoad:
    """Steady requests (about 10/s) from a thread until stopped; every answer is kept."""

    def __init__(self, url: str, texts: list[str]):
        self.url, self.texts, self.answers, self.times = url, texts, [], []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stop_event.is_set() and i < 20_000:
            self.answers.append(predict(self.url, self.texts[i % len(self.texts)], f"bg-{i}"))
            self.times.append(time.time())
            i += 1
            self.stop_event.wait(0.1)

    def wait_for_version(self, version: str, timeout_s: float = 120.0) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if any(v == version for _, v in self.answers[-5:]):
                return
            time.sleep(0.2)
        raise AssertionError(f"the server never answered with version {version}; last: {self.answers[-5:]}")

    def stop(self) -> list[tuple[int, str]]:
        self.stop_event.set()
        self.thread.join(timeout=60)
        return self.answers


def monitor(log_dir: Path, reference: Path, feedback: Path, since: float, until: float, out: Path, *extra: str):
    proc = cli(
        "monitor", "--log", str(log_dir), "--reference", str(reference), "--feedback", str(feedback),
        "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--output", str(out), "--json", *extra,
    )
    start = proc.stdout.find("{")
    verdict = json.loads(proc.stdout[start : proc.stdout.rfind("}") + 1]) if start >= 0 else None
    return proc, verdict


@pytest.fixture(scope="module")
def closed_loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    data, out, log_dir, work = root / "data", root / "out", root / "predictions", root / "work"
    work.mkdir()
    times: dict[str, float] = {}
    facts: dict = {"data": data, "out": out, "log_dir": log_dir, "work": work, "times": times}

    # 1. span 1 arrives; a scheduled tick trains and pushes; a second tick finds nothing new.
    generate(data / "span-1", train_rows=600, test_rows=200, seed=5)
    t = time.monotonic()
    first = cli("schedule", "--once", "--data", str(data), "--output", str(out), *FAST)
    times["1 train on span 1 (schedule tick)"] = time.monotonic() - t
    assert first.returncode == 0, first.stdout + first.stderr
    facts["first_tick"] = first
    facts["idle_tick"] = cli("schedule", "--once", "--data", str(data), "--output", str(out), *FAST)
    v1 = model_repository.latest_version(str(out / "model_repository"), MODEL)
    facts["v1"] = v1

    # 2. serve it.
    t = time.monotonic()
    srv = ServerProcess(out / "model_repository", work, log_dir=log_dir)
    times["2 start server"] = time.monotonic() - t
    facts["server"] = srv
    try:
        # 3. traffic from a shifted distribution, with labels fed back.
        t = time.monotonic()
        t0 = time.time()
        shifted = shifted_rows(500, seed=21)
        facts["shift_answers"] = send_labelled(srv, shifted, "shift", log_dir, work / "feedback-1.jsonl")
        t1 = time.time()
        times["3 shifted traffic (500 requests + feedback)"] = time.monotonic() - t

        # 4+5. the monitor flags drift and retrains on spans 1+2, under steady load.
        background = BackgroundLoad(srv.url, [text for text, _ in shifted_rows(50, seed=99)])
        t = time.monotonic()
        proc, verdict = monitor(
            log_dir, out, work / "feedback-1.jsonl", t0, t1, work / "monitor-1",
            "--retrain-on-drift", "--data", str(data), "--pipeline-output", str(out), "--pipeline-set", "training.epochs=3",
        )
        times["4 monitor + retrain on spans 1+2 (pipeline run)"] = time.monotonic() - t
        facts["monitor_1"], facts["verdict_1"] = proc, verdict
        v2 = model_repository.latest_version(str(out / "model_repository"), MODEL)
        facts["v2"] = v2
        if v2.version != v1.version:
            background.wait_for_version(str(v2.version))
        time.sleep(1.0)  # a few more answers from the new version
        facts["background"] = background.stop()
        # From the moment the version directory appeared (atomic rename) to the first answer from it.
        first_new = next(
            (at for (status, v), at in zip(facts["background"], background.times) if v == str(v2.version)), None
        )
        if first_new is not None:
            times["5 server swaps to the new version (push -> first answer)"] = first_new - Path(v2.path).stat().st_mtime

        # 6. fresh shifted traffic: has quality recovered?
        t = time.monotonic()
        t2 = time.time()
        fresh = shifted_rows(300, seed=33)
        facts["fresh_answers"] = send_labelled(srv, fresh, "fresh", log_dir, work / "feedback-2.jsonl")
        t3 = time.time()
        facts["monitor_2"], facts["verdict_2"] = monitor(log_dir, out, work / "feedback-2.jsonl", t2, t3, work / "monitor-2")
        times["6 fresh shifted traffic + monitor"] = time.monotonic() - t
        print("\nclosed-loop stage times:")
        for name, seconds in times.items():
            print(f"  {name:<50} {seconds:6.1f} s")
        yield facts
    finally:
        assert srv.stop() == 0, srv.log_path.read_text()[-3000:]


def test_closed_loop_drift_retrain_gate_swap_recover(closed_loop):
    f = closed_loop
    out = f["out"]
    # 1. the first tick trained span 1 and pushed; the idle tick started no run.
    assert "new span 1" in f["first_tick"].stdout and "pushed" in f["first_tick"].stdout
    assert f["idle_tick"].returncode == 0 and "no_new_span: newest span 1 was already trained" in f["idle_tick"].stdout
    assert len(list((out / "runs").glob("*.json"))) == 2  # run 1 and the retraining run; the idle tick added none
    # 3+4. the shifted traffic drifted and the labels show the old model failing; the monitor said so.
    proc, verdict = f["monitor_1"], f["verdict_1"]
    assert proc.returncode == 5, proc.stdout + proc.stderr  # drift alert
    assert verdict["drifted"] and any(a.startswith("quality") for a in verdict["fired"])
    f1_before = verdict["quality"]["metrics"]["f1"]
    assert f1_before < 0.6
    # ... wrote the feedback as span 2 and retrained on spans 1+2 ...
    assert (f["data"] / "span-2" / "train.csv").is_file() and (f["data"] / "span-2" / "test.csv").is_file()
    assert "wrote 500 labelled production texts as span 2" in proc.stdout + proc.stderr
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["data"]["spans"] == [1, 2]
    # ... and the new model passed the gate against the model in service, on the newest data.
    assert summary["status"] == "pushed" and summary["baseline"]["version"] == f["v1"].version
    acc = summary["metrics"]["accuracy"]
    assert acc["value"] > acc["baseline"] + 0.2, acc
    assert f["v2"].version > f["v1"].version and summary["pushed"]["version"] == f["v2"].version
    # 5. the server swapped under load with no failed request.
    background = f["background"]
    assert background and all(status == 200 for status, _ in background), [a for a in background if a[0] != 200][:5]
    versions = [v for _, v in background]
    assert versions[-1] == str(f["v2"].version) and set(versions) <= {str(f["v1"].version), str(f["v2"].version)}
    assert all(status == 200 for status, _ in f["shift_answers"] + f["fresh_answers"])
    assert {v for _, v in f["fresh_answers"]} == {str(f["v2"].version)}
    # 6. quality on fresh shifted traffic recovered: no quality alert, F1 well above before.
    proc2, verdict2 = f["monitor_2"], f["verdict_2"]
    assert verdict2 is not None, proc2.stdout + proc2.stderr
    assert not any(a.startswith("quality") for a in verdict2["fired"]), verdict2["fired"]
    f1_after = verdict2["quality"]["metrics"]["f1"]
    assert f1_after > 0.85 and f1_after > f1_before + 0.3
    print(f"f1 on shifted traffic: before {f1_before:.3f}, after retraining {f1_after:.3f}; "
          f"background load: {len(background)} requests, 0 failed; monitor after: {verdict2['fired'] or 'no alert'}")


def test_a_worse_model_is_not_pushed_and_the_server_keeps_the_old_one(closed_loop):
    f = closed_loop
    data, out, srv = f["data"], f["out"], f["server"]
    # Span 3: plenty of shifted texts where every billing ticket is labelled technical. The model
    # trained on it still clears the absolute thresholds (about 0.75 accuracy) but is clearly
    # worse than the model in service on the newest data: only the no-regression gate stops it.
    wrong = {"billing": "technical"}
    make_span(data, 3, [(t, wrong.get(l, l)) for t, l in shifted_rows(1500, seed=41)], shifted_rows(200, seed=42))
    t = time.monotonic()
    proc = cli("schedule", "--once", "--data", str(data), "--output", str(out), *FAST)
    print(f"\nworse-model run on spans 2+3: {time.monotonic() - t:.1f} s")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # trained, not blessed
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "not_blessed" and summary["pushed"] is None
    assert summary["data"]["spans"] == [2, 3] and summary["baseline"]["version"] == f["v2"].version
    assert summary["reasons"] and all("regressed" in r for r in summary["reasons"]), summary["reasons"]
    assert summary["metrics"]["accuracy"]["passed_threshold"] and not summary["metrics"]["accuracy"]["passed_change"]
    assert model_repository.latest_version(str(out / "model_repository"), MODEL).version == f["v2"].version
    answers = [predict(srv.url, text, f"after-{i}") for i, (text, _) in enumerate(shifted_rows(20, seed=43))]
    assert answers == [(200, str(f["v2"].version))] * 20
    assert read_state(out)["last_trained_span"] == 3  # a rejected model is not retried every tick

    # Run history: spans, gate, push, what is in service.
    listing = cli("runs", "list", "--output", str(out), "--json")
    assert listing.returncode == 0, listing.stderr
    history = json.loads(listing.stdout)
    runs = history["runs"]
    assert [r["spans"] for r in runs] == [[1], [1, 2], [2, 3]]
    assert [r["status"] for r in runs] == ["pushed", "pushed", "not_blessed"]
    assert [r["serving"] for r in runs] == [False, True, False]
    assert runs[2]["baseline_version"] == f["v2"].version and runs[2]["pushed_version"] is None
    assert history["in_service"]["version"] == f["v2"].version
    assert all(r["components"]["Trainer"]["seconds"] > 0 for r in runs)
    table = cli("runs", "list", "--output", str(out))
    print(table.stdout)
    compare = cli("runs", "compare", "2", "3", "--output", str(out))
    assert compare.returncode == 0 and "not_blessed" in compare.stdout and "2,3" in compare.stdout
    print(compare.stdout)
