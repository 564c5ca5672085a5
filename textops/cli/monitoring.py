"""``textops monitor`` and ``textops report``.

Imports here stay light (click only) so ``textops --help`` stays fast; Evidently, TensorFlow
and TFMA are imported inside the commands.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import click

from textops.cli.options import echo_err, exit_codes_help, pipeline_settings, quiet_third_party
from textops.errors import ExitCode, TextOpsError

MONITOR_EXIT_CODES = {
    ExitCode.OK: "no alert",
    ExitCode.FAILED: "the monitor failed",
    ExitCode.USAGE: "bad usage, settings or reference",
    ExitCode.NO_DATA: "no data (empty window, or fewer than window.min_records)",
    ExitCode.DRIFT: "drift alert",
    ExitCode.QUALITY: "quality alert (and no drift alert)",
    ExitCode.SERVICE: "service alert only (error rate, p99 latency)",
}


@click.command("monitor")
@click.option("--log", "log", type=click.Path(path_type=Path), help="Prediction-log directory (or one log file).")
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    help="Pipeline run directory, a saved reference directory, or a CSV with text,label (then --model).",
)
@click.option("--model", type=click.Path(path_type=Path), help="SavedModel that scores a CSV reference.")
@click.option("--window", "window", help="Duration ending at --until (30m, 24h, 7d) or 'all'. Default 24h.")
@click.option("--since", help="Window start (ISO time or unix seconds); overrides --window.")
@click.option("--until", help="Window end (ISO time or unix seconds). Default: now.")
@click.option("--max-records", type=int, help="Keep only the newest N records of the window.")
@click.option("--feedback", type=click.Path(path_type=Path), help="Ground-truth labels (JSONL or CSV: request_id,label).")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), help="Report directory. Default: runs/monitor.")
@click.option("--textfile", type=click.Path(path_type=Path, dir_okay=False), help="Write Prometheus metrics to this .prom file.")
@click.option("--pushgateway", help="Push Prometheus metrics to this Pushgateway (host:port).")
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False), help="Add the run to this Evidently workspace (evidently ui).")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False), help="Monitor settings YAML.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one setting, e.g. --set drift.text_threshold=0.65.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON instead of one line.")
@click.option("--verbose", is_flag=True, help="Show TensorFlow/Evidently logs on the console.")
@click.option(
    "--retrain-on-drift",
    is_flag=True,
    help="On a drift or quality alert, write the labelled window (--feedback) as a new span under --data and retrain "
    "into --pipeline-output (see docs/continuous.md).",
)
@click.option("--data", "data", type=click.Path(path_type=Path, file_okay=False), help="Span directory root the new span is written to (--retrain-on-drift).")
@click.option(
    "--pipeline-output",
    type=click.Path(path_type=Path, file_okay=False),
    help="Pipeline run directory to retrain into (--retrain-on-drift; --output is this command's report directory).",
)
@click.option("--pipeline-config", type=click.Path(path_type=Path, dir_okay=False), help="Pipeline settings YAML for the retraining run.")
@click.option("--pipeline-set", "pipeline_overrides", multiple=True, metavar="KEY=VALUE", help="Pipeline setting override for the retraining run.")
@click.option("--kfp-host", default=None, help="Retrain on Kubeflow instead: compile and submit to this KFP endpoint.")
def monitor(
    log: Optional[Path],
    reference: Optional[Path],
    model: Optional[Path],
    window: Optional[str],
    since: Optional[str],
    until: Optional[str],
    max_records: Optional[int],
    feedback: Optional[Path],
    output: Optional[Path],
    textfile: Optional[Path],
    pushgateway: Optional[str],
    workspace: Optional[Path],
    config: Optional[Path],
    overrides: tuple[str, ...],
    as_json: bool,
    verbose: bool,
    retrain_on_drift: bool = False,
    data: Optional[Path] = None,
    pipeline_output: Optional[Path] = None,
    pipeline_config: Optional[Path] = None,
    pipeline_overrides: tuple[str, ...] = (),
    kfp_host: Optional[str] = None,
) -> None:
    """Compare a window of logged predictions with the reference: drift, quality, errors, latency.

    Writes <output>/report.html (self-contained), snapshot.json (Evidently), verdict.json, and
    the reference it built (<output>/reference/, reusable with --reference) ; prints a one-line
    verdict and exits with a status a scheduler can act on.
    """
    retrain = None
    if retrain_on_drift:
        from textops.ct.retrain import RetrainTarget

        if data is None or pipeline_output is None:
            raise click.UsageError("--retrain-on-drift needs --data (span root) and --pipeline-output (run directory)")
        if feedback is None:
            raise click.UsageError("--retrain-on-drift needs --feedback: the labelled production texts become the new span")
        retrain = RetrainTarget(
            data, pipeline_output, pipeline_settings(pipeline_config, pipeline_overrides),
            pipeline_config, tuple(pipeline_overrides), kfp_host,
        )
    quiet_third_party(None, verbose)
    from textops.errors import ExitCode
    from textops.monitoring.config import MonitorError, load_monitor_settings

    try:
        settings = load_monitor_settings(
            config,
            list(overrides),
            log=log,
            reference=reference,
            model=model,
            feedback=feedback,
            output=output,
            **{
                "window.last": window,
                "window.since": since,
                "window.until": until,
                "window.max_records": max_records,
                "export.textfile": textfile,
                "export.pushgateway": pushgateway,
                "export.workspace": workspace,
            },
        )
        sys.exit(_monitor(settings, as_json, retrain))
    except MonitorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(int(ExitCode.FAILED))


def _monitor(settings, as_json: bool, retrain=None) -> int:  # noqa: ANN001 - MonitorSettings, RetrainTarget
    import json

    from textops.monitoring import exporter
    from textops.monitoring.monitor import run_monitor, write_outputs
    from textops.monitoring.reference import REFERENCE_JSON, load_reference

    reference = load_reference(settings.reference, settings.model, echo_err)
    if settings.reference is not None and not (Path(settings.reference) / REFERENCE_JSON).is_file():
        saved = reference.save(Path(settings.output) / "reference")
        echo_err(f"reference saved to {saved} (pass it as --reference next time to skip rebuilding)")
    result = run_monitor(settings, reference=reference, progress=echo_err)
    paths = write_outputs(result, settings.output)
    verdict = result.verdict.to_dict()
    registry = exporter.build_registry(verdict, time.time())
    if settings.export.textfile is not None:
        paths["textfile"] = str(exporter.write_textfile(registry, settings.export.textfile))
    if settings.export.pushgateway:
        exporter.push(registry, settings.export.pushgateway, settings.export.job)
    if settings.export.workspace is not None:
        snapshots = [s for s in (result.drift_snapshot, result.quality_snapshot) if s is not None]
        exporter.add_to_workspace(settings.export.workspace, settings.export.project, snapshots)
        paths["workspace"] = str(settings.export.workspace)
    if as_json:
        click.echo(json.dumps(verdict, indent=2))
    else:
        click.echo(result.verdict.line())
        for alert in result.verdict.alerts:
            click.echo(f"  - [{alert.kind}] {alert.message}")
        click.echo(f"report: {paths['report']}")
    if retrain is not None:
        from textops.ct.retrain import retrain_on_drift

        try:
            decision = retrain_on_drift(
                result, settings.feedback, retrain.data, retrain.run_dir, retrain.settings, retrain.runner(echo_err), echo_err
            )
        except TextOpsError as exc:
            click.echo(f"error: retraining not started: {exc}", err=True)
            return int(exc.exit_code)
        if decision["decision"] == "ran" and decision.get("exit_code") == 1:
            return int(ExitCode.FAILED)  # the retraining run failed; the verdict is in the report
    return result.verdict.exit_code


monitor.help = (monitor.help or "") + "\n\n" + exit_codes_help(MONITOR_EXIT_CODES)


@click.command("report")
@click.option(
    "--run", "run_dir", required=True, type=click.Path(path_type=Path, file_okay=False), help="Pipeline run directory (--output of `textops run`)."
)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="HTML file. Default: <run>/analysis_report.html.")
@click.option("--curves-dir", type=click.Path(path_type=Path, file_okay=False), help="Also write the training curves as PNG files here.")
@click.option("--verbose", is_flag=True, help="Show TensorFlow/TFMA logs on the console.")
def report(run_dir: Path, output: Optional[Path], curves_dir: Optional[Path], verbose: bool) -> None:
    """Write the model-analysis report of a run: gate, slices, confusion matrix, ROC/PR, training curves."""
    quiet_third_party(None, verbose)
    from textops.monitoring import curves
    from textops.monitoring.analysis_report import write_analysis_report

    from textops.summary import SummaryError, read_summary

    try:
        summary = read_summary(run_dir)
    except SummaryError as exc:
        raise click.UsageError(str(exc)) from None
    path = write_analysis_report(run_dir, output)
    click.echo(f"report: {path}")
    if curves_dir is not None:
        history = curves.read_history(summary.model_run_uri) if summary.model_run_uri else None
        if not history:
            raise click.ClickException("this run recorded no training history; no curves to write")
        for written in curves.write_curve_images(history, curves_dir, curves.eval_label(summary.model_run_uri)):
            click.echo(f"curve: {written}")


COMMANDS = (monitor, report)
