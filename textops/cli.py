"""The ``textops`` command line.

Settings are loaded once here (``--config`` YAML + ``--set key=value`` overrides) and passed
down; exit codes are documented in ``textops.errors.ExitCode``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional

import click

from textops.errors import TextOpsError
from textops.settings import Settings, SettingsError, dump_yaml, load_settings

_EXIT_CODES_HELP = (
    "Exit codes: 0 blessed and pushed; 1 failed; 2 bad usage or settings; "
    "3 data rejected before training; 4 trained but not blessed (nothing pushed)."
)


def quiet_third_party(log_file: Optional[Path], verbose: bool) -> None:
    """Full logs go to ``log_file``; the console shows progress, results and errors only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(tensorflow|tfx|apache_beam|tensorflow_.*)")
    logging.captureWarnings(True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.ERROR)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.INFO)
        absl_handler = absl_logging.get_absl_handler()
        root.removeHandler(absl_handler)
        # absl must not print to stderr itself (it would bypass the console filter).
        absl_logging.use_python_logging(quiet=True)
    except ImportError:
        pass


def _load(config: Optional[Path], overrides: tuple[str, ...]) -> Settings:
    try:
        return load_settings(config, list(overrides))
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _echo(line: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=False)


config_option = click.option(
    "--config", "config", type=click.Path(path_type=Path, dir_okay=False), help="YAML settings file."
)
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one setting, e.g. --set training.epochs=3 (repeatable; values are YAML).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textops")
def main() -> None:
    """TextOps: train, gate, push, serve and monitor a text classifier with TFX."""


def check_output_directory(output: Path) -> None:
    """``output`` is a directory this process can write in, or can be created as one.

    Tried by creating (and removing) a temporary file in it or in its nearest existing parent,
    since permission bits alone do not tell (root, read-only mounts, ACLs). Creates nothing.
    """
    from textops.errors import OutputDirectoryError

    out = Path(output).absolute()
    if out.exists() and not out.is_dir():
        raise OutputDirectoryError(f"--output {output} is a file, not a directory; give a directory for the run")
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputDirectoryError(f"--output {output}: {probe} is a file, so the run directory cannot be created there")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        what = "the run directory" if probe == out else f"{out.relative_to(probe)} inside it"
        raise OutputDirectoryError(
            f"--output {output}: cannot write in {probe} ({exc.strerror or exc}), so {what} cannot hold the run; "
            "choose a writable directory or fix its permissions (nothing was started)"
        ) from None


def preflight_run(settings: Settings, data: str, output: Path) -> Optional[int]:
    """The checks a run makes before TensorFlow is imported or anything is written: the data
    (``textops.data.check_input``) and --output. Prints the error and returns the exit code, or
    None when the run can start."""
    from textops import data as data_lib

    try:
        data_lib.check_input(data, settings.data)
        check_output_directory(output)
    except TextOpsError as exc:
        click.echo(f"error: {exc}", err=True)
        return int(exc.exit_code)
    return None


def _run_pipeline(settings: Settings, data: str, output: Path, verbose: bool) -> int:
    failed = preflight_run(settings, data, output)
    if failed is not None:
        return failed
    log_file = Path(output).absolute() / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    quiet_third_party(log_file, verbose)  # before TensorFlow is imported: it configures its logger then
    from textops.pipelines.local_runner import RunPaths, run_local
    from textops.summary import render_text

    paths = RunPaths.for_output(output, settings)
    _echo(f"output: {paths.output}  (full log: {log_file})")
    try:
        summary = run_local(settings, data, output, progress=_echo, checked=True)
    except TextOpsError as exc:
        click.echo(f"error: {exc}", err=True)
        return int(exc.exit_code)
    click.echo(render_text(summary))
    click.echo(f"\nsummary: {paths.summary}")
    if summary["status"] == "failed":
        click.echo(f"error: {summary['error']}\n(traceback in {log_file})", err=True)
    return int(summary["exit_code"])


@main.command()
@click.option("--data", required=True, help="CSV/TFRecord file or directory (train.csv + test.csv, or files to split).")
@click.option(
    "--output", required=True, type=click.Path(path_type=Path, file_okay=False), help="Run directory (reused = same history)."
)
@config_option
@set_option
@click.option("--verbose", is_flag=True, help="Show TFX/Beam/TensorFlow logs on the console.")
def run(data: str, output: Path, config: Optional[Path], overrides: tuple[str, ...], verbose: bool) -> None:
    """Run the whole local pipeline: ExampleGen to Pusher.

    Everything the run makes lands under --output: pipeline_root/, metadata.sqlite,
    model_repository/ (unless push.model_repository is set), run_summary.json and logs/.
    """
    settings = _load(config, overrides)
    sys.exit(_run_pipeline(settings, data, output, verbose))


