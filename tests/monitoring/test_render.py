"""The monitoring report renders in headless Chromium, offline, with its charts drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.monitoring.conftest import FOREIGN_TEXTS, chromium, render, write_log
from textops.monitoring.config import load_monitor_settings
from textops.monitoring.monitor import run_monitor, write_outputs


def assert_not_blank(png: Path, min_colors: int = 50) -> None:
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[0] > 500 and img.shape[1] > 500
    colors = len(np.unique(img.reshape(-1, 3), axis=0))
    non_white = float((img.sum(axis=2) < 720).mean())
    assert colors >= min_colors, f"{png}: only {colors} colours, looks blank"
    assert non_white > 0.02, f"{png}: {non_white:.1%} non-white pixels, looks blank"


def test_monitoring_report_renders_offline_with_charts(model_dir, reference_dir, held_out, tmp_path):
    chromium()  # skips with a reason when absent
    texts = held_out.text.tolist()[:150] + FOREIGN_TEXTS[:150]
    log = write_log(model_dir, texts, tmp_path / "log", id_prefix="r")
    with open(next((tmp_path / "log").iterdir()), "a", encoding="utf-8") as f:
        f.write("{corrupt\n")
    fb = tmp_path / "labels.jsonl"
    fb.write_text("".join(json.dumps({"request_id": f"r-{i}", "label": lab}) + "\n" for i, lab in enumerate(held_out.label[:150])))
    settings = load_monitor_settings(None, ["window.last=all"], reference=reference_dir, log=log, feedback=fb, output=tmp_path / "out")
    paths = write_outputs(run_monitor(settings), settings.output)
    png, dom = render(Path(paths["report"]), tmp_path / "monitor.png", height=4000)
    assert_not_blank(png)
    # our summary, then Evidently's dashboard, drawn by its inlined JavaScript with no network
    assert "TextOps monitoring report" in dom and "corrupt lines skipped" in dom
    assert "Dataset Drift" in dom, "Evidently's dashboard did not render"
    assert dom.count("main-svg") >= 3, "Plotly charts were not drawn"
    assert "Classification quality on labelled records" in dom
