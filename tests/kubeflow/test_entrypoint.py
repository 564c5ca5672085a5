"""pipelines/kfp_entrypoint.py, case by case, with what the open-source launcher really sends
(shapes from kubeflow/pipelines backend/src/v2: driver.go provisionOutputs, client.go
GetOutputArtifactsByExecutionId, launcher_v2.go LocalPathForURI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_utils
from tfx.types import standard_artifacts

from tests.support.data import write_csv
from textops.pipelines import kfp_entrypoint as ep

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_SCHEMA = "title: tfx.Examples\ntype: object\n"
STATISTICS_SCHEMA = "title: tfx.ExampleStatistics\ntype: object\n"


def executor_input(output_file: str, input_uri: str = "minio://mlpipeline/v2/artifacts/p/run/ExampleGen/u1/examples",
                   output_uri: str = "minio://mlpipeline/v2/artifacts/p/run/StatisticsGen/u2/statistics",
                   logs_uri: str = "minio://mlpipeline/v2/artifacts/p/run/StatisticsGen/u2/executor-logs"):
    """An executor input as the driver builds it: the input typed with an empty schema, named by
    its MLMD id, MLMD custom properties as metadata; outputs with the launcher's executor-logs."""
    return json_format.ParseDict(
        {
            "inputs": {
                "parameterValues": {"note": "hello"},
                "artifacts": {
                    "examples": {
                        "artifacts": [
                            {
                                "name": "17",
                                "uri": input_uri,
                                "type": {"instanceSchema": ""},
                                "metadata": {"split_names": '["train"]', "span": 0.0, "display_name": "examples",
                                             "store_session_info": '{"Provider":"minio"}'},
                            }
                        ]
                    }
                },
            },
            "outputs": {
                "artifacts": {
                    "statistics": {"artifacts": [{"name": "statistics", "uri": output_uri, "type": {"instanceSchema": STATISTICS_SCHEMA}}]},
                    "executor-logs": {"artifacts": [{"name": "executor-logs", "uri": logs_uri, "type": {"schemaTitle": "system.Artifact"}}]},
                },
                "outputFile": output_file,
            },
        },
        pipeline_spec_pb2.ExecutorInput(),
    )


