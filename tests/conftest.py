"""Shared fixtures. Importing textops first sets TF_USE_LEGACY_KERAS before TensorFlow loads."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

import textops  # noqa: F401  (must precede any TensorFlow import)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = (REPO / ".." / "shared" / "datasets").resolve()


def shared_dataset(name: str) -> Path:
    """Path of a dataset in ../shared/datasets, or skip the test with the reason."""
    path = SHARED_DATASETS / name
    if not (path / "train.csv").is_file():
        pytest.skip(f"needs ../shared/datasets/{name} (the public datasets are not part of the repo)")
    return path


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A small demo dataset (train.csv/test.csv), generated once per session."""
    from textops.pipelines.demo_data import generate

    return generate(tmp_path_factory.mktemp("demo_data"), train_rows=600, test_rows=200, seed=3)


@pytest.fixture(autouse=True)
def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    yield
