"""Time for `textops run` to reject each bad input, before and after, in one run.

Each case is a fresh `textops run` process (wall time from start to exit) with this checkout's
Python and with a baseline checkout's (``--before-python``, e.g. the
``.venv/bin/python`` of a checkout of main), alternating, ``--repeat`` times; the table shows medians, the
exit code, and whether anything was left under --output.

    .venv/bin/python bench/reject_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 2.0
GOOD = b"text,label\ngood movie,pos\nbad movie,neg\n"
CASES = {
    "missing data path": None,
    "empty CSV": b"",
    "header only": b"text,label\n",
    "not UTF-8": "text,label\nok,a\ncaf\xe9,b\n".encode("latin-1"),
    "no label column": b"text,category\nhi,a\nho,b\n",
    "unbalanced quotes mid-file": b'text,label\nfine,a\n"broken,b\nmore,a\n',
    "mixed line endings": b"text,label\r\nfine,a\r\nold\rmac,b\n",
    "one class": b"text,label\na,x\nb,x\n",
    "1,500 classes (max_classes 1,000)": b"text,label\n" + b"".join(b"t%d,c%d\n" % (i, i) for i in range(1500)),
    "--output not writable": GOOD,
}


def _rows(label_of, n: int = 400) -> bytes:
    """``n`` rows that train, each text saying its class; ``label_of(i, cls)``: the label written."""
    return b"text,label\n" + b"".join(
        b"%s film number %d,%s\n" % (b"good great" if i % 2 else b"bad awful", i, label_of(i, b"pos" if i % 2 else b"neg"))
        for i in range(n)
    )


# Found by trying inputs the checks above did not name (stop 27): each passed the old preflight.
CASES.update({
    "an empty label in row 6 of 400": _rows(lambda i, c: b"" if i == 4 else c),
    "a class spelled with and without a space": _rows(lambda i, c: b" pos" if i == 7 else c),
    "labels written as floats (1.0 / 0.0)": _rows(lambda i, c: b"1.0" if c == b"pos" else b"0.0"),
    "a text column of numbers": b"text,label\n" + b"".join(b"%d,%s\n" % (i * 7919, b"ab"[i % 2 : i % 2 + 1]) for i in range(400)),
    "a label column named twice": b"text,label,label\n" + b"".join(
        b"%s film %d,%s,x%d\n" % (b"good" if i % 2 else b"bad", i, b"pos" if i % 2 else b"neg", i % 3) for i in range(400)
    ),
    "test.csv has a class train.csv lacks": {
        "train.csv": _rows(lambda i, c: c),
        "test.csv": _rows(lambda i, c: b"neutral" if i % 5 == 0 else c, 100),
    },
})


def run_case(python: str, name: str, content, workdir: Path) -> dict:
    case_dir = Path(tempfile.mkdtemp(dir=workdir))
    data = case_dir / "data.csv"
    if isinstance(content, dict):  # a directory with these files
        data = case_dir / "data"
        data.mkdir()
        for name, body in content.items():
            (data / name).write_bytes(body)
    elif content is not None:
        data.write_bytes(content)
    out = case_dir / "out"
    if name == "--output not writable":
        out = Path("/proc/textops-bench-output")  # /proc takes no new directories, even for root
    started = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "textops.cli", "run", "--data", str(data), "--output", str(out)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600,
        cwd=workdir,  # not this checkout: `python -m` would import its textops/ for the baseline too
    )
    seconds = time.perf_counter() - started
    left = out.exists() and any(out.iterdir()) if out.is_dir() else out.exists()
    shutil.rmtree(case_dir, ignore_errors=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return {"seconds": seconds, "exit": proc.returncode, "left_output": bool(left),
            "traceback": "Traceback" in proc.stderr, "message": lines[-1][:160] if lines else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-python", required=True, help="baseline: the Python of another checkout (e.g. main's .venv/bin/python)")
    parser.add_argument("--after-python", default=sys.executable)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "reject_bench.json")
    args = parser.parse_args()
    results: dict = {name: {"before": [], "after": []} for name in CASES}
    with tempfile.TemporaryDirectory(prefix="textops-reject-bench-") as tmp:
        for _ in range(args.repeat):
            for name, content in CASES.items():
                for tag, python in (("before", args.before_python), ("after", args.after_python)):
                    results[name][tag].append(run_case(python, name, content, Path(tmp)))
            print(".", end="", file=sys.stderr, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print("\n| bad input | before s | before exit | after s | after exit | after ÷ before | traceback before / after | output left before / after |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    worst = 0.0
    for name, r in results.items():
        b = statistics.median(x["seconds"] for x in r["before"])
        a = statistics.median(x["seconds"] for x in r["after"])
        worst = max(worst, a)
        yn = lambda runs, key: "yes" if any(x[key] for x in runs) else "no"  # noqa: E731
        print(f"| {name} | {b:.2f} | {r['before'][0]['exit']} | {a:.2f} | {r['after'][0]['exit']} | {a / b:.2f} "
              f"| {yn(r['before'], 'traceback')} / {yn(r['after'], 'traceback')} "
              f"| {yn(r['before'], 'left_output')} / {yn(r['after'], 'left_output')} |")
    print(f"\ntarget: every bad input rejected in ≤ {TARGET_S:.0f} s: {'met' if worst <= TARGET_S else 'not met'} "
          f"(slowest {worst:.2f} s)")
    for name, r in results.items():
        print(f"- {name}: {r['after'][0]['message']}")


if __name__ == "__main__":
    main()
