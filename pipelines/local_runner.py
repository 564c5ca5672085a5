"""Runs the pipeline on this machine: LocalDagRunner, Beam DirectRunner, SQLite MLMD.

Everything a run makes lands under one output directory, so a rerun with the same directory
continues the same history (cache hits, the model in service as the baseline):

    <output>/pipeline_root/     component outputs (artifacts)
    <output>/metadata.sqlite    the ML Metadata store
    <output>/model_repository/  pushed models, <name>/<version>/ (unless push.model_repository is set)
    <output>/run_summary.json   the last run's summary
    <output>/logs/run-*.log     full logs of each run
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

from textops import data as data_lib
from textops import mlmd, model_repository
from textops.errors import DataValidationError, ExitCode
from textops.settings import DataSettings, Settings
from textops.summary import RUN_ARCHIVE_DIR, SUMMARY_FILE, RunStatus, RunSummary

ProgressFn = Callable[[str], None]


@dataclasses.dataclass
class RunPaths:
    output: Path
    model_repository: str

    @property
    def pipeline_root(self) -> Path:
        return self.output / "pipeline_root"

    @property
    def metadata(self) -> Path:
        return self.output / "metadata.sqlite"

    @property
    def summary(self) -> Path:
        return self.output / SUMMARY_FILE

    @property
    def staged_input(self) -> Path:
        """Where a window of several data spans is staged for ExampleGen (rebuilt per run)."""
        return self.output / "staged_input"

    @property
    def run_archive(self) -> Path:
        """Every run's summary, kept as ``<run_id>.json`` for ``textops runs``."""
        return self.output / RUN_ARCHIVE_DIR

    @property
    def logs(self) -> Path:
        return self.output / "logs"

    @classmethod
    def for_output(cls, output: str | os.PathLike, settings: Settings) -> "RunPaths":
        out = Path(output).absolute()
        repo = settings.push.model_repository or str(out / "model_repository")
        if "://" not in repo:
            repo = str(Path(repo).absolute())
        return cls(out, repo)


class _ComponentProgress(logging.Handler):
    """Turns LocalDagRunner's per-component log records into progress lines with timings."""

    def __init__(self, report: ProgressFn):
        super().__init__(level=logging.INFO)
        self.report = report
        self.current: Optional[str] = None
        self.started = 0.0
        self.cached = False
        self.done: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg, args = record.msg, record.args or ()
        if msg == "Component %s is running.":
            self.current, self.started, self.cached = str(args[0]), time.monotonic(), False
            self.report(f"[{len(self.done) + 1}] {self.current} ...")
        elif msg == "A cached execution %d is used.":
            self.cached = True
        elif msg == "Component %s is finished." and self.current:
            elapsed = time.monotonic() - self.started
            state = "cached" if self.cached else "complete"
            self.done.append({"name": self.current, "state": state, "seconds": round(elapsed, 2)})
            self.report(f"[{len(self.done)}] {self.current} {'cached' if self.cached else 'done'} in {elapsed:.1f}s")
            self.current = None

    def failed(self) -> Optional[dict[str, Any]]:
        if self.current is None:
            return None
        entry = {"name": self.current, "state": "failed", "seconds": round(time.monotonic() - self.started, 2)}
        self.done.append(entry)
        self.current = None
        return entry


def _data_info(
    source: data_lib.DataSource, run: Optional[mlmd.RunRecord], data_path: str, settings: DataSettings
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "path": data_path,
        "format": source.format,
        "split": "given (train/eval files)" if source.has_given_split else "hash buckets",
    }
    if source.validation_pattern is not None:
        info["split"] = "given (train/validation/test files): the Trainer evaluates on validation, the gate on test"
    elif data_lib.has_validation_split(source, settings):
        info["split"] = "hash buckets (train/validation/eval): the Trainer evaluates on validation, the gate on eval"
    if source.spans:
        info["spans"] = list(source.spans)
        info["split"] = f"spans {list(source.spans)}: train on their train files, evaluate on span {source.span}'s test file"
    stats = run.output("StatisticsGen", "statistics") if run else None
    if stats is not None:
        from tfx.types import artifact_utils, standard_artifacts
        from tfx.components.statistics_gen import stats_artifact_utils

        artifact = standard_artifacts.ExampleStatistics()
        artifact.uri = stats.uri
        artifact.split_names = stats.prop("split_names", artifact_utils.encode_split_names(["train", "eval"]))
        for split in artifact_utils.decode_split_names(artifact.split_names):
            try:
                proto = stats_artifact_utils.load_statistics(artifact, split).proto()
                info[f"{split}_examples"] = int(proto.datasets[0].num_examples) if proto.datasets else 0
            except Exception as exc:  # a summary must not fail the run; the count is optional
                logging.getLogger(__name__).warning("could not read %s statistics: %s", split, exc)
    return info


