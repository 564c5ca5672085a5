"""Datasets for tests: the generated demo data, the public ones in ``../shared``, CSV helpers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATASETS = (REPO / ".." / "shared" / "datasets").resolve()


def shared_dataset(name: str) -> Path:
    """Path of a dataset in ../shared/datasets, or skip the test with the reason."""
    path = SHARED_DATASETS / name
    if not ((path / "train.csv").is_file() and (path / "test.csv").is_file()):
        pytest.skip(f"needs ../shared/datasets/{name} (the public datasets are not part of the repo)")
    return path


def demo_dataset(directory: Path, train_rows: int, test_rows: int, seed: int) -> Path:
    """The project's demo data (``train.csv``, ``test.csv``) written to ``directory``."""
    from textops.pipelines.demo_data import generate

    return Path(generate(directory, train_rows=train_rows, test_rows=test_rows, seed=seed))


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


def texts_and_labels(path: Path) -> tuple[list[str], list[str]]:
    rows = read_csv(path)
    return [r["text"] for r in rows], [r["label"] for r in rows]
