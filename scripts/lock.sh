#!/usr/bin/env bash
# Regenerates constraints.txt from the current .venv (after changing dependencies in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Pinned versions of every dependency (pip freeze of a working environment on Python 3.10)."
  echo "# Used as: pip install -c constraints.txt -e '.[dev]'. Regenerate with scripts/lock.sh."
  .venv/bin/python -m pip freeze --exclude-editable | grep -v '^textops'
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pins"
