"""What every command group shares: the settings options, console logging, output lines, errors.

Imports stay light (click and the settings model) so ``textops --help`` stays fast; TensorFlow,
TFX, Beam and Evidently are imported inside the commands that need them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NoReturn, Optional

import click

from textops.errors import ExitCode, TextOpsError
from textops.settings import Settings, SettingsError, load_settings


def exit_codes_help(meanings: dict[ExitCode, str]) -> str:
    """The ``Exit codes: ...`` paragraph of a command's help (the codes are :class:`ExitCode`'s)."""
    return "Exit codes: " + "; ".join(f"{int(code)} {text}" for code, text in meanings.items()) + "."


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


def pipeline_settings(config: Optional[Path], overrides: tuple[str, ...]) -> Settings:
    """The pipeline settings of ``--config`` + ``--set``; invalid ones are a usage error (exit 2)."""
    try:
        return load_settings(config, list(overrides))
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def echo(line: str) -> None:
    """A progress line on stdout, time-stamped."""
    click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=False)


def echo_err(line: str) -> None:
    """A progress line on stderr (commands whose stdout is their result), time-stamped."""
    click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)


def exit_with(exc: TextOpsError, prefix: str = "error") -> NoReturn:
    """Prints ``exc`` for the person running the command and exits with its code."""
    click.echo(f"{prefix}: {exc}", err=True)
    sys.exit(int(exc.exit_code))


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
verbose_option = click.option("--verbose", is_flag=True, help="Show TFX/Beam/TensorFlow logs on the console.")
