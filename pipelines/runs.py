"""Run history: what each pipeline run of an output directory used, measured, decided and served.

Read from the ML Metadata store (every run, its components' states and durations, the span of
its Examples, its blessing and push) and completed by the per-run summaries the local runner
archives as ``<output>/runs/<run_id>.json`` (the data spans of the window, the metric table, the
wall time). The model repository says which version is in service now.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Optional

from textops.components.classification import HEADLINE_METRICS as HEADLINE
from textops.errors import TextOpsError
from textops.summary import RUN_ARCHIVE_DIR, RunStatus, RunSummary, SummaryError, read_summary, summary_path


class RunsError(TextOpsError):
    """The output directory or the run asked for does not exist."""


@dataclasses.dataclass
class RunInfo:
    run_id: str
    started: str  # ISO time, UTC
    status: str
    spans: list[int]
    metrics: dict[str, Optional[float]]
    baseline: dict[str, Optional[float]]
    blessed: Optional[bool]
    pushed_version: Optional[int]
    baseline_version: Optional[int]
    seconds: Optional[float]
    components: dict[str, dict[str, Any]]  # name -> {state, seconds}
    serving: bool = False  # its pushed version is the newest in the repository now

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _read(path: Path) -> RunSummary:
    try:
        return read_summary(path)
    except SummaryError as exc:
        raise RunsError(str(exc)) from None


def _status_from_mlmd(run) -> str:  # noqa: ANN001
    """A run without a summary (killed, or still running): its status from MLMD alone."""
    states = {e.node_id: e.state for e in run.executions.values()}
    pushed = run.output("Pusher", "pushed_model")
    blessing = run.output("Evaluator", "blessing")
    if pushed is not None and pushed.prop("pushed", 0):
        return RunStatus.PUSHED.value
    if blessing is not None and not blessing.prop("blessed", 0):
        return RunStatus.NOT_BLESSED.value
    if "failed" in states.values():
        return RunStatus.FAILED.value
    if "running" in states.values():
        return "running"
    return "unknown"


def load_runs(output: Path, pipeline_name: Optional[str] = None) -> list[RunInfo]:
    """Every run recorded under ``output`` (the --output of `textops run`/`schedule`), oldest first."""
    from textops import mlmd, model_repository

    output = Path(output)
    metadata = output / "metadata.sqlite"
    if not metadata.is_file():
        raise RunsError(f"{output} has no metadata.sqlite: not a pipeline output directory (the --output of `textops run`)")
    archive = {p.stem: _read(p) for p in sorted((output / RUN_ARCHIVE_DIR).glob("*.json"))}
    last = summary_path(output)
    if last.is_file():
        summary = _read(last)
        if summary.run_id:
            archive.setdefault(summary.run_id, summary)
    if pipeline_name is None:
        names = {s.pipeline for s in archive.values() if s.pipeline}
        pipeline_name = names.pop() if len(names) == 1 else "textops"
    store = mlmd.connect_sqlite(str(metadata))
    infos: list[RunInfo] = []
    repository: Optional[str] = None
    model_name: Optional[str] = None
    for run in mlmd.list_runs(store, pipeline_name):
        s = archive.get(run.run_id)
        repository = (s.model_repository if s else None) or repository
        model_name = (s.model_name if s else None) or model_name
        examples = run.output("CsvExampleGen", "examples") or run.output("ImportExampleGen", "examples") or run.output("FileBasedExampleGen", "examples")
        spans = list((s.data.get("spans") if s else None) or [])
        if not spans and examples is not None and examples.prop("span") is not None:
            spans = [int(examples.prop("span"))]
        table = s.metrics if s else {}
        blessing = run.output("Evaluator", "blessing")
        pushed = run.output("Pusher", "pushed_model")
        pushed_version = None
        if pushed is not None and pushed.prop("pushed", 0) and pushed.prop("pushed_version") is not None:
            pushed_version = int(pushed.prop("pushed_version"))
        baseline_version = blessing.prop("baseline_version") if blessing is not None else None
        components = {e.node_id: {"state": e.state, "seconds": round(e.seconds, 1)} for e in run.executions.values()}
        seconds = s.wall_seconds if s else None
        if seconds is None and components:
            seconds = round(sum(c["seconds"] for c in components.values()), 1)
        infos.append(
            RunInfo(
                run_id=run.run_id,
                started=dt.datetime.fromtimestamp(run.create_time_ms / 1000, dt.timezone.utc).isoformat(timespec="seconds"),
                status=str(s.status) if s else _status_from_mlmd(run),
                spans=spans,
                metrics={m: (table.get(m) or {}).get("value") for m in HEADLINE},
                baseline={m: (table.get(m) or {}).get("baseline") for m in HEADLINE},
                blessed=bool(blessing.prop("blessed", 0)) if blessing is not None else (s.blessed if s else None),
                pushed_version=pushed_version,
                baseline_version=int(baseline_version) if baseline_version else None,
                seconds=seconds,
                components=components,
            )
        )
    if repository and model_name:
        latest = model_repository.latest_version(repository, model_name)
        for info in infos:
            info.serving = latest is not None and info.pushed_version == latest.version
    return infos


def served_now(output: Path) -> Optional[dict[str, Any]]:
    """The newest version in the run directory's model repository, with its push record."""
    from textops import model_repository

    last = summary_path(output)
    if not last.is_file():
        return None
    summary = _read(last)
    if not summary.model_repository:
        return None
    latest = model_repository.latest_version(summary.model_repository, summary.model_name)
    if latest is None:
        return None
    record = model_repository.read_push_record(latest.path)
    return {"model": latest.model_name, "version": latest.version, "path": latest.path, "rollback_of": record.get("rollback_of")}


