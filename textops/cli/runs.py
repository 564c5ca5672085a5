"""``textops runs list`` and ``textops runs compare``: the run history of an output directory."""

from __future__ import annotations

from pathlib import Path

import click

from textops.cli.options import quiet_third_party
from textops.errors import TextOpsError


@click.group()
def runs() -> None:
    """Run history of an output directory: spans, metrics, gate, push, durations, version served."""


@runs.command("list")
@click.option("--output", required=True, type=click.Path(path_type=Path, file_okay=False), help="Run directory (--output of run/schedule).")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def runs_list(output: Path, as_json: bool) -> None:
    """List every pipeline run of --output, oldest first."""
    import json

    quiet_third_party(None, verbose=False)
    from textops.pipelines import runs as runs_lib

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
    from textops.pipelines import runs as runs_lib

    try:
        history = runs_lib.load_runs(output)
        a, b = runs_lib.find_run(history, run_a), runs_lib.find_run(history, run_b)
    except TextOpsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(runs_lib.render_compare(a, b))
