"""The Kubeflow compile: inspect what would be submitted (no cluster here), and a contract test
of `submit` against a recording HTTP server on loopback that plays the KFP API (not a cluster)."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from tests.support.data import write_csv
from textops.errors import TextOpsError
from textops.pipelines import kubeflow_runner
from textops.settings import SettingsError, load_settings

BASE = [
    "kubeflow.pipeline_root=gs://bucket/root",
    "kubeflow.model_repository=gs://bucket/models",
    "kubeflow.data_root=gs://bucket/data",
    "kubeflow.image=registry.invalid/textops-pipeline:test",
    "kubeflow.trainer.node_selector={pool: gpu-l4}",
    "kubeflow.trainer.cpu='8'",
    "kubeflow.trainer.memory=32Gi",
    "kubeflow.trainer.gpus=2",
]


def _compile(tmp_path, overrides, name="pipeline.yaml", data_root=None):
    settings = load_settings(None, BASE + overrides)
    job = kubeflow_runner.compile_pipeline(settings, str(tmp_path / name), data_root=data_root)
    docs = list(yaml.safe_load_all(open(tmp_path / name)))
    spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    platform = json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec()) if len(docs) > 1 else None
    return job, spec, platform


def executors(spec) -> dict:
    return json_format.MessageToDict(spec.deployment_spec)["executors"]


def k8s_executors(platform) -> dict:
    return {k: json_format.MessageToDict(v) for k, v in platform.platforms["kubernetes"].deployment_spec.executors.items()}


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("kfp"), [])


def test_every_component_has_an_image_and_a_command(direct):
    _, spec, _ = direct
    assert len(spec.root.dag.tasks) == 9
    for label, executor in executors(spec).items():
        container = executor["container"]
        assert container["image"] == "registry.invalid/textops-pipeline:test", label
        # The project's entrypoint over TFX's (pipelines/kfp_entrypoint.py), reading artifacts
        # through the open-source launcher's local paths; no lifecycle hook (the backend runs none).
        assert list(container["command"]) == ["python", "-m", "textops.pipelines.kfp_entrypoint", "--launcher_local_paths"]
        assert "lifecycle" not in container
        args = container["args"]
        assert "--json_serialized_inputs_spec_args" in args, label  # schema 2.1: the declared input types
    assert spec.default_pipeline_root == "gs://bucket/root"
    assert spec.schema_version == "2.1.0"


def test_trainer_requests_gpus_cpu_memory_with_node_selector_and_tolerations(direct):
    _, spec, platform = direct
    resources = executors(spec)["Trainer_executor"]["container"]["resources"]
    assert resources["accelerator"] == {"type": "nvidia.com/gpu", "count": "2"}
    assert resources["cpuLimit"] == 8.0 and resources["memoryLimit"] == pytest.approx(34.36, abs=0.01)  # 32Gi in GB
    k8s = k8s_executors(platform)
    assert k8s["Trainer_executor"]["nodeSelector"]["labels"] == {"pool": "gpu-l4"}
    assert k8s["Trainer_executor"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # Only the Trainer goes to the GPU pool; the others get CPU/memory limits and no accelerator.
    assert set(k8s) == {"Trainer_executor"}
    other = executors(spec)["Transform_executor"]["container"]["resources"]
    assert "accelerator" not in other and other["cpuLimit"] == 2.0


def test_no_resolver_node(direct):
    job, spec, _ = direct
    text = json.dumps(job.pipeline_job).lower()
    assert "resolver" not in text and "latestblessedmodel" not in text
    for executor in executors(spec).values():
        assert "container" in executor  # no resolver/importer specs


def test_pipeline_parameters_exist_and_flow_into_the_components(direct):
    _, spec, _ = direct
    params = spec.root.input_definitions.parameters
    assert set(params) >= {"data_root", "epochs", "min_accuracy", "min_precision", "min_recall", "min_f1", "min_auc"}
    tasks = spec.root.dag.tasks

    def source(task, name):
        return tasks[task].inputs.parameters[name].component_input_parameter

    # Every root parameter has its type and a default (the settings' values): a run needs no value.
    defaults = {n: json_format.MessageToDict(p)["defaultValue"] for n, p in params.items()}
    assert defaults["data_root"] == "gs://bucket/data" and defaults["epochs"] == 0  # training.epochs auto: the Trainer's rule
    assert defaults["min_auc"] == 0.7 and defaults["min_f1"] == 0.5
    assert params["epochs"].parameter_type == pipeline_spec_pb2.ParameterType.NUMBER_INTEGER
    assert source("CsvExampleGen", "input_base") == "data_root"
    assert source("Trainer", "epochs") == "epochs"
    for m in ("accuracy", "precision", "recall", "f1", "auc"):
        assert source("Evaluator", f"min_{m}") == f"min_{m}"
    # The gate reads the model in service at run time: no cached Evaluator/Pusher decisions.
    assert not tasks["Evaluator"].caching_options.enable_cache and not tasks["Pusher"].caching_options.enable_cache
    # Open-source KFP never runs ExampleGen's driver, so its cache key cannot see new files.
    assert not tasks["CsvExampleGen"].caching_options.enable_cache
    assert tasks["Trainer"].caching_options.enable_cache


def test_epochs_parameter_default_is_the_setting_or_0_for_auto(tmp_path):
    _, spec, _ = _compile(tmp_path, ["training.epochs=7"])
    params = spec.root.input_definitions.parameters
    assert json_format.MessageToDict(params["epochs"])["defaultValue"] == 7  # set: exactly that (or the most)


def test_beam_args_match_the_environment(direct, tmp_path):
    _, spec, _ = direct
    args = executors(spec)["Transform_executor"]["container"]["args"]
    assert "--direct_running_mode=multi_processing" in args and "--direct_num_workers=0" in args
    _, spec, _ = _compile(
        tmp_path,
        ["kubeflow.beam.runner=dataflow", "kubeflow.beam.options={project: p1, region: europe-west4}"],
    )
    args = executors(spec)["StatisticsGen_executor"]["container"]["args"]
    assert "--runner=DataflowRunner" in args and "--project=p1" in args and "--region=europe-west4" in args
    assert "--temp_location=gs://bucket/root/beam-tmp" in args
    assert "--sdk_container_image=registry.invalid/textops-pipeline:test" in args
    assert not any(a.startswith("--direct_") for a in args)


def test_flink_and_spark_need_their_master(tmp_path):
    with pytest.raises(SettingsError, match="needs options \\['flink_master'\\]"):
        load_settings(None, ["kubeflow.beam.runner=flink"])
    args = kubeflow_runner.beam_args(
        load_settings(None, ["kubeflow.beam.runner=spark", "kubeflow.beam.options={spark_master_url: 'spark://m:7077'}"]).kubeflow.beam,
        "s3://b/root",
        "img:1",
    )
    assert args[0] == "--runner=SparkRunner" and "--environment_config=img:1" in args


def test_every_executor_class_and_module_path_resolves_here(direct):
    """What the image would import: executor classes, run_fn/preprocessing_fn, entrypoint modules."""
    job, spec, _ = direct
    for label, executor in executors(spec).items():
        container = executor["container"]
        args = container["args"]
        path = args[args.index("--executor_class_path") + 1]
        module, _, cls = path.rpartition(".")
        assert hasattr(importlib.import_module(module), cls), path
        assert importlib.util.find_spec(container["command"][2]) is not None
    for task, param in (("Trainer", "run_fn"), ("Transform", "preprocessing_fn")):
        value = spec.root.dag.tasks[task].inputs.parameters[param].runtime_value.constant.string_value
        module, _, fn = value.rpartition(".")
        assert callable(getattr(importlib.import_module(module), fn))


def test_tuning_adds_a_tuner_on_the_training_resources_feeding_the_trainer(tmp_path):
    _, spec, platform = _compile(
        tmp_path, ["tuning.enabled=true", "tuning.max_trials=3", "tuning.space={learning_rate: {choices: [0.01, 0.1]}}"]
    )
    tasks = spec.root.dag.tasks
    assert len(tasks) == 10 and "Tuner" in tasks
    assert set(tasks["Tuner"].dependent_tasks) >= {"Transform"}
    assert "Tuner" in tasks["Trainer"].dependent_tasks
    best = tasks["Trainer"].inputs.artifacts["hyperparameters"].task_output_artifact
    assert (best.producer_task, best.output_artifact_key) == ("Tuner", "best_hyperparameters")
    params = tasks["Tuner"].inputs.parameters
    module, _, fn = params["tuner_fn"].runtime_value.constant.string_value.rpartition(".")
    assert callable(getattr(importlib.import_module(module), fn))
    custom = json.loads(params["custom_config"].runtime_value.constant.string_value)
    assert custom["space"] == {"learning_rate": {"choices": [0.01, 0.1]}} and custom["max_trials"] == 3
    executor = executors(spec)["Tuner_executor"]["container"]
    path = executor["args"][executor["args"].index("--executor_class_path") + 1]
    assert path == "tfx.components.tuner.executor.Executor"
    # The trials train models: the Tuner runs on the Trainer's GPU node pool like the Trainer.
    assert executor["resources"]["accelerator"] == {"type": "nvidia.com/gpu", "count": "2"}
    assert set(k8s_executors(platform)) == {"Trainer_executor", "Tuner_executor"}


def test_vertex_pipeline_job_json(tmp_path):
    kubeflow_runner.compile_pipeline(load_settings(None, BASE), str(tmp_path / "job.json"))
    data = json.loads((tmp_path / "job.json").read_text())
    spec = json_format.ParseDict(data["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert spec.schema_version == "2.1.0" and "Trainer" in spec.root.dag.tasks
    assert data["displayName"] == "textops"
    assert data["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
    assert data["runtimeConfig"]["parameterValues"]["epochs"] == 0 and data["runtimeConfig"]["parameterValues"]["min_auc"] == 0.7
    assert "constantValue" not in json.dumps(data)
    for label, executor in executors(spec).items():
        container = executor["container"]
        # Vertex reads gs:// itself: the same entrypoint, without the launcher's local paths.
        assert list(container["command"]) == ["python", "-m", "textops.pipelines.kfp_entrypoint"], label
    # Vertex runs ExampleGen's driver before its cache check, so ExampleGen keeps its hook and its cache.
    example_gen = executors(spec)["CsvExampleGen_executor"]["container"]
    assert example_gen["lifecycle"]["preCacheCheck"]["command"][2] == "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"
    assert spec.root.dag.tasks["CsvExampleGen"].caching_options.enable_cache


def test_vertex_refuses_volumes_and_non_gcs_roots(tmp_path):
    settings = load_settings(None, BASE + ["kubeflow.pipeline_root=minio://mlpipeline/v2/artifacts"])
    with pytest.raises(kubeflow_runner.CompileError, match="pipeline_root.*gs://.*Vertex"):
        kubeflow_runner.compile_pipeline(settings, str(tmp_path / "job.json"))
    settings = load_settings(
        None, BASE + ["kubeflow.data_root=/mnt/t/data", "kubeflow.volumes=[{pvc: data, mount_path: /mnt/t}]"]
    )
    with pytest.raises(kubeflow_runner.CompileError, match="Vertex AI tasks mount no volumes"):
        kubeflow_runner.compile_pipeline(settings, str(tmp_path / "job.json"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("kubeflow.data_root=minio://mlpipeline/data", r"data_root .*'minio://mlpipeline/data'.*no minio:// filesystem.*gs://.*kubeflow.volumes"),
        ("kubeflow.model_repository=s3://models", r"kubeflow.model_repository 's3://models'.*tensorflow-io.*mount_path"),
        ("kubeflow.model_repository=/srv/models", r"kubeflow.model_repository '/srv/models' is a local path but not under a mounted volume"),
        ("kubeflow.pipeline_root=/srv/root", r"kubeflow.pipeline_root '/srv/root' must be on gs:// or s3:// or minio://"),
        ("kubeflow.data_root=hdfs://nn/data", r"cannot open hdfs://"),
    ],
)
def test_storage_the_pods_cannot_read_is_refused_with_what_to_use(tmp_path, override, message):
    with pytest.raises(kubeflow_runner.CompileError, match=message):
        kubeflow_runner.compile_pipeline(load_settings(None, BASE + [override]), str(tmp_path / "p.yaml"))


def test_a_volume_is_mounted_into_every_task(tmp_path):
    _, spec, platform = _compile(
        tmp_path,
        [
            "kubeflow.pipeline_root=minio://mlpipeline/v2/artifacts",
            "kubeflow.data_root=/mnt/textops/data",
            "kubeflow.model_repository=/mnt/textops/models",
            "kubeflow.volumes=[{pvc: textops-data, mount_path: /mnt/textops}]",
        ],
    )
    k8s = k8s_executors(platform)
    assert set(k8s) == set(executors(spec))
    for label, config in k8s.items():
        assert config["pvcMount"] == [{"constant": "textops-data", "mountPath": "/mnt/textops"}], label
    assert k8s["Trainer_executor"]["nodeSelector"]["labels"] == {"pool": "gpu-l4"}
    evaluator = spec.root.dag.tasks["Evaluator"].inputs.parameters["baseline_model_dir"]
    assert evaluator.runtime_value.constant.string_value == "/mnt/textops/models/text_classifier"


def test_spans_are_resolved_by_each_run_not_pinned_at_compile_time(tmp_path):
    """A span layout compiles to {SPAN} patterns with no RangeConfig: each run's ExampleGen takes
    the newest span it finds (the replay's ExampleGen test shows it resolving on the cluster)."""
    data = tmp_path / "spans"
    for span in (1, 2):
        write_csv(data / f"span-{span}" / "train.csv", [("a parcel is late", "shipping"), ("refund me", "billing")])
        write_csv(data / f"span-{span}" / "test.csv", [("where is my box", "shipping"), ("charged twice", "billing")])
    volume = [f"kubeflow.volumes=[{{pvc: data, mount_path: '{tmp_path}'}}]"]
    with pytest.raises(kubeflow_runner.CompileError, match="each run's ExampleGen reads one span.*data.spans.window=1"):
        _compile(tmp_path, volume, data_root=str(data))
    _, spec, _ = _compile(tmp_path, volume + ["data.spans.window=1"], data_root=str(data))
    params = spec.root.dag.tasks["CsvExampleGen"].inputs.parameters
    config = json.loads(params["input_config"].runtime_value.constant.string_value)
    assert [s["pattern"] for s in config["splits"]] == ["span-{SPAN}/train.csv", "span-{SPAN}/test.csv"]
    assert "range_config" not in params or not params["range_config"].runtime_value.constant.string_value


def test_missing_locations_are_named(tmp_path):
    with pytest.raises(kubeflow_runner.CompileError, match="kubeflow.pipeline_root.*kubeflow.model_repository"):
        kubeflow_runner.compile_pipeline(load_settings(), str(tmp_path / "p.yaml"), data_root="gs://b/d")


# -- submit / schedule: a contract test against a recording server, not a cluster ---------------


class _RecordingKfp(BaseHTTPRequestHandler):
    requests: list = []

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append((self.command, self.path.split("?")[0], json.loads(body) if body else None))
        path = self.path.split("?")[0]
        if path == "/apis/v2beta1/experiments" and self.command == "GET":
            out = {"experiments": [{"experiment_id": "exp-1", "display_name": "nightly"}], "total_size": 1}
        elif path == "/apis/v2beta1/runs":
            out = {"run_id": "run-1", "display_name": "r"}
        elif path == "/apis/v2beta1/recurringruns":
            out = {"recurring_run_id": "rr-1", "display_name": "r"}
        else:
            out = {}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def kfp_api():
    _RecordingKfp.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingKfp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _RecordingKfp.requests
    server.shutdown()


def test_submit_creates_a_run_with_the_package_and_parameters(direct, kfp_api):
    host, requests = kfp_api
    job, _, _ = direct
    result = kubeflow_runner.submit(job.path, host, "nightly", "r1", {"epochs": 3, "min_f1": 0.8})
    assert result == {"run_id": "run-1"}
    (run,) = [body for method, path, body in requests if method == "POST" and path == "/apis/v2beta1/runs"]
    assert run["experiment_id"] == "exp-1" and run["display_name"] == "r1"
    assert run["runtime_config"]["parameters"] == {"epochs": 3, "min_f1": 0.8}
    # The backend never reads the package's defaultPipelineRoot: the run carries it.
    assert run["runtime_config"]["pipeline_root"] == "gs://bucket/root"
    sent = run["pipeline_spec"]
    assert sent["pipeline_spec"]["root"]["dag"]["tasks"]["Trainer"]
    assert sent["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["Trainer_executor"]["nodeSelector"]


def test_schedule_creates_a_recurring_run_without_catchup_one_at_a_time(direct, kfp_api):
    host, requests = kfp_api
    job, _, _ = direct
    result = kubeflow_runner.submit(job.path, host, "nightly", "nightly-retrain", schedule="0 3 * * *")
    assert result["recurring_run_id"] == "rr-1"
    (rr,) = [body for method, path, body in requests if method == "POST" and path == "/apis/v2beta1/recurringruns"]
    assert rr["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"  # KFP's cron has a seconds field
    assert rr["no_catchup"] is True and int(rr["max_concurrency"]) == 1
    assert rr["experiment_id"] == "exp-1" and rr["mode"] == "ENABLE"
    assert rr["runtime_config"]["pipeline_root"] == "gs://bucket/root"


def test_submit_rejects_unknown_parameters_and_bad_cron(direct, kfp_api):
    host, _ = kfp_api
    job, _, _ = direct
    with pytest.raises(TextOpsError, match="unknown pipeline parameter"):
        kubeflow_runner.submit(job.path, host, "e", "r", {"epoch": 3})
    with pytest.raises(TextOpsError, match="not a cron expression"):
        kubeflow_runner.normalize_cron("every day")


# -- the example cluster settings under deploy/kubeflow compile to packages the API server takes --


DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubeflow"
CLUSTER_CONFIGS = sorted(p for p in DEPLOY.glob("*.yaml") if "kubeflow" in (yaml.safe_load(p.read_text()) or {}))


@pytest.mark.parametrize("config", CLUSTER_CONFIGS, ids=lambda p: p.name)
def test_deploy_configs_compile_to_packages_the_api_server_accepts(tmp_path, config):
    from tests.kubeflow import replay

    assert len(CLUSTER_CONFIGS) >= 2
    package = tmp_path / "pipeline.yaml"
    kubeflow_runner.compile_pipeline(load_settings(config, []), str(package))
    spec, platform = replay.load_package(package)  # v2_template.go NewV2SpecTemplate
    values = replay.runtime_parameters(spec, {})  # validatePipelineJobInputs + argo.go defaults
    assert set(values) == set(spec["root"]["inputDefinitions"]["parameters"])
    replay.runtime_parameters(spec, {"epochs": 3})
    with pytest.raises(replay.ReplayError, match="not required by pipeline: epoch"):
        replay.runtime_parameters(spec, {"epoch": 3})
    text = package.read_text()
    assert "constantValue" not in text  # resolve.go: "ConstantValue not implemented"
    for label, executor in spec["deploymentSpec"]["executors"].items():
        args = executor["container"]["args"]
        assert "--json_serialized_inputs_spec_args" in args, label
        assert executor["container"]["command"][:3] == ["python", "-m", "textops.pipelines.kfp_entrypoint"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["Trainer_executor"]["tolerations"] and k8s["Trainer_executor"]["nodeSelector"]["labels"]
    trainer = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["resources"]
    assert trainer["accelerator"]["type"] == "nvidia.com/gpu"


def test_the_image_runs_the_entrypoint_and_carries_the_beam_boot():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "apache/beam_python3.10_sdk:${BEAM_VERSION}" in dockerfile
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in dockerfile
    assert "textops.pipelines.kfp_entrypoint" in dockerfile and "TF_USE_LEGACY_KERAS=1" in dockerfile
    beam = [l for l in (DEPLOY.parents[1] / "constraints.txt").read_text().splitlines() if l.startswith("apache-beam")]
    assert beam and f"ARG BEAM_VERSION={beam[0].split('==')[1]}" in dockerfile


def test_a_validation_pattern_compiles_to_a_third_split_the_trainer_evaluates_on(tmp_path):
    _, spec, _ = _compile(tmp_path, ["kubeflow.train_pattern=train.csv", "kubeflow.eval_pattern=test.csv",
                                     "kubeflow.validation_pattern=validation.csv"])
    tasks = spec.root.dag.tasks
    config = json.loads(tasks["CsvExampleGen"].inputs.parameters["input_config"].runtime_value.constant.string_value)
    assert [(s["name"], s["pattern"]) for s in config["splits"]] == [
        ("train", "train.csv"), ("validation", "validation.csv"), ("eval", "test.csv")]
    eval_args = json.loads(tasks["Trainer"].inputs.parameters["eval_args"].runtime_value.constant.string_value)
    assert eval_args["splits"] == ["validation"]
    with pytest.raises(kubeflow_runner.CompileError, match="validation_pattern needs"):
        _compile(tmp_path, ["kubeflow.validation_pattern=validation.csv"])


@pytest.mark.parametrize("fmt, executor", [("jsonl", "JsonLinesExecutor"), ("parquet", "ParquetExecutor")])
def test_json_lines_and_parquet_compile_to_a_file_based_example_gen(tmp_path, fmt, executor):
    from textops.pipelines import kfp_entrypoint

    _, spec, _ = _compile(tmp_path, [f"data.format={fmt}"])
    tasks = spec.root.dag.tasks
    assert "FileBasedExampleGen" in tasks and not tasks["FileBasedExampleGen"].caching_options.enable_cache
    args = executors(spec)["FileBasedExampleGen_executor"]["container"]["args"]
    path = args[args.index("--executor_class_path") + 1]
    assert path == f"textops.components.example_gen.{executor}"
    assert kfp_entrypoint.is_file_based_example_gen(path)  # the entrypoint runs ExampleGen's driver for it
    config = json.loads(tasks["FileBasedExampleGen"].inputs.parameters["input_config"].runtime_value.constant.string_value)
    assert config["splits"][0]["pattern"] == {"jsonl": "*.jsonl*", "parquet": "*.parquet"}[fmt]
