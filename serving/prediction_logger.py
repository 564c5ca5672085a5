"""The prediction-log writer (the reader and the record format are ``textops.prediction_log``).

Responses never wait for the disk: request handlers hand records to an in-memory buffer and
return; one background thread serializes them with ``PredictionRecord.to_json()``, appends them
to ``predictions-<UTC yyyymmddTHHMMSS>-<seq>.jsonl``, flushes after every batch it drains, and
past ``max_file_bytes`` rotates: fsync, gzip to a hidden temporary, fsync, rename to
``.jsonl.gz``, remove the ``.jsonl``. Closing the writer drains the buffer and rotates the last
file the same way. When the buffer is full, records are dropped and counted in
``textops_prediction_log_dropped_total`` (never silently); sampled-out requests are counted in
``textops_prediction_log_sampled_out_total``.

Bad records never stop the log: a field that cannot be encoded as UTF-8 (a lone surrogate from
a request id that was not valid UTF-8) is written with the offending characters escaped
(``\\xff``); any other failure of the writer is logged, counted in
``textops_prediction_log_writer_errors_total`` (its records in ``..._dropped_total{reason=
"writer_error"}``) and the writer carries on with the next batch.

What survives a crash: every batch is written and flushed to the OS as soon as the writer
wakes up (no timer), so on SIGKILL only the records still queued in memory are lost, those of
the predictions answered in the last moments (at most ``queue_size``; in practice a few).
SIGTERM loses none (the buffer is drained). Survive a machine crash: only rotated files (fsynced).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import logging
import os
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from textops.prediction_log import FILE_PREFIX, PredictionRecord

from .metrics import ServingMetrics

log = logging.getLogger(__name__)


class PredictionLogWriter:
    def __init__(
        self,
        directory: os.PathLike | str,
        metrics: ServingMetrics,
        *,
        sample_rate: float = 1.0,
        max_file_bytes: int = 64 << 20,
        queue_size: int = 100_000,
        clock: Callable[[], float] = time.time,
        rng: Optional[random.Random] = None,
    ):
        self.directory = Path(directory)
        self.metrics = metrics
        self.sample_rate = sample_rate
        self.max_file_bytes = max_file_bytes
        self.queue_size = queue_size
        self._clock = clock
        self._rng = rng or random.Random()
        self._pending: collections.deque[PredictionRecord] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._file = None
        self._path: Optional[Path] = None
        self._seq = 0
        self.records_written = 0
        self.records_dropped = 0

    # -- producer side (request handlers) ------------------------------------------------------
    def sampled(self) -> bool:
        """Whether to log the request about to be answered (one decision per request)."""
        if self.sample_rate >= 1.0 or self._rng.random() < self.sample_rate:
            return True
        return False

    def skip(self, records: int) -> None:
        self.metrics.log_sampled_out.inc(records)

    def submit(self, records: Sequence[PredictionRecord]) -> bool:
        """Queues the records of one request; never blocks. False: dropped (and counted)."""
        with self._cond:
            if self._stopping or len(self._pending) + len(records) > self.queue_size:
                reason = "closed" if self._stopping else "queue_full"
                self.records_dropped += len(records)
                self.metrics.log_dropped.labels(reason).inc(len(records))
                return False
            self._pending.extend(records)
            self._cond.notify()
        return True

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "PredictionLogWriter":
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction-log writer did not finish within %.0f s", timeout)

    # -- writer thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        """The writer loop, restarted after any failure (logged and counted): it only ends on close."""
        while True:
            try:
                self._drain_until_closed()
                return
            except Exception:
                self.metrics.log_writer_errors.inc()
                log.exception("prediction log: the writer failed; restarting it")
                self._abandon()
                time.sleep(0.1)  # a failure that repeats must not spin

    def _drain_until_closed(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                batch = list(self._pending)
                self._pending.clear()
                stopping = self._stopping
            if batch:
                self._write(batch)
            if stopping:
                with self._cond:
                    rest = list(self._pending)
                    self._pending.clear()
                if rest:
                    self._write(rest)
                self._rotate()
                return

    def _write(self, batch: list[PredictionRecord]) -> None:
        try:
            self._write_lines([encode_record(r) for r in batch])
        except Exception:  # a bug or an unexpected record: count it, say it, keep the writer alive
            self.records_dropped += len(batch)
            self.metrics.log_writer_errors.inc()
            self.metrics.log_dropped.labels("writer_error").inc(len(batch))
            log.exception("prediction log: the writer failed on a batch of %d records; they are lost, the writer continues", len(batch))
            self._abandon()

    def _write_lines(self, lines: list[bytes]) -> None:
        i = 0
        while i < len(lines):
            chunk: list[bytes] = []
            try:
                if self._file is None:
                    self._open()
                room = self.max_file_bytes - self._file.tell()
                size = 0
                while i < len(lines) and (not chunk or size + len(lines[i]) <= room):
                    chunk.append(lines[i])
                    size += len(lines[i])
                    i += 1
                self._file.write(b"".join(chunk))
                self._file.flush()  # durable against a killed process (the OS holds the data)
                self.records_written += len(chunk)
                self.metrics.log_written.inc(len(chunk))
                if self._file.tell() >= self.max_file_bytes:
                    self._rotate()
            except OSError as exc:
                lost = len(chunk) + (len(lines) - i)
                self.records_dropped += lost
                self.metrics.log_dropped.labels("write_error").inc(lost)
                log.error("prediction log: %d records lost: %s", lost, exc)
                self._abandon()
                return

    def _open(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._clock()))
        while True:
            self._seq += 1
            path = self.directory / f"{FILE_PREFIX}{stamp}-{self._seq:06d}.jsonl"
            if path.exists() or path.with_suffix(".jsonl.gz").exists():
                continue
            try:
                self._file = open(path, "xb")
            except FileExistsError:
                continue
            self._path = path
            return

    def _rotate(self) -> None:
        """Closes the current file durably and replaces it with its gzipped copy."""
        if self._file is None or self._path is None:
            return
        f, path = self._file, self._path
        self._file = self._path = None
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            final = path.with_name(path.name + ".gz")
            tmp = path.with_name(f".{path.name}.gz.tmp")
            with open(path, "rb") as src, open(tmp, "wb") as raw:
                with gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0) as gz:
                    shutil.copyfileobj(src, gz, 1 << 20)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, final)
            path.unlink()
            _fsync_dir(self.directory)
        except OSError as exc:  # the plain .jsonl stays readable; only compression is lost
            log.error("prediction log: could not rotate %s: %s", path.name, exc)

    def _abandon(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        self._file = self._path = None


def encode_record(record: PredictionRecord) -> bytes:
    """One JSON line; characters UTF-8 cannot carry (lone surrogates) are escaped, not fatal."""
    line = record.to_json() + "\n"
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:
        # surrogateescape turns the \udcXX that stand for undecodable header bytes back into those
        # bytes; decoding them with backslashreplace writes them as a visible \xXX escape.
        fixed = {
            f.name: escape_unencodable(getattr(record, f.name))
            for f in dataclasses.fields(record)
            if isinstance(getattr(record, f.name), str)
        }
        return (dataclasses.replace(record, **fixed).to_json() + "\n").encode("utf-8")


def escape_unencodable(text: str) -> str:
    """``text`` with what UTF-8 cannot carry written as ``\\xNN`` escapes (unchanged if valid).

    Undecodable bytes of an HTTP header arrive as surrogate escapes (U+DC80..U+DCFF):
    ``surrogateescape`` turns them back into those bytes; any other lone surrogate (a JSON
    ``"\\ud800"``) is kept as its CESU-8 bytes; ``backslashreplace`` then shows the bytes.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    escaped_bytes_only = all(not 0xD800 <= ord(c) <= 0xDC7F for c in text)
    raw = text.encode("utf-8", "surrogateescape" if escaped_bytes_only else "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
