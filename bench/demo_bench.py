"""`textops demo` wall time and seconds per component, before and after, in one run.

Runs `textops demo` (generated 2,400/600-text data, fresh output directory: no cache) with this
checkout's Python and, as the baseline, with another checkout's (``--before-python``, e.g. the
``.venv/bin/python`` of a checkout of main), alternating ``--repeat`` times so both see the
same machine load; or, with ``--before-commit REV``, with this checkout's Python running the code of
commit REV (extracted to a temporary directory and put first on PYTHONPATH). Per run: wall time of the whole command, the pipeline components' seconds
(run_summary.json), and the rest ("start + end": process start and imports, demo data, input
check, the model-analysis page).

    .venv/bin/python bench/demo_bench.py
    .venv/bin/python bench/demo_bench.py --repeat 3 --before-python /path/to/other/.venv/bin/python
    .venv/bin/python bench/demo_bench.py --before-commit main   # same interpreter and packages, main's code
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = (
    "CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Evaluator",
    "InfraValidator", "Pusher",
)
TARGET_WALL_S = 45.0


# The installed layout (pyproject's package-dir): these directories are textops' sub-packages.
SUBPACKAGES = ("pipelines", "components", "serving", "monitoring")


def extract_commit(rev: str, workdir: Path) -> Path:
    """``rev``'s files under ``workdir/src``, importable as ``textops`` from there (PYTHONPATH)."""
    src = workdir / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    for name in SUBPACKAGES:
        if (src / name).is_dir() and not (src / "textops" / name).exists():
            (src / "textops" / name).symlink_to(Path("..") / name)
    return src


def run_demo(python: str, workdir: Path, tag: str, pythonpath: Optional[Path] = None) -> dict:
    out = workdir / f"demo_{tag}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    started = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "textops.cli", "demo", "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=900,
        cwd=workdir,  # not this checkout: `python -m` would import its textops/ for the baseline too
    )
    wall = time.perf_counter() - started
    summary_path = out / "run_summary.json"
    if proc.returncode != 0 or not summary_path.exists():
        raise RuntimeError(f"demo with {python} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    s = json.loads(summary_path.read_text())
    components = {c["name"]: c["seconds"] for c in s["components"]}
    return {
        "wall_s": wall,
        "components": components,
        "start_end_s": wall - sum(components.values()),
        "accuracy": s["metrics"].get("accuracy", {}).get("value"),
        "status": s["status"],
    }


def median_of(runs: list[dict], key: str, component: bool = False):
    values = [r["components"].get(key) if component else r.get(key) for r in runs]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def print_table(results: dict) -> None:
    before, after = results["before"], results["after"]
    print("\n`textops demo` (2,400 train / 600 test texts, no cache), seconds, medians over "
          f"{len(after)} run(s) each, alternating\n")
    print("| part | before | after | after ÷ before |")
    print("|---|---:|---:|---:|")
    rows = [(c, True) for c in COMPONENTS] + [("start + end", False), ("wall", False)]
    for name, component in rows:
        key = {"start + end": "start_end_s", "wall": "wall_s"}.get(name, name)
        b, a = median_of(before, key, component), median_of(after, key, component)
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        label = f"**{name}**" if name == "wall" else name
        print(f"| {label} | {b if b is None else f'{b:.1f}'} | {a if a is None else f'{a:.1f}'} | {ratio} |")
    acc_b, acc_a = median_of(before, "accuracy"), median_of(after, "accuracy")
    print(f"| accuracy (Evaluator) | {acc_b:.4f} | {acc_a:.4f} | |")
    wall = median_of(after, "wall_s")
    print(f"\ntarget: wall ≤ {TARGET_WALL_S:.0f} s on 2 cores: {'met' if wall <= TARGET_WALL_S else 'not met'} ({wall:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-python", help="baseline: the Python of another checkout (e.g. main's .venv/bin/python)")
    parser.add_argument("--before-commit", help="baseline: this commit's code run by --after-python (overrides --before-python)")
    parser.add_argument("--after-python", default=sys.executable)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "demo_bench.json")
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args()
    if args.tables_only:
        print_table(json.loads(args.json.read_text()))
        return
    if not (args.before_python or args.before_commit):
        parser.error("give the baseline: --before-commit REV (e.g. main) or --before-python PATH")
    results: dict = {"before": [], "after": [], "before_python": args.before_python, "after_python": args.after_python}
    with tempfile.TemporaryDirectory(prefix="textops-demo-bench-") as tmp:
        before_path = None
        if args.before_commit:
            before_path = extract_commit(args.before_commit, Path(tmp))
            args.before_python = args.after_python
            results.update(before_python=args.after_python, before_commit=args.before_commit)
        for i in range(args.repeat):
            for tag, python in (("before", args.before_python), ("after", args.after_python)):
                print(f"== {tag} {i + 1}/{args.repeat} ({python})", file=sys.stderr, flush=True)
                results[tag].append(run_demo(python, Path(tmp), f"{tag}{i}", before_path if tag == "before" else None))
                print(json.dumps(results[tag][-1]), file=sys.stderr, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print_table(results)


if __name__ == "__main__":
    main()