def find_run(runs: list[RunInfo], key: str) -> RunInfo:
    """A run by id, unique id prefix, or position (1 = oldest, -1 = newest)."""
    key = {"latest": "-1", "previous": "-2"}.get(key, key)
    try:
        index = int(key)
    except ValueError:
        index = None
    if index is not None and index != 0 and abs(index) <= len(runs) and len(key) < 6:
        return runs[index - 1] if index > 0 else runs[index]
    exact = [r for r in runs if r.run_id == key]
    matches = exact or [r for r in runs if r.run_id.startswith(key)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(r.run_id for r in runs[-10:]) or "none"
    if not matches:
        raise RunsError(f"no run {key!r}; give a run id (or a unique prefix) or a position (1 = oldest, -1 = newest). Runs: {known}")
    raise RunsError(f"{key!r} matches {len(matches)} runs ({', '.join(r.run_id for r in matches[:5])}); give more of the id")


def _f(v: Any, width: int = 6) -> str:
    if v is None:
        return "-".rjust(width)
    if isinstance(v, float):
        return f"{v:.3f}".rjust(width)
    return str(v).rjust(width)


def render_list(runs: list[RunInfo], served: Optional[dict[str, Any]]) -> str:
    lines = [
        f"{'#':>3} {'run id':<28} {'started (UTC)':<20} {'spans':<10} {'status':<13} "
        f"{'acc':>6} {'f1':>6} {'base':>6} {'pushed':>11} {'secs':>6}"
    ]
    for i, r in enumerate(runs, 1):
        spans = ",".join(str(s) for s in r.spans) or "-"
        pushed = (str(r.pushed_version) + ("*" if r.serving else "")) if r.pushed_version else "-"
        lines.append(
            f"{i:>3} {r.run_id[:28]:<28} {r.started[:19].replace('T', ' '):<20} {spans[:10]:<10} {r.status[:13]:<13} "
            f"{_f(r.metrics.get('accuracy'))} {_f(r.metrics.get('f1'))} {_f(r.baseline_version and r.baseline.get('accuracy'))} "
            f"{pushed:>11} {_f(r.seconds and round(r.seconds))}"
        )
    if served:
        extra = f" (a rollback to version {served['rollback_of']})" if served.get("rollback_of") else ""
        lines.append(f"\nin service now: {served['model']} version {served['version']}{extra}; * marks the run that pushed it")
    return "\n".join(lines)


def render_compare(a: RunInfo, b: RunInfo) -> str:
    def row(name: str, va: Any, vb: Any, diff: bool = False) -> str:
        delta = ""
        if diff and isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            delta = f"{vb - va:+.3f}"
        return f"{name:<22} {str(_f(va, 0)).strip():>28} {str(_f(vb, 0)).strip():>28} {delta:>8}"

    lines = [f"{'':<22} {'A':>28} {'B':>28} {'B-A':>8}", row("run id", a.run_id[:28], b.run_id[:28])]
    lines.append(row("started (UTC)", a.started[:19], b.started[:19]))
    lines.append(row("data spans", ",".join(map(str, a.spans)) or "-", ",".join(map(str, b.spans)) or "-"))
    lines.append(row("status", a.status, b.status))
    lines.append(row("blessed", a.blessed, b.blessed))
    lines.append(row("pushed version", a.pushed_version, b.pushed_version))
    lines.append(row("compared with version", a.baseline_version, b.baseline_version))
    lines.append(row("in service now", a.serving, b.serving))
    for m in HEADLINE:
        lines.append(row(m, a.metrics.get(m), b.metrics.get(m), diff=True))
    lines.append(row("seconds (wall)", a.seconds, b.seconds, diff=True))
    for name in sorted(set(a.components) | set(b.components), key=lambda n: _ORDER.get(n, 99)):
        ca, cb = a.components.get(name, {}), b.components.get(name, {})
        lines.append(
            row(f"  {name}", f"{ca.get('seconds', '-')}s {ca.get('state', '')}".strip(), f"{cb.get('seconds', '-')}s {cb.get('state', '')}".strip())
        )
    return "\n".join(lines)


_ORDER = {n: i for i, n in enumerate((  # pipelines.pipeline.COMPONENT_ORDER, without importing TFX
    "CsvExampleGen", "ImportExampleGen", "FileBasedExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen", "ExampleValidator",
    "Transform", "Tuner", "Trainer", "Evaluator", "InfraValidator", "Pusher",
))}
