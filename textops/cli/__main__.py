"""``python -m textops.cli``: the same as the ``textops`` command."""

from textops.cli import main

main()
