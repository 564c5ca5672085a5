"""Continuous training: new data spans trigger runs, one run at a time, and models can be rolled back.

Three entry points, all driven from the CLI (``textops schedule``, ``textops monitor
--retrain-on-drift``, ``textops rollback``):

- :func:`tick` looks at ``<data>/span-N/`` and starts a pipeline run when a span newer than the
  last one trained exists; otherwise it does nothing. Every decision is appended to
  ``<output>/schedule.log`` (JSON lines) and returned.
- :func:`run_lock` is the one lock on a run directory (``fcntl.flock`` on
  ``<output>/.textops-run.lock``, non-blocking): a scheduled tick and a drift-triggered retrain
  never run the pipeline on the same output at the same time. A second one is told at once.
- :func:`write_span` turns labelled production texts into the next span (train/test split by a
  hash of the text, written atomically), which the next run trains on.
- :func:`rollback` re-publishes an older version as the newest one (atomic), so our server,
  stock TF Serving and KServe all hot-swap to it with their usual "latest" policy.

Nothing here imports TensorFlow at import time; ``textops --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from textops.errors import ExitCode, TextOpsError
from textops.settings import Settings, SpanSettings

LOCK_FILE = ".textops-run.lock"
STATE_FILE = "schedule_state.json"
DECISION_LOG = "schedule.log"
EXIT_BUSY = 8  # another run holds the lock on this output; nothing was started

LogFn = Callable[[str], None]


class LoopError(TextOpsError):
    """Continuous-training misuse (bad cron expression, unknown version, no labelled data...)."""

    exit_code = ExitCode.USAGE


class Busy(TextOpsError):
    """Another run holds the lock on this output directory."""

    exit_code = ExitCode.FAILED


# --- cron --------------------------------------------------------------------------------------

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise LoopError(f"cron {name} field {text!r}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()):
                raise LoopError(f"cron {name} field {text!r}: {part!r} is not a range like 1-5 (names are not supported)")
            start, end = int(a), int(b)
        elif part.isdigit():
            start = end = int(part)
            if step != 1:
                end = high  # "5/15" means 5, 20, 35, 50 as in Vixie cron
        else:
            raise LoopError(f"cron {name} field {text!r}: {part!r} is not a number, range, list or * (names are not supported)")
        if start < low or end > high or start > end:
            raise LoopError(f"cron {name} field {text!r}: values must lie in {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclasses.dataclass(frozen=True)
class Cron:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week), local time.

    Supports ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, and lists. Day of week
    0 and 7 are Sunday. When both day fields are restricted, a day matching either one fires
    (as in Vixie cron).
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    dom_any: bool
    dow_any: bool

    @classmethod
    def parse(cls, expression: str) -> "Cron":
        fields = expression.split()
        if len(fields) != 5:
            raise LoopError(
                f"cron expression {expression!r} has {len(fields)} fields; give 5: minute hour day-of-month month day-of-week, "
                "e.g. '*/15 * * * *' or '0 3 * * *'"
            )
        parsed = [_parse_field(f, name, lo, hi) for f, (name, lo, hi) in zip(fields, _FIELDS)]
        weekdays = frozenset(0 if d == 7 else d for d in parsed[4])
        return cls(expression, *parsed[:4], weekdays, fields[2] == "*", fields[4] == "*")

    def _day_matches(self, t: dt.datetime) -> bool:
        if t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.dom_any or self.dow_any:
            return dom and dow
        return dom or dow

    def matches(self, t: dt.datetime) -> bool:
        return self._day_matches(t) and t.hour in self.hours and t.minute in self.minutes

    def next_after(self, t: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after ``t`` (searches at most ~5 years ahead)."""
        t = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t + dt.timedelta(days=366 * 5)
        while t < limit:
            if not self._day_matches(t):
                t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0)
            elif t.hour not in self.hours:
                t = (t + dt.timedelta(hours=1)).replace(minute=0)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        raise LoopError(f"cron expression {self.expression!r} never fires (e.g. 31 February)")


# --- the lock, the state and the decision log ------------------------------------------------


