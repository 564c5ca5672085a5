"""Errors that reach the user, and the exit codes of every ``textops`` command (one scheme)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every command; 0-3 mean the same everywhere, 4-8 belong to one command each."""

    OK = 0  # blessed and pushed; nothing to do; no alert
    FAILED = 1  # the command failed (a component raised, an I/O error, ...)
    USAGE = 2  # bad command line or settings (click uses 2 for usage errors too)
    DATA_INVALID = 3  # input data rejected before training (preflight or ExampleValidator gate)
    NO_DATA = 3  # monitor: nothing to judge (empty window, below window.min_records); same code as DATA_INVALID
    NOT_BLESSED = 4  # run: trained and evaluated, but the gate did not bless it; nothing pushed
    DRIFT = 5  # monitor: a drift alert fired (text, descriptors, predictions); takes precedence
    QUALITY = 6  # monitor: a quality alert fired (labels fed back, or estimated), no drift alert
    SERVICE = 7  # monitor: only a service alert fired (error rate, p99 latency)
    BUSY = 8  # schedule/retrain: another run holds the lock on this output; nothing was started


class TextOpsError(Exception):
    """Base class: the message is written for the person running the command."""

    exit_code = ExitCode.FAILED


class DataValidationError(TextOpsError):
    """The input data violates the schema or the data contract; nothing was trained."""

    exit_code = ExitCode.DATA_INVALID

    def __init__(self, problems: list[str], where: str = "data validation"):
        self.problems = list(problems)
        self.where = where
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where} failed; nothing was trained or pushed:\n{lines}")


class OutputDirectoryError(TextOpsError):
    """``--output`` cannot be used (not a directory, not writable); nothing was started."""

    exit_code = ExitCode.USAGE
