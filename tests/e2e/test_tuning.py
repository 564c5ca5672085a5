"""The pipeline with the optional Tuner on tiny data: two trials, one with a learning rate that
cannot learn in one epoch; the Trainer must train with the winner (its own setting is that same
useless rate, so a Trainer that ignored the Tuner would not be blessed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import summary, textops_cli
from textops import model_repository

pytestmark = pytest.mark.e2e

BAD, GOOD = 1e-7, 0.1


def _only(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_tuner_picks_the_learning_rate_that_learns_and_the_trainer_uses_it(demo_dir, tmp_path):
    out = tmp_path / "out"
    proc = textops_cli(
        "run", "--data", str(demo_dir), "--output", str(out),
        "--set", "training.epochs=3",
        "--set", f"training.learning_rate={BAD}",
        "--set", "tuning.enabled=true",
        "--set", "tuning.max_trials=2",
        "--set", "tuning.epochs=1",
        "--set", f"tuning.space={{learning_rate: {{choices: [{BAD}, {GOOD}]}}}}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = summary(out)
    assert s["status"] == "pushed" and s["blessed"] is True
    names = [c["name"] for c in s["components"]]
    assert names.index("Transform") < names.index("Tuner") < names.index("Trainer")
    assert all(c["state"] == "complete" for c in s["components"])

    root = out / "pipeline_root"
    results = json.loads(_only(root, "Tuner/tuner_results/*/tuner_results.json").read_text())
    assert len(results) == 2, results  # both trials ran and completed
    score = {r["learning_rate"]: r["score"] for r in results}
    assert set(score) == {BAD, GOOD}
    assert score[GOOD] > 0.8 and score[BAD] < 0.5, score
    best = json.loads(_only(root, "Tuner/best_hyperparameters/*/best_hyperparameters.txt").read_text())
    assert best["values"] == {"learning_rate": GOOD}

    history = json.loads(_only(root, "Trainer/model_run/*/history.json").read_text())
    assert history["hyperparameters"] == best["values"]
    assert len(history["history"]["loss"]) == 3  # the Trainer's own epochs, not the trials'
    assert s["metrics"]["accuracy"]["value"] > 0.8
    version = model_repository.latest_version(str(out / "model_repository"), "text_classifier")
    assert version is not None and s["pushed"]["version"] == version.version
