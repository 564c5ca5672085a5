"""Errors that reach the user, and the CLI's exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # blessed and pushed (or: nothing to do)
    FAILED = 1  # the run failed (a component raised, an I/O error, ...)
    USAGE = 2  # bad command line or settings (click uses 2 for usage errors too)
    DATA_INVALID = 3  # input data rejected before training (preflight or ExampleValidator gate)
    NOT_BLESSED = 4  # trained and evaluated, but the gate did not bless it: nothing pushed


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
