"""Serving benchmark: in-process SavedModel vs our server (batching on/off) vs a plain FastAPI server.

One run, one model, the same texts (single-text requests in TF Serving's REST body):

- in-process ``tf.saved_model.load`` latency for 1 text and throughput at batch 32;
- ``textops serve`` with batching on and off, and a plain FastAPI server (one request, one model
  call, uvicorn, sync endpoint on its thread pool): p50/p99 latency and throughput at
  concurrency 1, 8, 32, 64 (closed loop, aiohttp client in this process, servers in their own);
- overload: a server with a small queue under concurrency 64, the latency of its 429 answers;
- the issue's target ratios.

    .venv/bin/python bench/serving_bench.py                 # trains a demo model (~10 s)
    .venv/bin/python bench/serving_bench.py --requests 3000 --model-dir EXPORTED_SAVEDMODEL

Only 127.0.0.1 is used. Needs the ``bench`` extra (fastapi, uvicorn).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import textops  # noqa: F401  (before TensorFlow: TF_USE_LEGACY_KERAS)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/support
from tests.support.data import demo_dataset  # noqa: E402
from tests.support.models import train_and_export  # noqa: E402
from tests.support.server import MODEL, free_port, terminate, wait_ready  # noqa: E402
LEVELS = (1, 8, 32, 64)


# -- the baseline server (run as a subprocess of this script) ----------------------------------
def run_baseline_server(port: int, model_dir: str) -> None:
    import tensorflow as tf
    import uvicorn
    from fastapi import FastAPI

    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    app = FastAPI()

    @app.post("/v1/models/{name}:predict")
    def predict(name: str, body: dict) -> dict:  # sync: FastAPI runs it on its thread pool
        out = signature(text=tf.constant(body["instances"]))
        probabilities = out["probabilities"].numpy().tolist()
        labels = [b.decode() for b in out["label"].numpy()]
        classes = [b.decode() for b in out["classes"].numpy()[0]]
        return {"predictions": [{"probabilities": p, "label": lab, "classes": classes} for p, lab in zip(probabilities, labels)]}

    @app.get("/v2/health/ready")
    def ready() -> dict:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- helpers -----------------------------------------------------------------------------------
class Server:
    def __init__(self, args: list[str], workdir: Path, name: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / f"{name}.log", "wb")
        self.proc = subprocess.Popen([a.replace("{port}", str(self.port)) for a in args], stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(self.url, self.proc, 120.0)

    def stop(self) -> None:
        terminate(self.proc, 30.0)
        self.log.close()


def ours(repo: Path, workdir: Path, name: str, config: dict) -> Server:
    cfg = workdir / f"{name}.yaml"
    cfg.write_text(json.dumps({"log_level": "WARNING", **config}))  # JSON is YAML
    args = [sys.executable, "-m", "textops.cli", "serve", "--model-repository", str(repo), "--port", "{port}", "--grpc-port", "0", "--config", str(cfg)]
    return Server(args, workdir, name)


_WRK_LUA = """
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[(i %% #bodies) + 1])
end
"""


def _wrk_ms(value: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    return float(value)


def wrk_command(url: str, bodies: list[bytes], concurrency: int, seconds: float, workdir: Path, model: str = MODEL) -> list[str]:
    """wrk (C, one thread) posting ``bodies`` in turn to the model's TF Serving predict URL."""
    script = workdir / f"bodies-{model}-{concurrency}.lua"
    script.write_text(_WRK_LUA % ", ".join(f"[==[{b.decode()}]==]" for b in bodies[:200]))
    target = url + f"/v1/models/{model}:predict"
    return ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), target]


