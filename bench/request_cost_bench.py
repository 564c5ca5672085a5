"""Where a request's Python time goes outside the model, and what the serving path now does instead.

Each row times one per-request step in this process (a single-text TF Serving predict answer)
the way the server did it before (the baseline, measured in the same run) and the way it does
it now, and prints the ratio. The round trip as a whole is measured by bench/scheduler_bench.py.

    .venv/bin/python bench/request_cost_bench.py
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid

import numpy as np

import textops  # noqa: F401  (before TensorFlow: TF_USE_LEGACY_KERAS)
from textops.serving.dataplane import PredictResult
from textops.serving.metrics import ServingMetrics
from textops.serving.rest_common import dumps
from textops.serving.rest_tfs import render_tfs
from textops.serving.runtime import Prediction

MODEL = "text_classifier"


def per_call_us(fn, n: int = 20_000, reps: int = 5) -> float:
    """Median over ``reps`` of the mean time of ``n`` calls, in microseconds."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(times)


def main() -> int:
    prediction = Prediction(np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32), ["shipping"], ["billing", "technical", "shipping", "account"])
    result = PredictResult(MODEL, 1, prediction, "0123456789abcdef", 0.001)
    answer = render_tfs(result, False)
    metrics = ServingMetrics()
    # per request: requests_total, the total-latency histogram; per batch (one per request at
    # concurrency 1): three stage histograms and the batch-size histogram
    def labels_each_time():
        metrics.requests.labels(MODEL, "1", "rest", "200").inc()
        for stage in ("total", "batch", "inference", "queue"):
            metrics.stage_latency.labels(MODEL, "1", stage).observe(0.001)
        metrics.batch_size.labels(MODEL, "1").observe(1)

    def cached_children():
        metrics.child(metrics.requests, MODEL, "1", "rest", "200").inc()
        for stage in ("total", "batch", "inference", "queue"):
            metrics.child(metrics.stage_latency, MODEL, "1", stage).observe(0.001)
        metrics.child(metrics.batch_size, MODEL, "1").observe(1)

    rows = [
        ("answer JSON (predict, 1 text)", lambda: json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), lambda: dumps(answer)),
        ("metrics of one request (6 series)", labels_each_time, cached_children),
        ("request id", lambda: uuid.uuid4().hex, lambda: os.urandom(16).hex()),
    ]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; median of 5 x 20,000 calls")
    print()
    print("| step | before (us) | now (us) | now / before |")
    print("|---|---:|---:|---:|")
    total_before = total_now = 0.0
    for label, before, now in rows:
        b, n = per_call_us(before), per_call_us(now)
        total_before, total_now = total_before + b, total_now + n
        print(f"| {label} | {b:.1f} | {n:.1f} | {n / b:.2f} |")
    print(f"| all of the above | {total_before:.1f} | {total_now:.1f} | {total_now / total_before:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
