"""Ticks: run the pipeline when a new data span exists, on a cron schedule, one run at a time."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Callable, Optional

from textops.ct.cron import Cron
from textops.ct.runners import RunFn, run_span
from textops.ct.state import Busy, LogFn, log_decision, read_state, run_lock
from textops.settings import SpanSettings


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
            return run_span(output, newest, used, run, "schedule", log)
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
