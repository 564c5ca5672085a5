"""Real models for tests and benchmarks: the pipeline's bag-of-n-grams model trained without
TFX (``components/bare.py``: the same preprocessing, model and serving signatures), in seconds."""

from __future__ import annotations

from pathlib import Path

from tests.support.data import texts_and_labels


def train_and_export(data_dir: Path, out: Path, epochs: int, seed: int = 42) -> Path:
    """Trains on ``data_dir/train.csv`` and exports a SavedModel to ``out``; returns its path."""
    from textops.components import bare, training

    texts, labels = texts_and_labels(Path(data_dir) / "train.csv")
    model = bare.train_bare(texts, labels, train_config=training.TrainConfig(epochs=epochs, seed=seed))
    return Path(model.export(str(out)))
