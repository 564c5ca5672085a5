"""The run summary: the typed record of one pipeline run, its file and its text rendering.

A run writes ``<output>/run_summary.json`` (and ``<output>/runs/<run id>.json``); the CLI, the
run history, the monitor's reference and the model-analysis report read it back through
:func:`read_summary`. This module is the contract between them: it imports neither TensorFlow
nor TFX, so light readers stay light. The builder that fills it from a run's MLMD records and
TFMA output is ``textops.pipelines.summary``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Union

from textops.errors import ExitCode, TextOpsError

SUMMARY_FILE = "run_summary.json"  # in the run's --output directory
RUN_ARCHIVE_DIR = "runs"  # <output>/runs/<run id>.json: one summary per run


class RunStatus(str, Enum):
    """How a run ended (``status`` in the summary); each has its exit code."""

    PUSHED = "pushed"  # blessed and pushed (or already in service)
    BLESSED_NOT_PUSHED = "blessed_not_pushed"  # blessed, but the Pusher published nothing
    NOT_BLESSED = "not_blessed"  # the gate refused it; nothing pushed
    DATA_INVALID = "data_invalid"  # the data was rejected before training
    INTERRUPTED = "interrupted"
    FAILED = "failed"  # a component raised
    SUBMITTED = "submitted"  # continuous training handed the run to Kubeflow (its result is on the KFP UI)

    def __str__(self) -> str:
        return self.value


class SummaryError(TextOpsError):
    """A run summary that is missing or unreadable; the message names the file and the fix."""

    exit_code = ExitCode.USAGE


@dataclasses.dataclass
class PushedModel:
    version: int
    path: str
    already_in_service: bool = False


@dataclasses.dataclass
class BaselineModel:
    """The model in service the candidate was compared with."""

    version: int
    path: Optional[str] = None


@dataclasses.dataclass
class TrainingFigures:
    """The Trainer's figures on the split it evaluated on (``validation`` with three splits, else
    the hold-out of train) at the epoch it kept (early stopping keeps the best, not the last)."""

    eval_splits: list[str]
    epochs: int
    last_epoch: dict[str, Optional[float]]  # the kept epoch's figures (named before early stopping existed)
    kept_epoch: Optional[int] = None  # 1-based


# Fields written only when set (older summaries lack them; readers use None).
_OPTIONAL = ("evaluation_uri", "model_run_uri", "training", "output", "model_repository", "analysis_report")


@dataclasses.dataclass
class RunSummary:
    """One run: how it ended, the gate's table, what was pushed. Field names are the JSON keys.

    ``metrics`` maps each headline metric to its gate row (``value``, ``threshold``, and when
    compared: ``baseline``, ``change``, ``passed_threshold``, ``passed_change``); ``per_class``
    maps each class to its precision/recall/f1/auc/support.
    """

    status: RunStatus
    exit_code: ExitCode
    run_id: Optional[str]
    pipeline: str
    model_name: str
    wall_seconds: float
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    components: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    blessed: Optional[bool] = None
    reasons: list[str] = dataclasses.field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    per_class: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    baseline: Optional[BaselineModel] = None
    pushed: Optional[PushedModel] = None
    error: Optional[str] = None
    problems: list[str] = dataclasses.field(default_factory=list)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    evaluation_uri: Optional[str] = None
    model_run_uri: Optional[str] = None
    training: Optional[TrainingFigures] = None
    output: Optional[str] = None
    model_repository: Optional[str] = None
    analysis_report: Optional[str] = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # keys this version does not know, kept

    @property
    def pushed_version(self) -> Optional[int]:
        return self.pushed.version if self.pushed else None

    def setting(self, section: str, key: str, default: Any = None) -> Any:
        """A setting the run used, e.g. ``setting("data", "label_column")``."""
        return (self.settings.get(section) or {}).get(key, default)

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None:
                continue
            if isinstance(value, Enum):
                value = value.value
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            out[f.name] = value
        out["exit_code"] = int(self.exit_code)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "run summary") -> "RunSummary":
        if not isinstance(data, dict):
            raise SummaryError(f"{where} is not a JSON object; re-run the pipeline to rewrite it")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [k for k in ("status", "exit_code") if k not in data]
        if missing:
            raise SummaryError(f"{where} lacks {', '.join(missing)}: not a run summary written by `textops run`")
        try:
            status = RunStatus(data["status"])
            exit_code = ExitCode(int(data["exit_code"]))
        except (ValueError, TypeError) as exc:
            raise SummaryError(f"{where}: {exc}; it was not written by this version of textops") from None
        values = {k: v for k, v in data.items() if k in known}
        values.update(status=status, exit_code=exit_code)
        values.setdefault("run_id", None)
        values.setdefault("pipeline", "textops")
        values.setdefault("model_name", "")
        values.setdefault("wall_seconds", 0.0)
        for key in ("data", "settings", "metrics", "per_class"):
            values[key] = values.get(key) or {}
        for key in ("components", "reasons", "problems"):
            values[key] = values.get(key) or []
        if values.get("pushed"):
            values["pushed"] = PushedModel(**values["pushed"])
        if values.get("baseline"):
            values["baseline"] = BaselineModel(**values["baseline"])
        if values.get("training"):
            values["training"] = TrainingFigures(**values["training"])
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def write(self, path: Union[str, os.PathLike]) -> None:
        """Writes the summary as JSON, atomically (a reader never sees half a file)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def summary_path(run: Union[str, os.PathLike]) -> Path:
    """``<run>/run_summary.json`` for a run directory; a path to a ``.json`` file as it is."""
    p = Path(run)
    return p if p.suffix == ".json" else p / SUMMARY_FILE