def run_local(
    settings: Settings,
    data_path: str,
    output: str | os.PathLike,
    progress: ProgressFn = print,
    checked: bool = False,
) -> RunSummary:
    """Runs the whole pipeline; returns the summary (also written to run_summary.json).

    ``checked``: the caller already ran ``data.check_input`` on ``data_path`` (the CLI does,
    before importing TensorFlow), so the files are not read a second time. A run whose data is
    rejected creates nothing under ``output``.
    """
    started = time.monotonic()
    started_wall_ms = int(time.time() * 1000)
    paths = RunPaths.for_output(output, settings)
    if not checked:
        data_lib.check_input(data_path, settings.data)
    source = data_lib.discover(data_path, settings.data, staging_dir=str(paths.staged_input))
    paths.output.mkdir(parents=True, exist_ok=True)

    from tfx.orchestration import metadata
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from textops.pipelines.beam_options import direct_runner_args
    from textops.pipelines.pipeline import Locations, create_pipeline

    in_service = model_repository.latest_version(paths.model_repository, settings.push.model_name)
    locations = Locations(
        pipeline_root=str(paths.pipeline_root),
        model_repository=paths.model_repository,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(str(paths.metadata)),
        beam_pipeline_args=tuple(direct_runner_args(settings.beam.pipeline_args())),
        baseline_hint=f"{in_service.version}" if in_service else "none",
    )
    pipeline = create_pipeline(settings, source, locations)
    progress(
        f"pipeline '{settings.pipeline.name}': {len(pipeline.components)} components; "
        f"model in service: {in_service.version if in_service else 'none'}"
    )

    tracker = _ComponentProgress(progress)
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(tracker)
    previous_level = absl_logger.level
    if absl_logger.getEffectiveLevel() > logging.INFO:
        absl_logger.setLevel(logging.INFO)
    error: Optional[BaseException] = None
    try:
        LocalDagRunner().run(pipeline)
    except BaseException as exc:  # reported in the summary and by the exit code
        error = exc
        tracker.failed()
        if not isinstance(exc, (DataValidationError, KeyboardInterrupt)):
            logging.getLogger(__name__).exception("pipeline run failed")
    finally:
        absl_logger.removeHandler(tracker)
        absl_logger.setLevel(previous_level)

    run = None
    if paths.metadata.exists():
        store = mlmd.connect_sqlite(str(paths.metadata))
        run = mlmd.latest_run(store, settings.pipeline.name)
    components = tracker.done
    if error is None:
        blessing = run.output("Evaluator", "blessing") if run else None
        pushed = run.output("Pusher", "pushed_model") if run else None
        if pushed is not None and pushed.prop("pushed", 0):
            status, code = RunStatus.PUSHED, ExitCode.OK
        elif blessing is not None and not blessing.prop("blessed", 0):
            status, code = RunStatus.NOT_BLESSED, ExitCode.NOT_BLESSED
        else:
            status, code = RunStatus.BLESSED_NOT_PUSHED, ExitCode.FAILED
        problems, message = None, None
    elif isinstance(error, DataValidationError):
        status, code, problems, message = RunStatus.DATA_INVALID, ExitCode.DATA_INVALID, error.problems, str(error)
    elif isinstance(error, KeyboardInterrupt):
        status, code, problems, message = RunStatus.INTERRUPTED, ExitCode.FAILED, None, "interrupted"
    else:
        status, code, problems = RunStatus.FAILED, ExitCode.FAILED, None
        message = f"{type(error).__name__}: {error}"
    from textops.pipelines.summary import build_summary

    summary = build_summary(
        settings,
        run,
        status,
        code,
        data=_data_info(source, run, data_path, settings.data),
        components=components,
        wall_seconds=time.monotonic() - started,
        error=message,
        problems=problems,
    )
    summary.output = str(paths.output)
    summary.model_repository = paths.model_repository
    summary.write(paths.summary)
    if summary.evaluation_uri:
        summary.analysis_report = _write_report(summary, progress)
        summary.write(paths.summary)
    if run is not None and run.create_time_ms >= started_wall_ms - 1000:  # this run, not a previous one
        paths.run_archive.mkdir(exist_ok=True)
        summary.write(paths.run_archive / f"{summary.run_id}.json")
    return summary


def _write_report(summary: RunSummary, progress: ProgressFn) -> Optional[str]:
    """The model-analysis HTML page after every evaluation; a report problem never fails the run."""
    from textops.monitoring.analysis_report import write_analysis_report

    started = time.monotonic()
    try:
        path = str(write_analysis_report(summary))
    except Exception as exc:  # noqa: BLE001 - reported, and the run's own result stands
        logging.getLogger(__name__).exception("model-analysis report failed")
        progress(f"model-analysis report failed ({type(exc).__name__}: {exc}); `textops report --run` retries it")
        return None
    progress(f"model-analysis report: {path} ({time.monotonic() - started:.1f}s)")
    return path