run.help = (run.help or "") + "\n\n" + _EXIT_CODES_HELP


@main.command()
@click.option(
    "--output",
    default="runs/demo",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Run directory; the generated data goes to <output>/demo_data.",
)
@config_option
@set_option
@click.option("--rows", default=2400, show_default=True, help="Training rows to generate (test: a quarter).")
@click.option("--verbose", is_flag=True, help="Show TFX/Beam/TensorFlow logs on the console.")
def demo(output: Path, config: Optional[Path], overrides: tuple[str, ...], rows: int, verbose: bool) -> None:
    """Generate the demo dataset and run the whole pipeline on it."""
    from textops.demo import generate

    settings = _load(config, overrides)
    try:
        check_output_directory(output)
    except TextOpsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    data_dir = generate(output / "demo_data", train_rows=rows, test_rows=max(rows // 4, 50))
    _echo(f"demo data: {data_dir} (train.csv, test.csv)")
    sys.exit(_run_pipeline(settings, str(data_dir), output, verbose))


@main.command("config")
@config_option
@set_option
def config_cmd(config: Optional[Path], overrides: tuple[str, ...]) -> None:
    """Validate settings and print them in full (defaults filled in) as YAML."""
    click.echo(dump_yaml(_load(config, overrides)), nl=False)


@main.command("compile")
@click.option("--target", type=click.Choice(["kubeflow"]), default="kubeflow", show_default=True)
@click.option(
    "--output",
    default="pipeline.yaml",
    show_default=True,
    help="KFP package (.yaml: PipelineSpec + Kubernetes PlatformSpec) or TFX PipelineJob (.json, Vertex AI).",
)
@click.option("--data", "data_root", default=None, help="Default of the data_root parameter (else kubeflow.data_root).")
@config_option
@set_option
def compile_cmd(target: str, output: str, data_root: Optional[str], config: Optional[Path], overrides: tuple[str, ...]) -> None:
    """Compile the pipeline for Kubeflow Pipelines v2 (the same pipeline `run` executes).

    Needs kubeflow.pipeline_root, kubeflow.model_repository and a data location in the settings.
    Per-run pipeline parameters: data_root, epochs and min_<metric> for each gated metric.
    """
    settings = _load(config, overrides)
    quiet_third_party(None, verbose=False)
    from textops.pipelines.kubeflow_runner import compile_pipeline

    try:
        job = compile_pipeline(settings, output, data_root)
    except TextOpsError as exc:
        raise click.ClickException(str(exc)) from None
    params = sorted(job.pipeline_spec["root"].get("inputDefinitions", {}).get("parameters", {}))
    click.echo(f"compiled {len(job.pipeline_spec['root']['dag']['tasks'])} tasks to {output}")
    click.echo(f"image: {settings.kubeflow.image}; pipeline root: {settings.kubeflow.pipeline_root}")
    click.echo(f"pipeline parameters: {', '.join(params)}")


@main.command()
@click.option("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080 (kubectl port-forward).")
@click.option("--package", default="pipeline.yaml", show_default=True, help="Compiled package (textops compile).")
@click.option("--experiment", default="textops", show_default=True)
@click.option("--run-name", default=None, help="Default: <pipeline name>-<timestamp>.")
@click.option("--schedule", default=None, metavar="CRON", help="Create a recurring run instead, e.g. '0 3 * * *'.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Pipeline parameter, e.g. --param epochs=3.")
@click.option("--namespace", default=None, help="Kubeflow namespace (multi-user installs).")
@config_option
@set_option
def submit(host, package, experiment, run_name, schedule, params, namespace, config, overrides) -> None:
    """Upload and run a compiled pipeline on Kubeflow, or schedule it (no catch-up, one run at a time)."""
    import yaml

    settings = _load(config, overrides)
    if not Path(package).is_file():
        raise click.UsageError(f"package {package} does not exist; run `textops compile --output {package}` first")
    values = {}
    for item in params:
        if "=" not in item:
            raise click.UsageError(f"--param {item!r} is not NAME=VALUE")
        name, raw = item.split("=", 1)
        values[name] = yaml.safe_load(raw)
    from textops.pipelines.kubeflow_runner import submit as kfp_submit

    name = run_name or f"{settings.pipeline.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        result = kfp_submit(
            package, host, experiment, name, values, schedule, namespace, pipeline_root=settings.kubeflow.pipeline_root
        )
    except TextOpsError as exc:
        raise click.ClickException(str(exc)) from None
    for key, value in result.items():
        click.echo(f"{key}: {value}")


# --- continuous training (docs/continuous.md) ------------------------------------------------


@main.command()
@click.option("--data", required=True, type=click.Path(path_type=Path, file_okay=False), help="Directory of span directories (span-1/, span-2/, ...).")
@click.option("--output", required=True, type=click.Path(path_type=Path, file_okay=False), help="Run directory (state, lock, decision log, runs).")
@click.option("--cron", default=None, metavar="EXPR", help="5-field cron expression, local time, e.g. '*/15 * * * *'. Required without --once.")
@click.option("--once", is_flag=True, help="One tick now, then exit (for an external cron or a Kubernetes CronJob).")
@click.option("--max-ticks", type=click.IntRange(min=1), default=None, help="Stop after this many ticks (default: run until stopped).")
@config_option
@set_option
def schedule(data: Path, output: Path, cron: Optional[str], once: bool, max_ticks: Optional[int], config: Optional[Path], overrides: tuple[str, ...]) -> None:
    """Run the pipeline whenever a new data span appears, one run at a time.

    Each tick: if the newest span under --data is newer than the last span trained for --output,
    run the pipeline on the newest data.spans.window spans; otherwise do nothing. A lock on
    --output means a tick that finds another run in progress exits at once (exit 8). Every
    decision is printed and appended to <output>/schedule.log; the last span trained is kept in
    <output>/schedule_state.json.

    Exit codes (--once): the pipeline's exit code when it ran (0 pushed, 4 not blessed, ...);
    0 when there was nothing to do; 8 when another run held the lock; 2/3 when the state file or
    the spans are unusable (the message says which and how to fix it).
    """
    from textops import loop

    settings = _load(config, overrides)
    if not once and cron is None:
        raise click.UsageError("give --cron EXPR (e.g. --cron '*/15 * * * *'), or --once for a single tick")
    try:
        parsed = loop.Cron.parse(cron) if cron is not None else None
    except loop.LoopError as exc:
        raise click.UsageError(str(exc)) from None
    runner = loop.subprocess_runner(data.absolute(), output.absolute(), config, overrides, _echo)

    def one_tick() -> dict:
        try:
            return loop.tick(data, output, settings.data.spans, runner, _echo)
        except TextOpsError as exc:  # e.g. a malformed span: logged; the next tick tries again
            return loop.log_decision(output, {"decision": "error", "exit_code": int(exc.exit_code), "message": str(exc)}, _echo)

    if once:
        decision = one_tick()
        if decision["decision"] == "busy":
            sys.exit(loop.EXIT_BUSY)
        sys.exit(int(decision.get("exit_code", 0)) if decision["decision"] in ("ran", "error") else 0)
    assert parsed is not None
    _echo(f"scheduling {data} -> {output} on '{parsed.expression}' (local time); Ctrl-C stops")
    try:
        loop.serve_schedule(parsed, one_tick, _echo, max_ticks=max_ticks)
    except KeyboardInterrupt:
        _echo("stopped")


@main.group()
def runs() -> None:
    """Run history of an output directory: spans, metrics, gate, push, durations, version served."""


@runs.command("list")
@click.option("--output", required=True, type=click.Path(path_type=Path, file_okay=False), help="Run directory (--output of run/schedule).")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def runs_list(output: Path, as_json: bool) -> None:
    """List every pipeline run of --output, oldest first."""
    import json

    quiet_third_party(None, verbose=False)
    from textops import runs as runs_lib

    try:
        history = runs_lib.load_runs(output)
        served = runs_lib.served_now(output)
    except TextOpsError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"runs": [r.to_dict() for r in history], "in_service": served}, indent=2))
    elif not history:
        click.echo(f"no runs recorded in {output}")
    else:
        click.echo(runs_lib.render_list(history, served))


