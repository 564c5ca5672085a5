"""The window: the logged predictions the monitor judges, read with ``textops.prediction_log``.

Corrupt lines are skipped and counted by the reader (``ReadStats``); the count reaches the
report and the verdict. Records of one request share a ``request_id``; their position within
the request (``index``, 0-based, in log order) tells them apart when feedback is per text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from typing import Optional

import numpy as np
import pandas as pd

from textops.errors import ExitCode
from textops.monitoring.config import MonitorError, WindowSettings
from textops.prediction_log import ReadStats, iter_records, log_files

COLUMNS = ("request_id", "index", "ts", "model", "version", "status", "text", "prediction", "confidence", "latency_ms")


def _iso(ts: Optional[float]) -> str:
    if ts is None:
        return "the first record"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Window:
    frame: pd.DataFrame  # one row per logged text, COLUMNS plus "probabilities"/"classes" (object)
    stats: ReadStats
    start: Optional[float]
    end: float
    outside: int  # valid records outside the time range

    @property
    def ok(self) -> pd.DataFrame:
        return self.frame[self.frame["status"] == "ok"]

    def describe(self) -> str:
        return f"{_iso(self.start)} .. {_iso(self.end)}"


def load_window(log: Optional[os.PathLike], settings: WindowSettings, now: Optional[float] = None) -> Window:
    if log is None:
        raise MonitorError("no prediction log given: pass --log DIR (or set log: in the config)", ExitCode.USAGE)
    try:
        files = log_files(log)
    except FileNotFoundError:
        raise MonitorError(
            f"prediction log {log} does not exist; point --log at the directory the server writes "
            "predictions-*.jsonl[.gz] into",
            ExitCode.USAGE,
        ) from None
    if not files:
        raise MonitorError(
            f"prediction log {log} holds no predictions-*.jsonl or predictions-*.jsonl.gz files; "
            "has the server logged anything yet, and is this the right directory?",
            ExitCode.NO_DATA,
        )
    start, end = settings.bounds(time.time() if now is None else now)
    stats = ReadStats()
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    probabilities: list = []
    classes: list = []
    position: dict[str, int] = {}
    outside = 0
    newest: Optional[float] = None
    oldest: Optional[float] = None
    for rec in iter_records(log, stats):
        newest = rec.ts if newest is None else max(newest, rec.ts)
        oldest = rec.ts if oldest is None else min(oldest, rec.ts)
        index = position.get(rec.request_id, 0)
        position[rec.request_id] = index + 1
        if (start is not None and rec.ts < start) or rec.ts > end:
            outside += 1
            continue
        ok = rec.status == "ok" and rec.label is not None
        confidence = np.nan
        if ok and rec.probabilities:
            try:
                confidence = float(max(rec.probabilities))
            except (TypeError, ValueError):
                confidence = np.nan
        rows["request_id"].append(str(rec.request_id))
        rows["index"].append(index)
        rows["ts"].append(rec.ts)
        rows["model"].append(rec.model)
        rows["version"].append(rec.version)
        rows["status"].append("ok" if ok else "error")
        rows["text"].append(rec.text)
        rows["prediction"].append(rec.label if ok else None)
        rows["confidence"].append(confidence)
        rows["latency_ms"].append(np.nan if rec.latency_ms is None else float(rec.latency_ms))
        probabilities.append(rec.probabilities if ok else None)
        classes.append(rec.classes if ok else None)
    frame = pd.DataFrame(rows)
    frame["probabilities"] = probabilities
    frame["classes"] = classes
    if settings.max_records is not None and len(frame) > settings.max_records:
        frame = frame.sort_values("ts", kind="stable").tail(settings.max_records)
    frame = frame.reset_index(drop=True)
    window = Window(frame, stats, start, end, outside)
    if frame.empty:
        seen = (
            f"the log's {stats.records} valid records span {_iso(oldest)} .. {_iso(newest)}"
            if stats.records
            else f"the log has no valid records ({stats.corrupt} corrupt line(s) skipped)"
        )
        raise MonitorError(
            f"the window {window.describe()} is empty: {seen}. Widen it (e.g. --window 7d or "
            "--window all) or set window.since/window.until.",
            ExitCode.NO_DATA,
        )
    return window
