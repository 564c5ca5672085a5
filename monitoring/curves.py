"""Training curves as images: one panel per metric, train and the Trainer's evaluation split per epoch.

Reads the Keras history the Trainer writes into the model run (``history.json``), so nobody
needs TensorBoard running to see them; whatever series are present are drawn (loss, accuracy,
and precision/recall/F1/AUC when the Trainer records them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

HISTORY_FILE = "history.json"


def read_history(model_run_dir: os.PathLike) -> Optional[dict[str, list[float]]]:
    """The per-epoch series of ``<model_run>/history.json`` (None when the file is absent)."""
    path = Path(model_run_dir) / HISTORY_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    history = data.get("history", data) if isinstance(data, dict) else None
    if not isinstance(history, dict):
        raise ValueError(f"{path} does not hold a Keras history (a mapping of metric -> per-epoch values)")
    return {k: [float(x) for x in v] for k, v in history.items() if isinstance(v, list) and v}


# What history.json's eval_splits name, as the legend says it (components/trainer.py writes them).
_EVAL_LABELS = {
    "validation": "validation",
    "train-holdout": "validation (held out of train)",
    "eval": "eval (the gate's split)",
}


def eval_label(model_run_dir: os.PathLike) -> str:
    """The legend of the per-epoch evaluation series: the split the Trainer evaluated on, from
    ``history.json``'s ``eval_splits`` (a run without the record evaluated on eval)."""
    path = Path(model_run_dir) / HISTORY_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    splits = (data.get("eval_splits") if isinstance(data, dict) else None) or ["eval"]
    return " + ".join(_EVAL_LABELS.get(s, s) for s in splits)


def metric_pairs(history: Mapping[str, Sequence[float]]) -> list[tuple[str, Optional[str], Optional[str]]]:
    """(metric, train key, validation key) for each metric, loss first, then in history order."""
    names: list[str] = []
    for key in history:
        base = key[4:] if key.startswith("val_") else key
        if base not in names:
            names.append(base)
    order = {n: i for i, n in enumerate(names)}
    names = sorted(names, key=lambda n: (n != "loss", order[n]))
    return [(n, n if n in history else None, f"val_{n}" if f"val_{n}" in history else None) for n in names]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves_figure(history: Mapping[str, Sequence[float]], columns: int = 3, evaluated_on: str = "eval") -> Any:
    """A matplotlib figure with one panel per metric (train solid, ``evaluated_on`` dashed)."""
    plt = _pyplot()
    pairs = metric_pairs(history)
    if not pairs:
        raise ValueError("the training history has no series to draw")
    rows = (len(pairs) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for ax, (name, train_key, val_key) in zip(axes.flat, pairs):
        for key, style, label in ((train_key, "-o", "train"), (val_key, "--s", evaluated_on)):
            if key is not None:
                values = history[key]
                ax.plot(range(1, len(values) + 1), values, style, label=label, markersize=4)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def write_curve_images(history: Mapping[str, Sequence[float]], out_dir: os.PathLike, evaluated_on: str = "eval") -> list[Path]:
    """One PNG per metric (``<metric>.png``) plus ``all.png``; returns the paths written."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, train_key, val_key in metric_pairs(history):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for key, style, label in ((train_key, "-o", "train"), (val_key, "--s", evaluated_on)):
            if key is not None:
                ax.plot(range(1, len(history[key]) + 1), history[key], style, label=label, markersize=4)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        path = out / f"{name.replace('/', '_')}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    fig = curves_figure(history, evaluated_on=evaluated_on)
    fig.savefig(out / "all.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    written.append(out / "all.png")
    return written
