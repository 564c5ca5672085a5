"""How one pipeline run is started for continuous training, and how its outcome is recorded."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from textops.ct.state import LogFn, log_decision, read_state, write_state
from textops.settings import Settings
from textops.summary import RunStatus, read_summary, summary_path

@dataclasses.dataclass
class RunOutcome:
    exit_code: int
    status: Optional[RunStatus]
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
        path = summary_path(output)
        before = path.stat().st_mtime_ns if path.exists() else None
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout.splitlines():
            log(f"  | {line}")
        status, pushed = None, None
        if path.exists() and path.stat().st_mtime_ns != before:
            summary = read_summary(path)
            status, pushed = summary.status, summary.pushed_version
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
        return RunOutcome(0, RunStatus.SUBMITTED)

    return run


# Outcomes after which a span counts as handled (retrying would give the same answer);
# anything else (a crash, an interrupted run) is retried by the next tick.
_HANDLED = {RunStatus.PUSHED, RunStatus.NOT_BLESSED, RunStatus.DATA_INVALID, RunStatus.SUBMITTED}


def run_span(output: os.PathLike, span: int, spans_used: list[int], run: RunFn, trigger: str, log: LogFn) -> dict:
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
