"""``textops run``, ``demo``, ``config``, ``compile``, ``submit`` and ``tfjob``: the pipeline's commands."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import click

from textops.cli.options import (
    config_option,
    echo,
    exit_codes_help,
    exit_with,
    pipeline_settings,
    quiet_third_party,
    set_option,
    verbose_option,
)
from textops.errors import ExitCode, OutputDirectoryError, TextOpsError
from textops.settings import Settings, dump_yaml

RUN_EXIT_CODES = {
    ExitCode.OK: "blessed and pushed",
    ExitCode.FAILED: "failed",
    ExitCode.USAGE: "bad usage or settings",
    ExitCode.DATA_INVALID: "data rejected before training",
    ExitCode.NOT_BLESSED: "trained but not blessed (nothing pushed)",
}


def check_output_directory(output: Path) -> None:
    """``output`` is a directory this process can write in, or can be created as one.

    Tried by creating (and removing) a temporary file in it or in its nearest existing parent,
    since permission bits alone do not tell (root, read-only mounts, ACLs). Creates nothing.
    """
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
    from textops.summary import RunStatus, render_text

    paths = RunPaths.for_output(output, settings)
    echo(f"output: {paths.output}  (full log: {log_file})")
    try:
        summary = run_local(settings, data, output, progress=echo, checked=True)
    except TextOpsError as exc:
        click.echo(f"error: {exc}", err=True)
        return int(exc.exit_code)
    click.echo(render_text(summary))
    click.echo(f"\nsummary: {paths.summary}")
    if summary.status is RunStatus.FAILED:
        click.echo(f"error: {summary.error}\n(traceback in {log_file})", err=True)
    return int(summary.exit_code)


@click.command()
@click.option("--data", required=True, help="CSV/TFRecord file or directory (train.csv + test.csv, or files to split).")
@click.option(
    "--output", required=True, type=click.Path(path_type=Path, file_okay=False), help="Run directory (reused = same history)."
)
@config_option
@set_option
@verbose_option
def run(data: str, output: Path, config: Optional[Path], overrides: tuple[str, ...], verbose: bool) -> None:
    """Run the whole local pipeline: ExampleGen to Pusher.

    Everything the run makes lands under --output: pipeline_root/, metadata.sqlite,
    model_repository/ (unless push.model_repository is set), run_summary.json, runs/ and logs/.
    """
    settings = pipeline_settings(config, overrides)
    sys.exit(_run_pipeline(settings, data, output, verbose))


run.help = (run.help or "") + "\n\n" + exit_codes_help(RUN_EXIT_CODES)


@click.command()
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
@verbose_option
def demo(output: Path, config: Optional[Path], overrides: tuple[str, ...], rows: int, verbose: bool) -> None:
    """Generate the demo dataset and run the whole pipeline on it."""
    from textops.pipelines.demo_data import generate

    settings = pipeline_settings(config, overrides)
    try:
        check_output_directory(output)
    except TextOpsError as exc:
        exit_with(exc)
    data_dir = generate(output / "demo_data", train_rows=rows, test_rows=max(rows // 4, 50))
    echo(f"demo data: {data_dir} (train.csv, test.csv)")
    sys.exit(_run_pipeline(settings, str(data_dir), output, verbose))


@click.command("config")
@config_option
@set_option
def config_cmd(config: Optional[Path], overrides: tuple[str, ...]) -> None:
    """Validate settings and print them in full (defaults filled in) as YAML."""
    click.echo(dump_yaml(pipeline_settings(config, overrides)), nl=False)


@click.command("compile")
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
    settings = pipeline_settings(config, overrides)
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


@click.command()
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

    settings = pipeline_settings(config, overrides)
    if not Path(package).is_file():
        raise click.UsageError(f"package {package} does not exist; run `textops compile --output {package}` first")
    values = {}
    for item in params:
        if "=" not in item:
            raise click.UsageError(f"--param {item!r} is not NAME=VALUE")
        name, raw = item.split("=", 1)
        values[name] = yaml.safepipeline_settings(raw)
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


@click.command()
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

    settings = pipeline_settings(config, overrides)
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


COMMANDS = (run, demo, config_cmd, compile_cmd, submit, tfjob)
