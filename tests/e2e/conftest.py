from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def textops_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Runs the installed CLI in a subprocess, as a user would."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "textops.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def summary(output: Path) -> dict:
    return json.loads((output / "run_summary.json").read_text())


@pytest.fixture
def cli():
    return textops_cli
