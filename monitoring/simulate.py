"""Writes a prediction log by scoring texts with a real SavedModel, in the serving log format.

For trying the monitor without a running server, for the tests and for the benchmark: the
records are exactly what ``textops.prediction_log.PredictionRecord`` describes, predicted by the
model's serving signature.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from textops.prediction_log import FILE_PREFIX, PredictionRecord


def write_prediction_log(
    model_dir: os.PathLike,
    texts: Sequence[str],
    out_dir: os.PathLike,
    *,
    model_name: str = "text_classifier",
    version: int = 1,
    start_ts: Optional[float] = None,
    spacing_s: float = 0.01,
    latency_ms: float = 8.0,
    seed: int = 0,
    id_prefix: str = "req",
    records_per_file: int = 50_000,
    compress: bool = False,
    probabilities: Optional[np.ndarray] = None,
    classes: Optional[list[str]] = None,
) -> list[Path]:
    """One record per text, request ids ``<id_prefix>-<i>``, timestamps ``start_ts + i*spacing_s``.

    Latencies are drawn around ``latency_ms`` (log-normal). Pass ``probabilities``/``classes``
    to reuse scores already computed for these texts. Returns the files written.
    """
    if probabilities is None or classes is None:
        from textops.monitoring.reference import score

        probabilities, classes = score(model_dir, texts)
    rng = np.random.default_rng(seed)
    latencies = latency_ms * rng.lognormal(0.0, 0.35, size=len(texts))
    start = time.time() - len(texts) * spacing_s if start_ts is None else start_ts
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start))
    for part, begin in enumerate(range(0, len(texts), records_per_file)):
        name = f"{FILE_PREFIX}{stamp}-{part:04d}.jsonl" + (".gz" if compress else "")
        path = out / name
        opener = gzip.open if compress else open
        with opener(path, "wt", encoding="utf-8") as f:
            for i in range(begin, min(begin + records_per_file, len(texts))):
                p = probabilities[i]
                record = PredictionRecord(
                    request_id=f"{id_prefix}-{i}",
                    ts=start + i * spacing_s,
                    model=model_name,
                    version=version,
                    text=texts[i],
                    label=classes[int(np.argmax(p))],
                    probabilities=[round(float(x), 6) for x in p],
                    classes=list(classes),
                    latency_ms=round(float(latencies[i]), 3),
                )
                f.write(record.to_json() + "\n")
        written.append(path)
    return written