def measure_wrk(url: str, bodies: list[bytes], concurrency: int, seconds: float, workdir: Path) -> dict:
    """wrk (C, one thread) as the load generator: it leaves the CPU to the server being measured."""
    cmd = wrk_command(url, bodies, concurrency, seconds, workdir)
    subprocess.run(cmd[:3] + ["-d1s"] + cmd[4:], capture_output=True, check=True)  # warm connections
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def parse_wrk(out: str) -> dict:
    """ok/failed counts, p50/p99 (ms) and req/s of all answers from wrk's --latency output."""
    import re

    pct = dict(re.findall(r"^\s+(\d+(?:\.\d+)?)%\s+(\S+)\s*$", out, re.M))
    if "50" not in pct or "99" not in pct:
        raise RuntimeError(f"wrk printed no latency distribution:\n{out}")
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad += sum(int(x) for x in errors.groups()) if errors else 0
    return {"ok": total - bad, "failed": bad, "p50": _wrk_ms(pct["50"]), "p99": _wrk_ms(pct["99"]), "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "rejected": []}


def measure(url: str, bodies: list[bytes], concurrency: int, requests: int) -> dict:
    """The Python closed-loop client (used when wrk is not installed; it costs the server CPU)."""
    from textops.serving.loadgen import run_load

    target = url + f"/v1/models/{MODEL}:predict"
    asyncio.run(run_load(target, bodies, concurrency=concurrency, requests=min(200, requests)))  # warm connections
    r = asyncio.run(run_load(target, bodies, concurrency=concurrency, requests=requests))
    return {
        "ok": r.ok,
        "failed": r.failed,
        "p50": r.percentile_ms(50),
        "p99": r.percentile_ms(99),
        "rps": r.throughput,
        "rejected": r.rejected_latencies_s,
    }


def in_process(model_dir: str, texts: list[str], n: int) -> dict:
    import numpy as np
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    for t in texts[:50]:
        signature(text=tf.constant([t]))
    lat = []
    for i in range(n):  # what a caller does: Python string in, numpy probabilities out
        t0 = time.perf_counter()
        signature(text=tf.constant([texts[i % len(texts)]]))["probabilities"].numpy()
        lat.append(time.perf_counter() - t0)
    batch = tf.constant((texts * 32)[:32])
    for _ in range(20):
        signature(text=batch)
    rounds = max(50, n // 4)
    t0 = time.perf_counter()
    for _ in range(rounds):
        signature(text=batch)["probabilities"].numpy()
    elapsed = time.perf_counter() - t0
    return {"p50": float(np.percentile(lat, 50) * 1000), "p99": float(np.percentile(lat, 99) * 1000), "batch32_tps": rounds * 32 / elapsed}


def train_demo_model(workdir: Path) -> str:
    """The serving tests' model: the demo data (600 rows), two epochs."""
    data = demo_dataset(workdir / "data", train_rows=600, test_rows=150, seed=7)
    return str(train_and_export(data, workdir / "export", epochs=2))


def demo_texts(workdir: Path) -> list[str]:
    data = demo_dataset(workdir / "texts", train_rows=50, test_rows=300, seed=7)
    with open(data / "test.csv", encoding="utf-8") as f:
        return [r["text"] for r in csv.DictReader(f)]


# -- main --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="an exported SavedModel (default: train a demo model)")
    parser.add_argument("--requests", type=int, default=3000, help="Python client: requests per concurrency level (concurrency 1: a third)")
    parser.add_argument("--seconds", type=int, default=5, help="wrk: seconds per concurrency level")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="load generator (auto: wrk if installed)")
    parser.add_argument("--baseline-server", nargs=2, metavar=("PORT", "MODEL_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        run_baseline_server(int(args.baseline_server[0]), args.baseline_server[1])
        return 0

    import numpy as np

    from textops import model_repository
    from textops.serving.loadgen import run_load, tfs_body

    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    print(f"# workdir {workdir}  cpus {os.cpu_count()}", flush=True)
    model_dir = args.model_dir or train_demo_model(workdir)
    repo = workdir / "repo"
    model_repository.publish_version(model_dir, str(repo), MODEL, version=1)
    texts = demo_texts(workdir)
    bodies = [tfs_body([t]) for t in texts]
    n = args.requests

    import shutil

    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    print(f"# load generator: {'wrk (1 thread)' if use_wrk else 'python aiohttp client'}", flush=True)
    results: dict[str, dict] = {}
    ip = in_process(model_dir, texts, n // 3)
    print(f"# in-process: 1 text p50 {ip['p50']:.2f} ms, p99 {ip['p99']:.2f} ms; batch 32: {ip['batch32_tps']:.0f} texts/s", flush=True)

    servers = {
        "ours, batching on": lambda: ours(repo, workdir, "batched", {}),
        "ours, batching off": lambda: ours(repo, workdir, "unbatched", {"batching": {"enabled": False}}),
        "plain FastAPI": lambda: Server([sys.executable, __file__, "--baseline-server", "{port}", model_dir], workdir, "fastapi"),
    }
    for name, start in servers.items():
        server = start()
        try:
            for c in LEVELS:
                if use_wrk:
                    r = measure_wrk(server.url, bodies, c, args.seconds, workdir)
                else:
                    r = measure(server.url, bodies, c, n // 3 if c == 1 else n)
                results[(name, c)] = r
                print(f"# {name:20s} c={c:<3d} p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  {r['rps']:7.0f} req/s  failed {r['failed']}", flush=True)
        finally:
            server.stop()

    # overload: a small queue under concurrency 64; how fast do the 429s come back?
    server = ours(repo, workdir, "overload", {"batching": {"max_queue": 8, "max_batch_size": 8}, "limits": {"max_instances": 8}})
    big = [tfs_body((texts * 8)[i : i + 8]) for i in range(0, 64, 8)]
    try:
        if use_wrk:  # all answers (almost all of them 429s): wrk cannot split latency by status
            r = measure_wrk(server.url, big, 64, args.seconds, workdir)
            overload = {"rejected": r["failed"], "ok": r["ok"], "p50": r["p50"], "p99": r["p99"], "what": "all answers"}
        else:  # the Python client's own per-request cost at concurrency 64 inflates these
            r = asyncio.run(run_load(server.url + f"/v1/models/{MODEL}:predict", big, concurrency=64, requests=n))
            rej = np.array(r.rejected_latencies_s) * 1000 if r.rejected_latencies_s else np.array([np.nan])
            overload = {"rejected": len(r.rejected_latencies_s), "ok": r.ok, "p50": float(np.percentile(rej, 50)), "p99": float(np.percentile(rej, 99)), "what": "429 answers"}
    finally:
        server.stop()

    # -- the table -----------------------------------------------------------------------------
    print()
    print(f"In-process SavedModel: 1 text p50 {ip['p50']:.2f} ms (p99 {ip['p99']:.2f} ms); batch 32: {ip['batch32_tps']:,.0f} texts/s")
    print()
    print(f"Load generator: {'wrk -t1, ' + str(args.seconds) + ' s per row' if use_wrk else 'Python aiohttp client, ' + str(n) + ' requests per row'}; one text per request.")
    print()
    print("| server | concurrency | p50 ms | p99 ms | req/s | failed |")
    print("|---|---:|---:|---:|---:|---:|")
    for (name, c), r in results.items():
        print(f"| {name} | {c} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps']:,.0f} | {r['failed']} |")
    print()
    print(
        f"Overload (queue of 8 texts, requests of 8 texts, concurrency 64): {overload['ok']:,} served, "
        f"{overload['rejected']:,} answered 429; latency of {overload['what']}: p50 {overload['p50']:.1f} ms, p99 {overload['p99']:.1f} ms"
    )
    b = lambda c: results[("ours, batching on", c)]  # noqa: E731
    u = lambda c: results[("ours, batching off", c)]  # noqa: E731
    f = lambda c: results[("plain FastAPI", c)]  # noqa: E731
    checks = [
        ("server round trip / in-process, concurrency 1 (p50)", b(1)["p50"] / ip["p50"], "<= 1.3", b(1)["p50"] / ip["p50"] <= 1.3),
        ("batched / unbatched throughput, concurrency 32", b(32)["rps"] / u(32)["rps"], ">= 2", b(32)["rps"] / u(32)["rps"] >= 2),
        ("ours / plain FastAPI throughput, concurrency 32", b(32)["rps"] / f(32)["rps"], ">= 3", b(32)["rps"] / f(32)["rps"] >= 3),
        ("p99 / p50, concurrency 32 (ours, batched)", b(32)["p99"] / b(32)["p50"], "<= 2", b(32)["p99"] / b(32)["p50"] <= 2),
        ("overload answer p99 (ms)", overload["p99"], "< 50", overload["p99"] < 50),
    ]
    print_targets([(label, f"{value:.2f}", goal, "yes" if met else "NO") for label, value, goal, met in checks])
    return 0


def print_targets(rows: list[tuple[str, str, str, str]]) -> None:
    """The benchmark's targets as a Markdown table: (what, measured, goal, met)."""
    print()
    print("| target | measured | goal | met |")
    print("|---|---:|---:|---|")
    for label, value, goal, met in rows:
        print(f"| {label} | {value} | {goal} | {met} |")


if __name__ == "__main__":
    sys.exit(main())