@contextlib.contextmanager
def run_lock(output: os.PathLike) -> Iterator[None]:
    """Holds the run lock of ``output`` or raises :class:`Busy` at once.

    ``flock`` locks belong to the open file, so the lock is released when the holder exits, even
    if it is killed; a stale lock file never blocks the next run.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise Busy(f"another run holds the lock on {out} ({holder}); nothing was started") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_state(output: os.PathLike) -> dict:
    path = Path(output) / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LoopError(f"{path} is not valid JSON ({exc}); fix or delete it (the next tick then retrains the newest span)") from None


def write_state(output: os.PathLike, state: dict) -> None:
    path = Path(output) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def log_decision(output: os.PathLike, entry: dict, log: LogFn) -> dict:
    entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **entry}
    Path(output).mkdir(parents=True, exist_ok=True)
    with open(Path(output) / DECISION_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    log(f"{entry['decision']}: {entry['message']}")
    return entry


# --- running the pipeline --------------------------------------------------------------------


@dataclasses.dataclass
class RunOutcome:
    exit_code: int
    status: Optional[str]
    pushed_version: Optional[int] = None


RunFn = Callable[[], RunOutcome]


def pipeline_command(
    data: os.PathLike, output: os.PathLike, config: Optional[os.PathLike], overrides: Sequence[str]
) -> list[str]:
    cmd = [sys.executable, "-m", "textops.cli", "run", "--data", str(data), "--output", str(output)]
    if config is not None:
        cmd += ["--config", str(config)]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def subprocess_runner(
    data: os.PathLike, output: os.PathLike, config: Optional[os.PathLike], overrides: Sequence[str], log: LogFn
) -> RunFn:
    """Runs ``textops run`` in a child process (a fresh TensorFlow per run; the parent holds the lock)."""

    def run() -> RunOutcome:
        cmd = pipeline_command(data, output, config, overrides)
        summary_path = Path(output) / "run_summary.json"
        before = summary_path.stat().st_mtime_ns if summary_path.exists() else None
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout.splitlines():
            log(f"  | {line}")
        status, pushed = None, None
        if summary_path.exists() and summary_path.stat().st_mtime_ns != before:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            status = summary.get("status")
            pushed = (summary.get("pushed") or {}).get("version")
        return RunOutcome(proc.returncode, status, pushed)

    return run


def kubeflow_runner(data: os.PathLike, output: os.PathLike, settings: Settings, host: str, log: LogFn) -> RunFn:
    """Compiles the pipeline with ``data_root`` = ``data`` and submits one run to Kubeflow.

    The cluster must read ``data`` (a bucket, or a volume mounted at the same path); the run's
    own result is on the KFP UI, so the span counts as handled once it is submitted.
    """

    def run() -> RunOutcome:
        from textops.pipelines.kubeflow_runner import compile_pipeline, submit

        package = Path(output) / "pipeline.yaml"
        Path(output).mkdir(parents=True, exist_ok=True)
        compile_pipeline(settings, str(package), str(data))
        name = f"{settings.pipeline.name}-retrain-{time.strftime('%Y%m%d-%H%M%S')}"
        result = submit(str(package), host, settings.pipeline.name, name, {"data_root": str(data)})
        log(f"submitted to Kubeflow: {result}")
        return RunOutcome(0, "submitted")

    return run


# Outcomes after which a span counts as handled (retrying would give the same answer);
# anything else (a crash, an interrupted run) is retried by the next tick.
_HANDLED = {"pushed", "not_blessed", "data_invalid", "submitted"}


def _run_span(output: os.PathLike, span: int, spans_used: list[int], run: RunFn, trigger: str, log: LogFn) -> dict:
    started = time.monotonic()
    outcome = run()
    seconds = round(time.monotonic() - started, 1)
    state = read_state(output)
    handled = outcome.status in _HANDLED
    if handled:
        state["last_trained_span"] = span
    state["last_run"] = {
        "span": span, "spans": spans_used, "trigger": trigger, "status": outcome.status,
        "exit_code": outcome.exit_code, "pushed_version": outcome.pushed_version, "seconds": seconds,
    }
    write_state(output, state)
    retry = "" if handled else "; the span is not marked as trained, the next tick retries it"
    return log_decision(
        output,
        {
            "decision": "ran", "trigger": trigger, "span": span, "spans": spans_used, "status": outcome.status,
            "exit_code": outcome.exit_code, "pushed_version": outcome.pushed_version, "seconds": seconds,
            "message": f"pipeline run on spans {spans_used} finished: {outcome.status or 'no summary'} "
            f"(exit {outcome.exit_code}) in {seconds}s{retry}",
        },
        log,
    )


def tick(data: os.PathLike, output: os.PathLike, spans: SpanSettings, run: RunFn, log: LogFn = print) -> dict:
    """One scheduling decision: run the pipeline if a new span exists, else do nothing.

    Returns the decision logged: ``decision`` is ``ran``, ``no_new_span``, ``no_spans`` or ``busy``.
    Raises DataValidationError (nothing started) when the window's span directories are unusable.
    """
    from textops.data import resolve_window
    from textops.settings import DataSettings

    try:
        with run_lock(output):
            found = resolve_window(data, DataSettings(spans=spans))
            if not found:
                return log_decision(
                    output,
                    {"decision": "no_spans", "message": f"{data} holds no {spans.prefix}N directories; nothing to train"},
                    log,
                )
            newest = max(found)
            last = read_state(output).get("last_trained_span")
            if last is not None and newest <= last:
                return log_decision(
                    output,
                    {"decision": "no_new_span", "span": newest, "message": f"newest span {newest} was already trained; no run"},
                    log,
                )
            used = found
            log_decision(
                output,
                {"decision": "start", "span": newest, "spans": used,
                 "message": f"new span {newest} (last trained: {last}); running the pipeline on spans {used}"},
                log,
            )
            return _run_span(output, newest, used, run, "schedule", log)
    except Busy as exc:
        return log_decision(output, {"decision": "busy", "message": str(exc)}, log)


def serve_schedule(
    cron: Cron,
    tick_fn: Callable[[], dict],
    log: LogFn,
    max_ticks: Optional[int] = None,
    now: Callable[[], dt.datetime] = dt.datetime.now,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Calls ``tick_fn`` at every time ``cron`` matches (no catch-up of missed times). Returns ticks run."""
    ticks = 0
    while max_ticks is None or ticks < max_ticks:
        due = cron.next_after(now())
        log(f"next tick at {due.isoformat(timespec='minutes')} ({cron.expression})")
        while (wait := (due - now()).total_seconds()) > 0:
            sleep(min(wait, 60.0))
        tick_fn()
        ticks += 1
    return ticks