@runs.command("compare", context_settings={"ignore_unknown_options": True})
@click.argument("run_a")
@click.argument("run_b")
@click.option("--output", required=True, type=click.Path(path_type=Path, file_okay=False), help="Run directory (--output of run/schedule).")
def runs_compare(run_a: str, run_b: str, output: Path) -> None:
    """Compare two runs side by side. RUN_A/RUN_B: run id, unique prefix, position (1 oldest, -1 newest) or latest/previous."""
    quiet_third_party(None, verbose=False)
    from textops import runs as runs_lib

    try:
        history = runs_lib.load_runs(output)
        a, b = runs_lib.find_run(history, run_a), runs_lib.find_run(history, run_b)
    except TextOpsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(runs_lib.render_compare(a, b))


@main.command()
@click.option("--model", "model_name", default=None, help="Model name (default: push.model_name).")
@click.option("--to", "to_version", required=True, type=int, help="The version to serve again.")
@click.option("--model-repository", "repository", default=None, help="Model repository (default: push.model_repository, else <output>/model_repository).")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), default=None, help="Run directory whose model repository to use.")
@config_option
@set_option
def rollback(model_name: Optional[str], to_version: int, repository: Optional[str], output: Optional[Path], config: Optional[Path], overrides: tuple[str, ...]) -> None:
    """Serve an earlier model version again, without dropping requests.

    Re-publishes version --to, atomically, as a new newest version (its push record says
    rollback_of); servers following the newest version (textops serve, TF Serving, KServe)
    hot-swap to it as for any push. The next pipeline run is gated against it.
    """
    from textops import loop

    settings = _load(config, overrides)
    quiet_third_party(None, verbose=False)
    repo = repository or settings.push.model_repository or (str(output / "model_repository") if output else None)
    if repo is None:
        raise click.UsageError("give --model-repository R (or --output of the pipeline run, or push.model_repository)")
    try:
        loop.rollback(repo, model_name or settings.push.model_name, to_version, _echo)
    except TextOpsError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--workers", type=int, required=True, help="Worker pods (MultiWorkerMirroredStrategy).")
