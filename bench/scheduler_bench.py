"""Scheduler benchmark (issue 14, and issue 13's goodput): priorities, isolation, per-request cost.

One run, one demo model published under two names (``high`` at priority 1, ``low`` at priority
2) on one server whose pool has ``--pool-cpu`` execution slots (default 1: the two models contend
for the model, which is when priorities matter). wrk (C, one thread per model) is the client.

1. Both models saturated (wrk -c32 each): the share of executions each gets, from the server's
   ``textops_serving_executions_total``; target ratio high/low = 2 within 10%.
2. ``high`` at a moderate load (wrk -c4) alone, then with ``low`` flooded (wrk -c128): p99 of
   ``high``; target: the flood raises it at most 1.5x.
3. A single-model server, one text per request: round trip p50 at concurrency 1 / the in-process
   SavedModel call p50 (target <= 1.5), and p99/p50 at concurrency 32 (target <= 2), each over
   ``--reps`` repetitions, with their spread.
4. Goodput (issue 13): model-bound requests (8 long texts); capacity at concurrency 8, then a
   closed loop at concurrency 256 (far more than twice the capacity offered): served req/s over
   capacity (target >= 0.8) and the 429s.

    .venv/bin/python bench/scheduler_bench.py             # trains a demo model (~10 s); ~3 minutes

Only 127.0.0.1 is used. Needs wrk (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import textops  # noqa: F401  (before TensorFlow: TF_USE_LEGACY_KERAS)

from textops.serving.loadgen import measure_goodput, tfs_body

from serving_bench import demo_texts, in_process, measure_wrk, ours, parse_wrk, print_targets, train_demo_model, wrk_command


def executions(url: str) -> dict[str, float]:
    """textops_serving_executions_total per model, from /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for model, value in re.findall(r'^textops_serving_executions_total\{model="([^"]+)",priority="\d+"\} (\S+)$', text, re.M):
        out[model] = out.get(model, 0.0) + float(value)
    return out