# --- new spans from production feedback ------------------------------------------------------


def _in_test(text: str, test_fraction: float) -> bool:
    bucket = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < test_fraction


def write_span(
    data: os.PathLike,
    texts: Sequence[str],
    labels: Sequence[str],
    settings: Settings,
    test_fraction: float = 0.3,
) -> tuple[int, Path]:
    """Writes labelled texts as the next span (train.csv + test.csv), atomically; returns (number, dir).

    The split is by a hash of the text, so a text repeated in production lands in one split only.
    """
    from textops.data import list_spans

    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    rows = [(t, l) for t, l in zip(texts, labels) if t and l]
    train = [r for r in rows if not _in_test(r[0], test_fraction)]
    test = [r for r in rows if _in_test(r[0], test_fraction)]
    if not train or not test:
        raise LoopError(
            f"{len(rows)} labelled production texts give {len(train)} train and {len(test)} test rows; "
            "a new span needs both. Collect more feedback before retraining."
        )
    base = Path(data)
    base.mkdir(parents=True, exist_ok=True)
    spans = settings.data.spans
    number = max(list_spans(base, spans), default=0) + 1
    final = base / f"{spans.prefix}{number}"
    staging = base / f".{spans.prefix}{number}.writing-{os.getpid()}"
    staging.mkdir()
    columns = [settings.data.text_column, settings.data.label_column]
    for name, part in (("train.csv", train), ("test.csv", test)):
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(part)
        (staging / name).write_text(buffer.getvalue(), encoding="utf-8")
    os.rename(staging, final)  # a reader sees the whole span or none of it
    return number, final


