"""Three splits through the pipeline definition: the Trainer and the Tuner evaluate on
validation, the Evaluator (the gate) on eval, the test file; two files stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.data import write_csv
from textops.data import discover
from textops.pipelines.pipeline import Locations, create_pipeline
from textops.settings import load_settings

ROWS = [("late parcel", "shipping"), ("charged twice", "billing")]


def _pipeline(tmp_path: Path, names, overrides=()):
    data = tmp_path / "data"
    for name in names:
        write_csv(data / f"{name}.csv", ROWS)
    settings = load_settings(None, ["tuning.enabled=true", *overrides])
    source = discover(str(data), settings.data)
    pipeline = create_pipeline(settings, source, Locations(str(tmp_path / "root"), str(tmp_path / "models")))
    return {c.id: c for c in pipeline.components}


def _splits(component, key):
    return json.loads(component.exec_properties[key]).get("splits")


@pytest.mark.parametrize(
    "names, overrides, example_splits, training_split",
    [
        (("train", "validation", "test"), (), ["train", "validation", "eval"], "validation"),
        (("train", "test"), (), ["train", "eval"], "eval"),
        (("all",), ("data.validation_buckets=1",), ["train", "validation", "eval"], "validation"),
        (("all",), (), ["train", "eval"], "eval"),
    ],
)
def test_the_gate_split_never_steers_training(tmp_path, names, overrides, example_splits, training_split):
    nodes = _pipeline(tmp_path, names, overrides)
    gen = nodes["CsvExampleGen"].exec_properties
    given = [s["name"] for s in json.loads(gen["input_config"])["splits"]]
    hashed = [s["name"] for s in json.loads(gen["output_config"] or "{}").get("split_config", {}).get("splits", [])]
    assert (hashed or given) == example_splits
    for node in ("Trainer", "Tuner"):
        assert _splits(nodes[node], "train_args") == ["train"], node
        assert _splits(nodes[node], "eval_args") == [training_split], node
    assert json.loads(nodes["Evaluator"].exec_properties["example_splits"]) == ["eval"]
