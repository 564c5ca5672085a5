"""The run lock of an output directory, the schedule state file and the decision log."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from textops.errors import ExitCode, TextOpsError

LOCK_FILE = ".textops-run.lock"
STATE_FILE = "schedule_state.json"
DECISION_LOG = "schedule.log"

LogFn = Callable[[str], None]


class LoopError(TextOpsError):
    """Continuous-training misuse (bad cron expression, unknown version, no labelled data...)."""

    exit_code = ExitCode.USAGE


class Busy(TextOpsError):
    """Another run holds the lock on this output directory; nothing was started."""

    exit_code = ExitCode.BUSY


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
