"""The layering of docs/architecture.md holds: import-linter's contracts in pyproject.toml pass,
and they fail when a module imports upward, or when two packages import each other.

import-linter (grimp) finds a package's modules on disk under the package's directory, but the
repository keeps ``pipelines/``, ``components/``, ``serving/`` and ``monitoring/`` at the top and
installs them as ``textops.pipelines`` and so on (``[tool.setuptools.package-dir]``). So each
test lays the sources out as installed, in a temporary directory, following that mapping, and
runs ``lint-imports`` on that copy with the repository's own contracts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _installed_layout(target: Path) -> Path:
    """Copies the package sources to ``target`` as they are installed; returns the import root."""
    config = tomli.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapping = config["package-dir"]
    src = target / "src"
    for package, directory in mapping.items():
        dest = src.joinpath(*package.split("."))
        for path in (ROOT / directory).rglob("*.py"):
            out = dest / path.relative_to(ROOT / directory)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
    missing = [p for p in config["packages"] if not (src.joinpath(*p.split(".")) / "__init__.py").is_file()]
    assert not missing, f"packages listed in pyproject.toml without an __init__.py: {missing}"
    return src


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
         "--config", str(PYPROJECT), "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    return _installed_layout(tmp_path)


def test_the_import_contracts_hold(layout, tmp_path):
    proc = _lint(layout, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 kept, 0 broken" in proc.stdout, proc.stdout


def _add_import(path: Path, line: str) -> None:
    text = path.read_text(encoding="utf-8")
    anchor = "from __future__ import annotations\n"
    assert anchor in text, path
    path.write_text(text.replace(anchor, anchor + "\n" + line + "\n", 1), encoding="utf-8")


@pytest.mark.parametrize(
    "module,line,broken",
    [
        # a component reaching up into serving (the layer above it)
        ("textops/components/text.py", "import textops.serving.batching", "Layers"),
        # the contracts floor reaching into a layer
        ("textops/summary.py", "import textops.pipelines.runs", "The contracts floor"),
        # the monitor reaching up into continuous training (the cycle this layering removed)
        ("textops/monitoring/drift.py", "import textops.ct.retrain", "Layers"),
        # a light module importing TensorFlow lazily
        ("textops/settings.py", "def _f():\n    import tensorflow", "Light modules"),
    ],
)
def test_an_upward_import_breaks_a_contract(layout, tmp_path, module, line, broken):
    _add_import(layout / module, line)
    proc = _lint(layout, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = proc.stdout[proc.stdout.index("Broken contracts"):]
    assert broken in report, proc.stdout


def test_two_floor_modules_importing_each_other_are_a_cycle(layout, tmp_path):
    """The floor's modules are not layered among themselves, so the acyclic contract guards them."""
    _add_import(layout / "textops/errors.py", "import textops.summary")
    proc = _lint(layout, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "No import cycle" in proc.stdout[proc.stdout.index("Broken contracts"):], proc.stdout