def inputs_spec():
    return json_format.ParseDict(
        {"artifacts": {"examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}}},
         "parameters": {"note": {"parameterType": "STRING"}}},
        pipeline_spec_pb2.ComponentInputsSpec(),
    )


# -- empty input type -------------------------------------------------------------------------


def test_an_input_without_a_type_gets_the_type_its_task_declares(tmp_path):
    given = executor_input(str(tmp_path / "out.json"))
    # What TFX 1.16 does with it on its own (every task after the first, on open-source KFP):
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
        tfx_utils.parse_raw_artifact_dict(given.inputs.artifacts)
    assert ep.fill_input_types(given, inputs_spec()) == ["examples"]
    (examples,) = tfx_utils.parse_raw_artifact_dict(given.inputs.artifacts)["examples"]
    assert isinstance(examples, standard_artifacts.Examples)
    assert examples.split_names == '["train"]' and examples.uri.startswith("minio://")


def test_an_input_without_a_type_and_no_inputs_spec_is_a_clear_error(tmp_path):
    given = executor_input(str(tmp_path / "out.json"))
    with pytest.raises(ep.EntrypointError, match="'examples' arrived without a type.*textops compile.*schema 2.1"):
        ep.fill_input_types(given, None)


def test_a_typed_input_is_left_as_it_is(tmp_path):
    given = executor_input(str(tmp_path / "out.json"))
    given.inputs.artifacts["examples"].artifacts[0].type.schema_title = "tfx.Examples"
    assert ep.fill_input_types(given, inputs_spec()) == []
    assert given.inputs.artifacts["examples"].artifacts[0].type.schema_title == "tfx.Examples"


# -- executor-logs (outputs TFX never declared) -------------------------------------------------


def test_executor_logs_are_hidden_from_tfx_and_passed_through_untouched(tmp_path):
    output_file = tmp_path / "out.json"
    given = executor_input(str(output_file))
    original = json_format.MessageToDict(given.outputs.artifacts["executor-logs"])
    # What TFX 1.16 does with it on its own (KFP >= 2.5):
    with pytest.raises(ImportError, match="system.Artifact"):
        tfx_utils.parse_raw_artifact_dict(given.outputs.artifacts)
    foreign = ep.split_foreign_outputs(given)
    assert set(foreign) == {"executor-logs"} and set(given.outputs.artifacts) == {"statistics"}
    tfx_utils.parse_raw_artifact_dict(given.outputs.artifacts)  # TFX can read the rest
    output_file.write_text(json.dumps({"artifacts": {"statistics": {"artifacts": [{"uri": "x"}]}}}))
    ep.finalize_executor_output(str(output_file), {}, foreign)
    written = json.loads(output_file.read_text())
    assert written["artifacts"]["executor-logs"] == original


# -- minio:// / s3:// / gs:// through the launcher's local paths --------------------------------


@pytest.mark.parametrize(
    "uri, local",
    [
        ("minio://mlpipeline/v2/artifacts/p/r/T/u/model", "/minio/mlpipeline/v2/artifacts/p/r/T/u/model"),
        ("s3://bucket/root/p/r/T/u/model", "/s3/bucket/root/p/r/T/u/model"),
        ("gs://bucket/root/p/r/T/u/model", "/gcs/bucket/root/p/r/T/u/model"),
        ("/mnt/textops/models", None),
        ("hdfs://nn/x", None),
    ],
)
def test_launcher_local_paths_follow_LocalPathForURI(uri, local):
    assert ep.local_path_for_uri(uri) == local


def test_artifacts_are_read_and_written_locally_and_the_output_keeps_remote_uris(tmp_path):
    output_file = tmp_path / "out.json"
    given = executor_input(str(output_file))
    ep.split_foreign_outputs(given)
    remote = ep.localize_artifacts(given, str(tmp_path / "pod"))
    assert given.inputs.artifacts["examples"].artifacts[0].uri == str(tmp_path / "pod/minio/mlpipeline/v2/artifacts/p/run/ExampleGen/u1/examples")
    local_out = given.outputs.artifacts["statistics"].artifacts[0].uri
    assert local_out == str(tmp_path / "pod/minio/mlpipeline/v2/artifacts/p/run/StatisticsGen/u2/statistics")
    assert remote == {"statistics": ["minio://mlpipeline/v2/artifacts/p/run/StatisticsGen/u2/statistics"]}
    output_file.write_text(json.dumps({"artifacts": {"statistics": {"artifacts": [{"uri": local_out, "metadata": {"a": "b"}}]}}}))
    ep.finalize_executor_output(str(output_file), remote, {})
    written = json.loads(output_file.read_text())["artifacts"]["statistics"]["artifacts"][0]
    assert written == {"uri": "minio://mlpipeline/v2/artifacts/p/run/StatisticsGen/u2/statistics", "metadata": {"a": "b"}}


# -- the whole entrypoint in its own process -----------------------------------------------------


def _run_entrypoint(tmp_path, executor_class: str, launcher: bool = True):
    pod = tmp_path / "pod"
    local_input = pod / "minio/mlpipeline/v2/artifacts/p/run/ExampleGen/u1/examples"
    (local_input / "Split-train").mkdir(parents=True)  # what the launcher downloaded
    (local_input / "Split-train" / "data.gz").write_bytes(b"x")
    output_file = pod / "minio/mlpipeline/v2/artifacts/p/run/StatisticsGen/u2/output_metadata.json"
    given = executor_input(str(output_file))
    argv = [
        sys.executable, "-m", ep.MODULE, *([ep.LAUNCHER_PATHS_FLAG] if launcher else []),
        "--executor_class_path", executor_class,
        "--json_serialized_invocation_args", json_format.MessageToJson(given),
        "--json_serialized_inputs_spec_args", json_format.MessageToJson(inputs_spec()),
        "--direct_running_mode=in_memory",
    ]
    env = {**os.environ, ep.LOCAL_ROOT_ENV: str(pod), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return proc, pod, output_file


def test_a_task_exits_zero_only_after_its_executor_output_is_written(tmp_path):
    proc, pod, output_file = _run_entrypoint(tmp_path, "tests.kubeflow.executors.WritesExamples")
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = json.loads(output_file.read_text())
    (stats,) = output["artifacts"]["statistics"]["artifacts"]
    assert stats["uri"] == "minio://mlpipeline/v2/artifacts/p/run/StatisticsGen/u2/statistics"
    assert stats["metadata"]["note"] == "hello"
    assert output["artifacts"]["executor-logs"]["artifacts"][0]["uri"].endswith("/executor-logs")
    # The executor wrote where the launcher uploads from, having read what it downloaded.
    seen = (pod / "minio/mlpipeline/v2/artifacts/p/run/StatisticsGen/u2/statistics/Split-train/seen.txt").read_text()
    assert seen == "hello:Split-train:Examples"


def test_a_failing_executor_fails_the_task_with_its_error_and_leaves_no_output(tmp_path):
    proc, _, output_file = _run_entrypoint(tmp_path, "tests.kubeflow.executors.Fails")
    assert proc.returncode == 1
    assert "textops: task failed in tests.kubeflow.executors.Fails: RuntimeError: the component's own error" in proc.stderr
    assert "Traceback" in proc.stderr
    assert not output_file.exists()


def test_a_bad_executor_class_fails_the_task_naming_it(tmp_path):
    proc, _, output_file = _run_entrypoint(tmp_path, "tests.kubeflow.executors.NoSuchExecutor")
    assert proc.returncode == 1 and "task failed in tests.kubeflow.executors.NoSuchExecutor" in proc.stderr
    assert not output_file.exists()


# -- ExampleGen: the driver the open-source backend never runs -----------------------------------


def test_example_gen_driver_resolves_the_newest_span_and_fingerprints_the_input(tmp_path):
    data = tmp_path / "data"
    for span in (1, 2):
        write_csv(data / f"span-{span}" / "train.csv", [("late parcel", "shipping")] * span)
        write_csv(data / f"span-{span}" / "test.csv", [("refund", "billing")])
    output_file = tmp_path / "task" / "output_metadata.json"
    config = {"splits": [{"name": "train", "pattern": "span-{SPAN}/train.csv"}, {"name": "eval", "pattern": "span-{SPAN}/test.csv"}]}
    given = json_format.ParseDict(
        {
            "inputs": {"parameterValues": {"input_base": str(data), "input_config": json.dumps(config), "output_config": "{}",
                                            "output_data_format": 6.0, "output_file_format": 5.0}},
            "outputs": {"artifacts": {"examples": {"artifacts": [{"name": "examples", "uri": str(tmp_path / "ex"),
                                                                  "type": {"instanceSchema": EXAMPLES_SCHEMA}}]}},
                        "outputFile": str(output_file)},
        },
        pipeline_spec_pb2.ExecutorInput(),
    )
    spec = json_format.ParseDict(
        {"parameters": {k: {"parameterType": "STRING"} for k in ("input_base", "input_config", "output_config")}},
        pipeline_spec_pb2.ComponentInputsSpec(),
    )
    assert ep.is_file_based_example_gen("tfx.components.example_gen.csv_example_gen.executor.Executor")
    assert not ep.is_file_based_example_gen("tfx.components.statistics_gen.executor.Executor")
    assert ep.run_example_gen_driver(given, spec) is True
    values = json.loads(output_file.read_text())["parameterValues"]
    assert values["span"] == 2
    assert [s["pattern"] for s in json.loads(values["input_config"])["splits"]] == ["span-2/train.csv", "span-2/test.csv"]
    assert values["input_fingerprint"].startswith("split:train,num_files:1,total_bytes:")
    # A driver that already ran (Vertex's preCacheCheck) is not run again.
    assert ep.run_example_gen_driver(given, spec) is False
