"""The prediction log: the contract between serving (writer) and monitoring (reader).

Files are JSON Lines, one record per line, under one directory:
``<dir>/predictions-<UTC yyyymmddTHHMMSS>-<seq>.jsonl`` (the file being written) and the same
with ``.jsonl.gz`` once rotated and closed. Sorting the file names sorts the records by time.

A record is one prediction (or one failed prediction) for one input text:

    request_id      str    id of the HTTP/gRPC request (shared by the texts of one request)
    ts              float  unix seconds (UTC) when the prediction was made
    model           str    model name
    version         int    model version that answered
    protocol        str    "rest" | "grpc" | "v2"
    text            str    the input text
    label           str    predicted label (absent when status is "error")
    probabilities   list   class probabilities, in the order of ``classes``
    classes         list   class names
    latency_ms      float  request latency as the client saw it (queue + batch + inference)
    status          str    "ok" | "error"
    error           str    what went wrong (only when status is "error")

Feedback (ground truth arriving later) is a separate JSON Lines or CSV file with
``request_id`` and ``label``, joined on ``request_id`` by the monitor.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterator, Optional

FILE_PREFIX = "predictions-"
SUFFIXES = (".jsonl", ".jsonl.gz")
REQUIRED_FIELDS = ("request_id", "ts", "model", "version", "text", "status")


@dataclasses.dataclass
class PredictionRecord:
    request_id: str
    ts: float
    model: str
    version: int
    text: str
    status: str = "ok"
    protocol: str = "rest"
    label: Optional[str] = None
    probabilities: Optional[list[float]] = None
    classes: Optional[list[str]] = None
    latency_ms: Optional[float] = None
    error: Optional[str] = None

    def to_json(self) -> str:
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PredictionRecord":
        missing = [f for f in REQUIRED_FIELDS if f not in data]
        if missing:
            raise ValueError(f"missing field(s) {missing}")
        known = {f.name for f in dataclasses.fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known})
        if not isinstance(record.text, str):
            raise ValueError("text is not a string")
        record.ts = float(record.ts)
        record.version = int(record.version)
        return record


@dataclasses.dataclass
class ReadStats:
    files: int = 0
    records: int = 0
    corrupt: int = 0
    corrupt_examples: list[str] = dataclasses.field(default_factory=list)


def log_files(path: str | os.PathLike) -> list[Path]:
    """The log files under ``path`` (a directory) in time order, or ``[path]`` for one file."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"prediction log {p} does not exist")
    return sorted(f for f in p.iterdir() if f.name.startswith(FILE_PREFIX) and f.name.endswith(SUFFIXES))


def iter_records(path: str | os.PathLike, stats: Optional[ReadStats] = None) -> Iterator[PredictionRecord]:
    """Yields valid records; corrupt lines are skipped and counted in ``stats``, never fatal."""
    stats = stats if stats is not None else ReadStats()
    for file in log_files(path):
        stats.files += 1
        opener = gzip.open if file.name.endswith(".gz") else open
        try:
            with opener(file, "rt", encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = PredictionRecord.from_dict(json.loads(line))
                    except (ValueError, TypeError) as exc:
                        stats.corrupt += 1
                        if len(stats.corrupt_examples) < 5:
                            stats.corrupt_examples.append(f"{file.name}:{lineno}: {exc}")
                        continue
                    stats.records += 1
                    yield record
        except (OSError, EOFError) as exc:  # a truncated .gz (writer killed mid-rotation)
            stats.corrupt += 1
            if len(stats.corrupt_examples) < 5:
                stats.corrupt_examples.append(f"{file.name}: unreadable: {exc}")