def run_wrk_together(url: str, loads: list[tuple[str, list[bytes], int]], seconds: float, workdir: Path) -> dict[str, dict]:
    """Several wrk processes at once (one per (model, bodies, concurrency)); results per model."""
    procs = {}
    for model, bodies, conc in loads:
        cmd = wrk_command(url, bodies, conc, seconds, workdir, model)
        procs[model] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return {model: parse_wrk(p.communicate(timeout=seconds + 60)[0]) for model, p in procs.items()}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="an exported SavedModel (default: train a demo model)")
    parser.add_argument("--seconds", type=int, default=6, help="wrk seconds per measurement")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the per-request cost rows")
    parser.add_argument("--pool-cpu", type=int, default=1, help="execution slots shared by the two models")
    parser.add_argument("--only", nargs="+", choices=("priorities", "cost", "goodput"), default=("priorities", "cost", "goodput"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    from textops import model_repository
    workdir = Path(tempfile.mkdtemp(prefix="scheduler-bench-"))
    print(f"# workdir {workdir}  cpus {os.cpu_count()}", flush=True)
    model_dir = args.model_dir or train_demo_model(workdir)
    repo = workdir / "repo"
    for name in ("high", "low", "text_classifier"):
        model_repository.publish_version(model_dir, str(repo), name, version=1)
    texts = demo_texts(workdir)
    bodies = [tfs_body([t]) for t in texts]
    # model-bound requests (8 long texts): the model, not HTTP, is what the models contend for
    heavy = [tfs_body([f"request {i} text " * 300] * 8) for i in range(16)]
    rows: list[tuple[str, str, str, str]] = []
    if "priorities" in args.only:
        rows += priorities(args, repo, workdir, heavy)
    if "cost" in args.only:
        rows += per_request_cost(args, repo, workdir, model_dir, texts, bodies)
    if "goodput" in args.only:
        rows += goodput(args, repo, workdir, heavy)

    print()
    print(f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end), wrk -t1 per model, {args.seconds} s per measurement, "
          f"pool cpu {args.pool_cpu} for the two-model rows.")
    print_targets(rows)
    return 0


def priorities(args, repo: Path, workdir: Path, heavy: list[bytes]) -> list[tuple]:
    rows = []

    # 1 + 2: two models, priorities 1 and 2, one pool --------------------------------------------
    two = {
        "pool": {"resources": {"cpu": args.pool_cpu}},
        "batching": {"max_batch_size": 16, "max_queue": 512},
        "models": {"high": {"priority": 1}, "low": {"priority": 2}},
    }
    server = ours(repo, workdir, "two-models", two)
    try:
        run_wrk_together(server.url, [("high", heavy, 8), ("low", heavy, 8)], 1, workdir)  # warm up
        before = executions(server.url)
        both = run_wrk_together(server.url, [("high", heavy, 16), ("low", heavy, 16)], args.seconds, workdir)
        after = executions(server.url)
        hi, lo = after["high"] - before["high"], after["low"] - before["low"]
        ratio = hi / max(lo, 1.0)
        print(f"# saturated: high {hi:.0f} executions ({both['high']['rps']:.0f} req/s), low {lo:.0f} ({both['low']['rps']:.0f} req/s)", flush=True)
        rows.append(("executions high/low, both saturated (priorities 1 and 2)", f"{ratio:.2f} ({hi:.0f} / {lo:.0f})", "2.0 +-10%", "yes" if 1.8 <= ratio <= 2.2 else "NO"))

        rows.append(flood_row(server.url, heavy, args.seconds, workdir, f"shared slot (pool cpu {args.pool_cpu})", args.reps))
    finally:
        server.stop()
    # the same flood when the pool has a slot per model (pool cpu 2, one instance each): the
    # high-priority model never waits for a low-priority model call, only for the cores
    own = {**two, "pool": {"resources": {"cpu": 2}}}
    server = ours(repo, workdir, "two-models-own-slots", own)
    try:
        run_wrk_together(server.url, [("high", heavy, 2), ("low", heavy, 8)], 1, workdir)  # warm up
        rows.append(flood_row(server.url, heavy, args.seconds, workdir, "a slot each (pool cpu 2)", args.reps))
    finally:
        server.stop()
    return rows


def flood_row(url: str, heavy: list[bytes], seconds: float, workdir: Path, what: str, reps: int) -> tuple:
    """p99 of ``high`` with ``low`` flooded over p99 alone, alternated ``reps`` times (median, spread)."""
    ratios, p50s = [], []
    for rep in range(reps):
        alone = run_wrk_together(url, [("high", heavy, 2)], seconds, workdir)["high"]
        flood = run_wrk_together(url, [("high", heavy, 2), ("low", heavy, 64)], seconds, workdir)
        ratios.append(flood["high"]["p99"] / alone["p99"])
        p50s.append(flood["high"]["p50"] / alone["p50"])
        print(f"# {what} rep {rep}: high alone p50 {alone['p50']:.2f} p99 {alone['p99']:.2f} ms; with low flooded p50 {flood['high']['p50']:.2f} "
              f"p99 {flood['high']['p99']:.2f} ms (low: {flood['low']['rps']:.0f} answers/s, {flood['low']['failed']} not 200)", flush=True)
    return (f"p99 of high (c=2) with low flooded (c=64) / alone, {what}, {reps} reps (p50 ratio {statistics.median(p50s):.2f})",
            spread(ratios), "<= 1.5", "yes" if statistics.median(ratios) <= 1.5 else "NO")


def per_request_cost(args, repo: Path, workdir: Path, model_dir: str, texts: list[str], bodies: list[bytes]) -> list[tuple]:
    rows = []
    ip_p50, c1, tail = [], [], []
    server = ours(repo, workdir, "single", {"models": {"text_classifier": {}}})
    try:
        for rep in range(args.reps):
            ip = in_process(model_dir, texts, 1000)
            one = measure_wrk(server.url, bodies, 1, args.seconds, workdir)
            many = measure_wrk(server.url, bodies, 32, args.seconds, workdir)
            ip_p50.append(ip["p50"])
            c1.append(one["p50"] / ip["p50"])
            tail.append(many["p99"] / many["p50"])
            print(f"# rep {rep}: in-process p50 {ip['p50']:.3f} ms; c=1 p50 {one['p50']:.3f} ms; c=32 p50 {many['p50']:.2f} p99 {many['p99']:.2f} ms "
                  f"({many['rps']:.0f} req/s)", flush=True)
    finally:
        server.stop()
    rows.append((f"round trip / in-process p50, concurrency 1 ({args.reps} reps: median (min, max))", spread(c1), "<= 1.5", "yes" if statistics.median(c1) <= 1.5 else "NO"))
    rows.append((f"p99 / p50, concurrency 32 ({args.reps} reps)", spread(tail), "<= 2", "yes" if statistics.median(tail) <= 2 else "NO"))
    return rows


def goodput(args, repo: Path, workdir: Path, heavy: list[bytes]) -> list[tuple]:
    rows = []
    server = ours(repo, workdir, "goodput", {"batching": {"max_queue": 64, "max_batch_size": 16}, "limits": {"max_instances": 8}})
    url = server.url + "/v1/models/text_classifier:predict"
    try:
        measure_wrk(server.url, heavy, 8, 2, workdir)
        capacity = measure_wrk(server.url, heavy, 8, args.seconds, workdir)
        overload = measure_wrk(server.url, heavy, 256, args.seconds, workdir)
        # the measure, as tests/serving/test_load.py takes it: the Python client (in this
        # process, competing for the cores), paced at twice the capacity it measured in the window
        # just before; capacity and overload windows alternate
        paced = asyncio.run(measure_goodput(url, heavy, rounds=max(2, round(2 * args.seconds / 1.5))))
    finally:
        server.stop()
    print(f"# goodput (paced): capacity {paced.capacity:.0f} req/s; offered {paced.offered:.0f}/s -> "
          f"served {paced.served:.0f}/s, {paced.statuses.get(429, 0)} x 429, other {dict(paced.statuses)}; rounds {paced.rounds}", flush=True)
    rows.append(("goodput: served at 2x capacity offered / capacity (Python client, paced, alternating windows; issue 13's measure)",
                 f"{paced.ratio:.2f} ({paced.served:.0f} / {paced.capacity:.0f} req/s)", ">= 0.8", "yes" if paced.ratio >= 0.8 else "NO"))
    served = overload["ok"] / args.seconds
    ratio = served / max(capacity["rps"], 1e-9)
    print(f"# goodput: capacity {capacity['rps']:.0f} req/s; at c=256 {served:.0f} served/s, {overload['failed']} answers not 200", flush=True)
    rows.append(("goodput: served at c=256 closed loop (~10x capacity offered) / capacity at c=8 (wrk)", f"{ratio:.2f} ({served:.0f} / {capacity['rps']:.0f} req/s)", ">= 0.8", "yes" if ratio >= 0.8 else "NO"))
    return rows


if __name__ == "__main__":
    sys.exit(main())
