"""``textops schedule`` and ``textops rollback``: continuous training (docs/continuous.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from textops.cli.options import config_option, echo, pipeline_settings, quiet_third_party, set_option
from textops.errors import ExitCode, TextOpsError


@click.command()
@click.option(
    "--data", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Directory of span directories (span-1/, span-2/, ...); it must exist (it may be empty until the first span).",
)
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
    from textops.ct import schedule as ct_schedule
    from textops.ct.cron import Cron
    from textops.ct.runners import subprocess_runner
    from textops.ct.state import LoopError, log_decision

    settings = pipeline_settings(config, overrides)
    if not once and cron is None:
        raise click.UsageError("give --cron EXPR (e.g. --cron '*/15 * * * *'), or --once for a single tick")
    try:
        parsed = Cron.parse(cron) if cron is not None else None
    except LoopError as exc:
        raise click.UsageError(str(exc)) from None
    runner = subprocess_runner(data.absolute(), output.absolute(), config, overrides, echo)

    def one_tick() -> dict:
        try:
            return ct_schedule.tick(data, output, settings.data.spans, runner, echo)
        except TextOpsError as exc:  # e.g. a malformed span: logged; the next tick tries again
            return log_decision(output, {"decision": "error", "exit_code": int(exc.exit_code), "message": str(exc)}, echo)

    if once:
        decision = one_tick()
        if decision["decision"] == "busy":
            sys.exit(int(ExitCode.BUSY))
        sys.exit(int(decision.get("exit_code", 0)) if decision["decision"] in ("ran", "error") else 0)
    assert parsed is not None
    echo(f"scheduling {data} -> {output} on '{parsed.expression}' (local time); Ctrl-C stops")
    try:
        ct_schedule.serve_schedule(parsed, one_tick, echo, max_ticks=max_ticks)
    except KeyboardInterrupt:
        echo("stopped")


@click.command("rollback")
@click.option("--model", "model_name", default=None, help="Model name (default: push.model_name).")
@click.option("--to", "to_version", required=True, type=int, help="The version to serve again.")
@click.option("--model-repository", "repository", default=None, help="Model repository (default: push.model_repository, else <output>/model_repository).")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), default=None, help="Run directory whose model repository to use.")
@config_option
@set_option
def rollback_cmd(model_name: Optional[str], to_version: int, repository: Optional[str], output: Optional[Path], config: Optional[Path], overrides: tuple[str, ...]) -> None:
    """Serve an earlier model version again, without dropping requests.

    Re-publishes version --to, atomically, as a new newest version (its push record says
    rollback_of); servers following the newest version (textops serve, TF Serving, KServe)
    hot-swap to it as for any push. The next pipeline run is gated against it.
    """
    from textops.ct.rollback import rollback as republish

    settings = pipeline_settings(config, overrides)
    quiet_third_party(None, verbose=False)
    repo = repository or settings.push.model_repository or (str(output / "model_repository") if output else None)
    if repo is None:
        raise click.UsageError("give --model-repository R (or --output of the pipeline run, or push.model_repository)")
    try:
        republish(repo, model_name or settings.push.model_name, to_version, echo)
    except TextOpsError as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS = (schedule, rollback_cmd)
