"""Fixtures for the monitoring tests: a real model trained in seconds, its reference, logs.

The model is the project's own (``components/bare.py``: same tokenizer and model as the
pipeline), trained on the generated demo data; logs are written in the serving log format with
that model's real predictions.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest


# Texts of another kind entirely (log lines and stack traces), for shift tests that need no
# shared data.
FOREIGN_TEXTS = [
    f"{level} [{module}] request {n} failed after {n % 97} ms: {err} at {path}:{n % 500}"
    for n, (level, module, err, path) in enumerate(
        [
            (lv, m, e, p)
            for lv in ("ERROR", "WARN", "FATAL")
            for m in ("db.pool", "http.client", "auth.jwt", "cache.redis", "queue.kafka")
            for e in ("NullPointerException", "TimeoutError", "ECONNRESET", "OutOfMemoryError")
            for p in ("src/main/App.java", "lib/net/socket.py", "pkg/server/handler.go")
        ]
        * 2
    )
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium is not installed (apt-get install chromium); rendering checks skipped")


def render(html_path: Path, png_path: Path, height: int = 2400) -> tuple[Path, str]:
    """Screenshot and post-JavaScript DOM of a local page, with every network lookup refused."""
    browser = chromium()
    common = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=15000",
    ]
    profile = png_path.parent / f"profile-{png_path.stem}"
    subprocess.run(
        [*common, f"--user-data-dir={profile}", f"--screenshot={png_path}", f"--window-size=1400,{height}", html_path.as_uri()],
        check=True, capture_output=True, timeout=180,
    )
    dom = subprocess.run(
        [*common, f"--user-data-dir={profile}-dom", "--dump-dom", html_path.as_uri()],
        check=True, capture_output=True, timeout=180, text=True,
    ).stdout
    return png_path, dom


@pytest.fixture(scope="session")
def monitoring_demo_dir(demo_dataset) -> Path:
    """The monitoring tests' demo dataset (1,200 train / 900 test rows)."""
    return demo_dataset(1200, 900, 11)


@pytest.fixture(scope="session")
def demo_frames(monitoring_demo_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """That dataset's train and test splits as DataFrames."""
    read = lambda name: pd.read_csv(monitoring_demo_dir / name, dtype=str, keep_default_na=False)  # noqa: E731
    return read("train.csv"), read("test.csv")


@pytest.fixture(scope="session")
def model_dir(monitoring_demo_dir, trained_model) -> Path:
    return trained_model(monitoring_demo_dir, epochs=3)


@pytest.fixture(scope="session")
def reference_dir(demo_frames, model_dir, tmp_path_factory) -> Path:
    """Reference: the first 400 demo test texts, scored by the model; saved once."""
    from textops.monitoring.reference import build_reference

    _, test = demo_frames
    ref = build_reference(test.text[:400].tolist(), test.label[:400].tolist(), model_dir, source="demo test[:400]")
    return ref.save(tmp_path_factory.mktemp("mon_reference"))


@pytest.fixture(scope="session")
def estimate_reference_dir(demo_dataset, model_dir, tmp_path_factory) -> Path:
    """Reference for the tests that hold the label-free estimate to 3 points of the truth: 2,000
    texts of a second demo draw (seed 12), scored by the model. The 400-text reference above is
    one draw whose accuracy (0.915) sits 4 points below the held-out window's at the same mean
    confidence; an estimate calibrated on it carries that error (the standard error of a
    400-text accuracy alone is 1.4 points), whatever the method. At 2,000 texts it is 0.6."""
    from textops.monitoring.reference import build_reference

    test = pd.read_csv(demo_dataset(200, 2000, 12) / "test.csv", dtype=str, keep_default_na=False)
    ref = build_reference(test.text.tolist(), test.label.tolist(), model_dir, source="demo draw 12, test (2,000)")
    return ref.save(tmp_path_factory.mktemp("mon_estimate_reference"))


@pytest.fixture()
def held_out(demo_frames) -> pd.DataFrame:
    """Demo test rows the reference did not see (500 rows)."""
    return demo_frames[1].iloc[400:].reset_index(drop=True)


def write_log(model_dir: Path, texts: list[str], out: Path, **kwargs) -> Path:
    from textops.monitoring.simulate import write_prediction_log

    write_prediction_log(model_dir, texts, out, **kwargs)
    return out
