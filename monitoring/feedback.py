"""Ground truth fed back after the fact, keyed by the prediction log's ``request_id``.

A feedback file is JSON Lines (``{"request_id": "...", "label": "..."}`` per line) or CSV with a
header ``request_id,label``. An optional ``index`` (0-based position of the text within its
request) picks one text of a request that carried several; without it, a label applies to a
request only when that request carried exactly one text.

Problems never stop the monitor; they are counted and shown in the report and the verdict:
rows that are not valid (no request id or label), ids the window does not contain, labels for a
multi-text request without ``index``, and repeated ids (the last label wins).

``FeedbackServer`` is a small HTTP endpoint (``POST /feedback`` with one JSON object or a list)
that appends validated rows to such a file, for clients that would rather call than write files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from textops.errors import ExitCode
from textops.monitoring.config import MonitorError


@dataclasses.dataclass
class FeedbackStats:
    rows: int = 0
    invalid: int = 0
    matched: int = 0
    unknown_ids: int = 0
    ambiguous: int = 0
    duplicates: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)

    def note(self, message: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(message)

    def messages(self) -> list[str]:
        out = []
        if self.invalid:
            out.append(f"{self.invalid} feedback row(s) were invalid and skipped (need request_id and label)")
        if self.unknown_ids:
            out.append(
                f"{self.unknown_ids} feedback label(s) name request ids that are not in this window "
                "(older or newer predictions, or wrong ids); they were ignored"
            )
        if self.ambiguous:
            out.append(
                f"{self.ambiguous} feedback label(s) name a request that carried several texts but give no "
                "'index'; add the text's 0-based index within the request"
            )
        if self.duplicates:
            out.append(f"{self.duplicates} feedback row(s) repeat an id already labelled; the last label was used")
        return out


def _validate_row(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("not an object")
    request_id = data.get("request_id")
    label = data.get("label")
    if request_id is None or str(request_id).strip() == "":
        raise ValueError("missing request_id")
    if label is None or str(label).strip() == "":
        raise ValueError("missing label")
    index = data.get("index")
    if index is not None and str(index).strip() != "":
        index = int(index)
        if index < 0:
            raise ValueError("index must be >= 0")
    else:
        index = None
    return {"request_id": str(request_id), "index": index, "label": str(label)}


def read_feedback(path: os.PathLike, stats: Optional[FeedbackStats] = None) -> pd.DataFrame:
    """Valid feedback rows (request_id, index or None, label) in file order."""
    stats = stats if stats is not None else FeedbackStats()
    p = Path(path)
    if not p.is_file():
        raise MonitorError(
            f"feedback file {p} does not exist; give a JSONL or CSV file with request_id,label",
            ExitCode.USAGE,
        )
    rows: list[dict[str, Any]] = []
    text = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not {"request_id", "label"} <= set(reader.fieldnames):
            raise MonitorError(
                f"feedback file {p} needs a header with request_id and label (found {reader.fieldnames})",
                ExitCode.USAGE,
            )
        items = enumerate(reader, 2)
        parsed = ((n, row, None) for n, row in items)
    else:
        parsed_list = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                parsed_list.append((n, json.loads(line), None))
            except json.JSONDecodeError as exc:
                parsed_list.append((n, None, f"not JSON ({exc.msg})"))
        parsed = iter(parsed_list)
    for n, data, error in parsed:
        stats.rows += 1
        if error is None:
            try:
                rows.append(_validate_row(data))
                continue
            except (ValueError, TypeError) as exc:
                error = str(exc)
        stats.invalid += 1
        stats.note(f"{p.name}:{n}: {error}")
    return pd.DataFrame(rows, columns=["request_id", "index", "label"])


def join_feedback(frame: pd.DataFrame, feedback: pd.DataFrame, stats: FeedbackStats) -> pd.Series:
    """The true label per row of ``frame`` (NaN where none was fed back); counts go to ``stats``."""
    texts_per_request = frame.groupby("request_id")["index"].max() + 1
    position = {(rid, int(idx)): i for i, (rid, idx) in enumerate(zip(frame["request_id"], frame["index"]))}
    target: dict[int, str] = {}
    for row in feedback.itertuples(index=False):
        rid, idx, label = row.request_id, row.index, row.label
        if rid not in texts_per_request.index:
            stats.unknown_ids += 1
            stats.note(f"unknown request_id {rid!r}")
            continue
        if idx is None or pd.isna(idx):
            if texts_per_request[rid] > 1:
                stats.ambiguous += 1
                stats.note(f"request {rid!r} carried {texts_per_request[rid]} texts; feedback gives no index")
                continue
            idx = 0
        i = position.get((rid, int(idx)))
        if i is None:
            stats.unknown_ids += 1
            stats.note(f"request {rid!r} has no text at index {idx}")
            continue
        if i in target:
            stats.duplicates += 1
        target[i] = label
    stats.matched = len(target)
    out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for i, label in target.items():
        out.iloc[i] = label
    return out


class FeedbackServer:
    """``POST /feedback`` appends validated rows to a JSONL feedback file; ``GET /healthz``.

    Answers 400 with the reason for invalid input and never writes a partial batch.
    """

    def __init__(self, path: os.PathLike, host: str = "127.0.0.1", port: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the console quiet
                return

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/healthz":
                    self._reply(200, {"status": "ok"})
                else:
                    self._reply(404, {"error": "not found; POST /feedback"})

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/feedback":
                    self._reply(404, {"error": "not found; POST /feedback"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length) or b"null")
                    items = payload if isinstance(payload, list) else [payload]
                    rows = [_validate_row(item) for item in items]
                except (ValueError, TypeError) as exc:
                    self._reply(400, {"error": f"invalid feedback: {exc}; send {{\"request_id\": ..., \"label\": ...}}"})
                    return
                server.append(rows)
                self._reply(200, {"accepted": len(rows)})

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def append(self, rows: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)

    def start(self) -> "FeedbackServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
