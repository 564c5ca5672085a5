"""The ``textops`` command line, one module per command group.

- :mod:`.pipeline`: ``run``, ``demo``, ``config``, ``compile``, ``submit``, ``tfjob``
- :mod:`.continuous`: ``schedule``, ``rollback`` (continuous training, ``textops.ct``)
- :mod:`.runs`: ``runs list``, ``runs compare``
- :mod:`.serving`: ``serve``, ``predict``
- :mod:`.monitoring`: ``monitor`` (with ``--retrain-on-drift``), ``report``
- :mod:`.options`: what they share (``--config``/``--set``, console logging, errors)

Settings are loaded once in a command (``--config`` YAML + ``--set key=value`` overrides) and
passed down; every command exits with a code of ``textops.errors.ExitCode``. Heavy libraries
(TensorFlow, TFX, Beam, Evidently) are imported inside commands, so ``textops --help`` is fast.
"""

from __future__ import annotations

import click

from textops.cli import continuous, monitoring, pipeline, runs, serving


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textops")
def main() -> None:
    """TextOps: train, gate, push, serve and monitor a text classifier with TFX."""


for _command in (*pipeline.COMMANDS, *continuous.COMMANDS, runs.runs, *serving.COMMANDS, *monitoring.COMMANDS):
    main.add_command(_command)