def read_summary(run: Union[str, os.PathLike]) -> RunSummary:
    """The summary of a run directory (``--output`` of ``textops run``) or of a summary file."""
    path = summary_path(run)
    if not path.is_file():
        raise SummaryError(f"{Path(run)} is not a pipeline run directory (no {SUMMARY_FILE}); pass the --output of `textops run`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SummaryError(f"cannot read {path} ({exc}); re-run the pipeline to rewrite it") from None
    return RunSummary.from_dict(data, where=str(path))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render_text(summary: RunSummary) -> str:
    """The summary for people: the gate table, per-class figures, the Trainer's, and the outcome."""
    lines = []
    if summary.metrics:
        lines.append("")
        lines.append(f"{'metric':<10} {'value':>8} {'threshold':>10} {'baseline':>9} {'change':>8}  gate")
        for name, row in summary.metrics.items():
            gate = "-"
            if "passed_threshold" in row:
                gate = "ok" if row["passed_threshold"] and row.get("passed_change", True) else "FAIL"
            lines.append(
                f"{name:<10} {_fmt(row['value']):>8} {_fmt(row['threshold']):>10} "
                f"{_fmt(row.get('baseline')):>9} {_fmt(row.get('change')):>8}  {gate}"
            )
    if summary.per_class:
        lines.append("")
        lines.append(f"{'class':<16} {'precision':>9} {'recall':>8} {'f1':>8} {'auc':>8} {'support':>8}")
        for name, row in summary.per_class.items():
            lines.append(
                f"{name[:16]:<16} {_fmt(row.get('precision')):>9} {_fmt(row.get('recall')):>8} "
                f"{_fmt(row.get('f1')):>8} {_fmt(row.get('auc')):>8} {_fmt(int(row.get('support') or 0)):>8}"
            )
    training = summary.training
    if training and training.last_epoch:
        figures = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(training.last_epoch.items()))
        lines.append("")
        lines.append(
            f"Trainer, epoch {training.kept_epoch or training.epochs} of {training.epochs} kept, "
            f"on the {'/'.join(training.eval_splits)} split: {figures}"
        )
        if "validation" in training.eval_splits:
            lines.append("The gate above scored the test split, which training never saw.")
    lines.append("")
    status, pushed = summary.status, summary.pushed
    if status is RunStatus.PUSHED and pushed and pushed.already_in_service:
        lines.append(
            f"BLESSED; this model is already in service as {summary.model_name} version "
            f"{pushed.version} ({pushed.path}): nothing new to push."
        )
    elif status is RunStatus.PUSHED and pushed:
        lines.append(f"BLESSED and pushed: {summary.model_name} version {pushed.version} -> {pushed.path}")
    elif status is RunStatus.BLESSED_NOT_PUSHED:
        lines.append("BLESSED; the Pusher did not publish a new version (see the log).")
    elif status is RunStatus.NOT_BLESSED:
        lines.append("NOT BLESSED: nothing was pushed; the model in service is unchanged.")
        for reason in summary.reasons:
            lines.append(f"  - {reason}")
    elif status is RunStatus.DATA_INVALID:
        lines.append("DATA REJECTED before training: nothing was trained or pushed.")
        for problem in summary.problems:
            lines.append(f"  - {problem}")
    else:
        lines.append(f"FAILED: {summary.error or 'see the log'}")
    if summary.baseline:
        lines.append(f"Compared with the model in service: version {summary.baseline.version}")
    return "\n".join(lines)