def labelled_window(result, feedback_path: os.PathLike) -> tuple[list[str], list[str]]:  # noqa: ANN001
    """The monitor window's texts that carry a fed-back label, with that label."""
    from textops.monitoring.feedback import FeedbackStats, join_feedback, read_feedback

    frame = result.window.frame
    targets = join_feedback(frame, read_feedback(feedback_path), FeedbackStats())
    keep = targets.notna()
    return frame.loc[keep, "text"].astype(str).tolist(), targets[keep].astype(str).tolist()


def retrain_on_drift(
    result,  # noqa: ANN001 - a textops.monitoring.monitor.MonitorResult
    feedback_path: Optional[os.PathLike],
    data: os.PathLike,
    output: os.PathLike,
    settings: Settings,
    run: RunFn,
    log: LogFn = print,
) -> dict:
    """After a monitor verdict: when it drifted or quality fell, add the feedback as a span and run.

    Returns the decision logged (``retrain`` -> ``ran``/``busy``, or ``no_retrain``).
    """
    kinds = sorted({a.kind for a in result.verdict.alerts} & {"drift", "quality"})
    if not kinds:
        return log_decision(
            output, {"decision": "no_retrain", "message": "the monitor found no drift and no quality alert; no retraining"}, log
        )
    if feedback_path is None:
        raise LoopError("--retrain-on-drift needs --feedback: the labelled production texts become the new span")
    texts, labels = labelled_window(result, feedback_path)
    try:
        with run_lock(output):
            number, path = write_span(data, texts, labels, settings)
            from textops.data import list_spans

            used = sorted(list_spans(data, settings.data.spans))[-settings.data.spans.window :]
            log_decision(
                output,
                {"decision": "start", "trigger": f"monitor ({', '.join(kinds)})", "span": number, "spans": used,
                 "message": f"monitor alert ({', '.join(kinds)}): wrote {len(texts)} labelled production texts as span "
                 f"{number} ({path}); retraining on spans {used}"},
                log,
            )
            return _run_span(output, number, used, run, f"monitor:{','.join(kinds)}", log)
    except Busy as exc:
        return log_decision(output, {"decision": "busy", "message": f"{exc}; the feedback was not written"}, log)


# --- rollback --------------------------------------------------------------------------------


def rollback(repository: str, model_name: str, to_version: int, log: LogFn = print):  # noqa: ANN201
    """Publishes version ``to_version`` again as the newest version; returns the new ModelVersion.

    Every server that follows the newest version (ours, TF Serving, KServe) hot-swaps to it the
    way it does for any push; the original versions stay untouched (versions are immutable).
    """
    from textops import model_repository

    versions = model_repository.list_versions(repository, model_name)
    if not versions:
        known = model_repository.list_models(repository)
        raise LoopError(
            f"model {model_name!r} has no versions in {repository}"
            + (f"; models there: {', '.join(known)}" if known else "; is --model-repository right?")
        )
    chosen = next((v for v in versions if v.version == to_version), None)
    if chosen is None:
        raise LoopError(
            f"model {model_name!r} has no version {to_version} in {repository}; available versions: "
            f"{', '.join(str(v.version) for v in versions)}"
        )
    latest = versions[-1]
    if latest.version == to_version:
        raise LoopError(f"version {to_version} is already the newest version of {model_name!r}; nothing to roll back")
    original = model_repository.read_push_record(chosen.path)
    source = original.get("rollback_of", to_version)  # rolling back to a rollback names the original
    record = {
        "rollback_of": source,
        "republished_from": to_version,
        "replaced_version": latest.version,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "original_record": original,
    }
    published = model_repository.publish_version(chosen.path, repository, model_name, record=record)
    log(
        f"rolled back {model_name}: version {published.version} is a copy of version {to_version} "
        f"and replaces {latest.version} as the newest version ({published.path})"
    )
    return published
