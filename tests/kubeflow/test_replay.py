"""The compiled job, run as open-source KFP v2 runs it (tests/kubeflow/replay.py), twice on one
backend: the first run pushes a version; new rows at the same data_root make the second run
train again, gate against the first version and push a second one."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from tests.kubeflow import replay
from textops import model_repository
from textops.pipelines.demo_data import generate
from textops.pipelines import kubeflow_runner
from textops.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "kubeflow" / "Dockerfile"
CLAIM = "textops-data"


def cluster_settings(volume: Path, extra: tuple[str, ...] = ()):
    return load_settings(
        None,
        [
            "kubeflow.image=registry.invalid/textops-pipeline:replay",
            "kubeflow.pipeline_root=minio://mlpipeline/v2/artifacts",
            f"kubeflow.data_root={volume}/data",
            f"kubeflow.model_repository={volume}/models",
            f"kubeflow.volumes=[{{pvc: {CLAIM}, mount_path: '{volume}'}}]",
            "kubeflow.beam.options={direct_num_workers: '1', direct_running_mode: in_memory}",
            "training.learning_rate=0.05",
            "evaluation.change_tolerance=0.05",
            *extra,
        ],
    )


def append_rows(path: Path, rows: list[list[str]]) -> None:
    with open(path, "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def examples_count(backend: replay.Backend, run: replay.RunResult, split: str) -> int:
    """Rows ExampleGen wrote for a split, read back from the object store like the next task would."""
    import tensorflow as tf

    artifact = backend.artifacts[run.tasks["CsvExampleGen"].execution.outputs["examples"]]
    files = tf.io.gfile.glob(str(backend.store.path(artifact["uri"]) / f"Split-{split}" / "*"))
    return sum(1 for f in files for _ in tf.data.TFRecordDataset(f, compression_type="GZIP"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("kfp")
    volume = root / "volume"
    generate(volume / "data", train_rows=300, test_rows=120, seed=11)
    (volume / "models").mkdir()
    package = root / "pipeline.yaml"
    kubeflow_runner.compile_pipeline(cluster_settings(volume), str(package))
    return replay.Backend(root / "backend"), package, volume


@pytest.mark.e2e
def test_two_scheduled_runs_push_then_retrain_on_new_data_and_gate_against_the_first(cluster):
    backend, package, volume = cluster
    models = str(volume / "models")
    first = replay.KfpRun(backend, package, dockerfile=DOCKERFILE).run({"epochs": 1})
    assert {t: r.state for t, r in first.tasks.items()} == {t: "COMPLETE" for t in first.tasks}, first.tasks
    (v1,) = model_repository.list_versions(models, "text_classifier")
    blessing = backend.artifact_metadata(first.tasks["Evaluator"].execution.outputs["blessing"])
    assert blessing["blessed"] == 1.0 and "baseline_version" not in blessing  # first push: no baseline
    train_before = examples_count(backend, first, "train")
    assert train_before == 300
    # The task got what the driver hands TFX tasks: inputs without a type, named by MLMD id.
    given = first.tasks["Trainer"].execution.executor_input
    examples = given["inputs"]["artifacts"]["examples"]["artifacts"][0]
    assert examples["type"] == {"instanceSchema": ""} and examples["name"].isdigit()
    assert examples["uri"].startswith("minio://mlpipeline/v2/artifacts/textops/")
    assert "executor-logs" in given["outputs"]["artifacts"]

    # New rows arrive at the same data_root; the next scheduled run must see them.
    rows = list(csv.reader(open(volume / "data" / "train.csv", encoding="utf-8")))[1:121]
    append_rows(volume / "data" / "train.csv", rows)
    second = replay.KfpRun(backend, package, dockerfile=DOCKERFILE).run({"epochs": 1})
    states = {t: r.state for t, r in second.tasks.items()}
    assert states["CsvExampleGen"] == "COMPLETE" and states["Trainer"] == "COMPLETE", states
    assert examples_count(backend, second, "train") == train_before + 120
    blessing = backend.artifact_metadata(second.tasks["Evaluator"].execution.outputs["blessing"])
    assert blessing["baseline_version"] == str(v1.version), blessing  # gated against the first version
    assert blessing["blessed"] == 1.0, blessing
    versions = model_repository.list_versions(models, "text_classifier")
    assert [v.version for v in versions][:1] == [v1.version] and len(versions) == 2
    pushed = backend.artifact_metadata(second.tasks["Pusher"].execution.outputs["pushed_model"])
    assert pushed["pushed_version"] == str(versions[-1].version)
    # The second model was trained on the second run's examples (lineage through the replayed MLMD).
    trainer_input = second.tasks["Trainer"].execution.executor_input["inputs"]["artifacts"]
    transform = second.tasks["Transform"].execution.outputs["transformed_examples"]
    assert trainer_input["examples"]["artifacts"][0]["name"] == str(transform)
    record = model_repository.read_push_record(versions[-1].path)
    assert f"/textops/{second.run_id}/Trainer/" in record["source_model_uri"], record


def test_the_package_tfx_writes_by_itself_fails_on_the_cluster_at_the_stage_that_breaks(tmp_path, monkeypatch):
    """The same replay with a fix reverted fails where open-source KFP fails, naming the stage:
    TFX's own entrypoint in the first task; schema 2.0.0 at upload; no defaults at run creation.
    (Empty input types and the Evaluator's baseline id: tests/kubeflow/test_entrypoint.py and
    tests/unit/test_gate.py, in TFX's own code.)"""
    volume = tmp_path / "volume"
    generate(volume / "data", train_rows=60, test_rows=30, seed=5)
    (volume / "models").mkdir()
    package = tmp_path / "tfx-as-is.yaml"
    # Revert the entrypoint: keep TFX's command, as KubeflowV2DagRunner writes it.
    monkeypatch.setattr(kubeflow_runner, "_kubeflow_container", lambda container, launcher: None)
    kubeflow_runner.compile_pipeline(cluster_settings(volume), str(package))
    # KFP >= 2.5 adds the executor-logs output: TFX cannot import its type.
    with pytest.raises(replay.ReplayError) as failure:
        replay.KfpRun(replay.Backend(tmp_path / "b1"), package, dockerfile=DOCKERFILE).run({"epochs": 1})
    assert failure.value.stage == "launcher (CsvExampleGen)"
    assert "ImportError: Could not import system.Artifact" in str(failure.value)
    # KFP 2.1 - 2.4 (no executor-logs): TFX writes to minio://, which neither Beam nor TensorFlow can open.
    with pytest.raises(replay.ReplayError) as failure:
        replay.KfpRun(replay.Backend(tmp_path / "b2"), package, dockerfile=DOCKERFILE, publish_logs=False).run({"epochs": 1})
    assert failure.value.stage == "launcher (CsvExampleGen)"
    assert "Unable to get filesystem from specified path" in str(failure.value) and "minio://" in str(failure.value)

    # Revert schema 2.1: the API server refuses the upload.
    spec, platform = (list(yaml.safe_load_all(package.read_text())) + [None])[:2]
    spec["schemaVersion"] = "2.0.0"
    old = tmp_path / "schema-2.0.yaml"
    old.write_text(yaml.safe_dump_all([spec, platform]))
    with pytest.raises(replay.ReplayError, match=r"api-server \(upload\): KFP only supports schema version 2.1.0"):
        replay.load_package(old)
    # Revert the parameter defaults: the API server refuses a run without values.
    for definition in spec["root"]["inputDefinitions"]["parameters"].values():
        definition.pop("defaultValue")
    with pytest.raises(replay.ReplayError, match="parameter .* is not optional, yet has neither default value"):
        replay.runtime_parameters(spec, {})