@click.option("--gpus-per-worker", type=int, default=None, help="Default: kubeflow.trainer.gpus.")
@click.option("--transformed-examples", required=True, help="URI of a pipeline run's Transform transformed_examples.")
@click.option("--transform-graph", required=True, help="URI of the same run's Transform transform_graph.")
@click.option("--serving-model-dir", required=True, help="Where the chief writes the SavedModel.")
@click.option("--model-run-dir", required=True, help="TensorBoard logs and history.")
@click.option("--hyperparameters", default=None, help="The Tuner's best_hyperparameters URI, when the run tuned.")
@click.option("--name", default="textops-train", show_default=True)
@click.option("--namespace", default="kubeflow", show_default=True)
@click.option("--output", default="tfjob.yaml", show_default=True)
@config_option
@set_option
def tfjob(workers, gpus_per_worker, transformed_examples, transform_graph, serving_model_dir, model_run_dir,
          hyperparameters, name, namespace, output, config, overrides) -> None:
    """Write a Kubeflow Training Operator TFJob for multi-worker training beyond one node.

    Needs training.checkpoint_dir on shared storage (restarted workers resume from it).
    Apply it with `kubectl apply -f tfjob.yaml`.
    """
    import yaml

    settings = _load(config, overrides)
    quiet_third_party(None, verbose=False)
    from textops.pipelines.tfjob import tfjob_manifest

    try:
        manifest = tfjob_manifest(
            settings, name, workers, transformed_examples, transform_graph, serving_model_dir, model_run_dir,
            gpus_per_worker=gpus_per_worker, namespace=namespace, hyperparameters=hyperparameters,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    Path(output).write_text(yaml.safe_dump(manifest, sort_keys=False))
    click.echo(f"wrote {output}: TFJob {name}, {workers} workers")


# --- commands contributed by other parts of the project (one import line each) ---------------
# BEGIN SUBCOMMANDS
from textops.serving.cli import predict, serve  # noqa: E402

main.add_command(serve)
main.add_command(predict)
# END SUBCOMMANDS
# BEGIN MONITORING SUBCOMMANDS
from textops.monitoring.cli import monitor, report  # noqa: E402

main.add_command(monitor)
main.add_command(report)
# END MONITORING SUBCOMMANDS


if __name__ == "__main__":  # pragma: no cover
    main()
