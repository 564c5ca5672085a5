"""Compiles the same pipeline for Kubeflow Pipelines v2, and submits or schedules it.

``create_pipeline`` builds the very object the local runner runs; this module only decides where
it runs: the container image, the pipeline root on object storage, the Beam runner, the
Trainer's GPUs and node pool, and which settings become pipeline parameters.

The output is a KFP package (YAML: the PipelineSpec, then a PlatformSpec with the Kubernetes
node selector and tolerations of the Trainer), which ``kfp.Client`` uploads to an open-source
KFP backend; a ``.json`` output is TFX's PipelineJob (Vertex AI), which has no PlatformSpec.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from typing import Any, Optional, Sequence

import yaml

from textops import data as data_lib
from textops.components.classification import HEADLINE_METRICS
from textops.errors import TextOpsError
from textops.pipelines.beam_options import direct_runner_args
from textops.settings import KubeflowBeamSettings, ResourceSettings, Settings, VolumeMount

TRAINER = "Trainer"
# Nodes that train models, on the Trainer's resources (GPU node pool): the Trainer, and the Tuner's trials.
TRAINING_NODES = (TRAINER, "Tuner")
# The gate reads the model in service at run time: a cached Evaluator/Pusher would reuse a
# decision taken against another baseline, so their caching is off on Kubeflow.
UNCACHED = ("Evaluator", "Pusher")
PARAMETERS = ("data_root", "epochs", *(f"min_{m}" for m in HEADLINE_METRICS))
# Open-source KFP never runs TFX's ExampleGen driver before its cache lookup, so ExampleGen's
# cache key is only its parameters: new files at the same data_root would come back CACHED.
EXAMPLE_GEN_NODES = ("CsvExampleGen", "ImportExampleGen", "FileBasedExampleGen")
TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
ENTRYPOINT = ["python", "-m", "textops.pipelines.kfp_entrypoint"]


class CompileError(TextOpsError):
    pass


@dataclasses.dataclass
class CompiledJob:
    pipeline_spec: dict
    platform_spec: dict
    pipeline_job: dict  # TFX's PipelineJob JSON (Vertex AI form)
    path: str


def beam_args(beam: KubeflowBeamSettings, pipeline_root: str, image: str) -> list[str]:
    """Beam pipeline args for the chosen runner (DirectRunner inside the component's pod by default)."""
    options = dict(beam.options)
    if beam.runner == "direct":
        # The pod's own Python environment runs the workers: no TFX sdist per component (beam_options).
        args = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    elif beam.runner == "dataflow":
        options.setdefault("temp_location", f"{pipeline_root.rstrip('/')}/beam-tmp")
        options.setdefault("sdk_container_image", image)  # workers import textops from the image
        args = ["--runner=DataflowRunner"]
    else:  # flink / spark: portable runners; the SDK harness runs the pipeline image
        options.setdefault("environment_type", "DOCKER")
        options.setdefault("environment_config", image)
        args = [f"--runner={'FlinkRunner' if beam.runner == 'flink' else 'SparkRunner'}"]
    args += [f"--{k}={v}" for k, v in sorted(options.items())]
    return direct_runner_args(args) if beam.runner == "direct" else args


def _cpu(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


_MEMORY_UNITS = {"": 1e-9, "K": 1e-6, "M": 1e-3, "G": 1.0, "T": 1e3, "Ki": 1024 / 1e9, "Mi": 1024**2 / 1e9,
                 "Gi": 1024**3 / 1e9, "Ti": 1024**4 / 1e9}


def _memory_gb(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", value).groups()
    return round(float(number) * _MEMORY_UNITS[unit], 3)


def _resource_spec(resources: ResourceSettings):
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if resources.cpu is not None:
        spec.cpu_limit = _cpu(resources.cpu)
    if resources.memory is not None:
        spec.memory_limit = _memory_gb(resources.memory)
    if resources.gpus:
        spec.accelerator.type = resources.gpu_resource
        spec.accelerator.count = resources.gpus
    return spec


def kubernetes_executor_config(resources: ResourceSettings, volumes: Sequence[VolumeMount] = ()) -> dict:
    """The PlatformSpec entry the open-source KFP driver applies to a task's pod."""
    config: dict[str, Any] = {}
    if volumes:
        # KubernetesExecutorConfig.pvcMount (constant claim name: every backend since 2.0).
        config["pvcMount"] = [{"constant": v.pvc, "mountPath": v.mount_path} for v in volumes]
    if resources.node_selector:
        from google.protobuf import json_format
        from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

        proto = k8s.KubernetesExecutorConfig()
        proto.node_selector.labels.update(resources.node_selector)
        config.update(json_format.MessageToDict(proto))
    if resources.tolerations:
        # KubernetesExecutorConfig.tolerations (KFP backend >= 2.1 applies it to the pod).
        config["tolerations"] = [
            {
                k: v
                for k, v in {
                    "key": t.key,
                    "operator": t.operator,
                    "value": t.value,
                    "effect": t.effect,
                    "tolerationSeconds": t.toleration_seconds,
                }.items()
                if v is not None
            }
            for t in resources.tolerations
        ]
    return config


def _source(settings: Settings, data_root: str) -> data_lib.DataSource:
    kf = settings.kubeflow
    fmt = settings.data.format if settings.data.format != "auto" else "csv"
    if kf.validation_pattern and not (kf.train_pattern and kf.eval_pattern):
        raise CompileError("kubeflow.validation_pattern needs kubeflow.train_pattern and kubeflow.eval_pattern too")
    if kf.train_pattern or kf.eval_pattern:
        if not (kf.train_pattern and kf.eval_pattern):
            raise CompileError("set both kubeflow.train_pattern and kubeflow.eval_pattern, or neither")
        return data_lib.DataSource(
            data_root, fmt, train_pattern=kf.train_pattern, eval_pattern=kf.eval_pattern,
            validation_pattern=kf.validation_pattern,
        )
    if "://" not in data_root and os.path.exists(data_root):
        if data_lib.list_spans(data_root, settings.data.spans) and settings.data.spans.window > 1:
            raise CompileError(
                f"{data_root} holds span directories and data.spans.window is {settings.data.spans.window}: on Kubeflow "
                "each run's ExampleGen reads one span (TFX resolves {SPAN} to the newest); set data.spans.window=1"
            )
        # Spans: no pinned span. Each run's ExampleGen driver resolves {SPAN} to the newest span
        # it finds at data_root (what a recurring run wants), as `textops schedule` does locally.
        return dataclasses.replace(data_lib.discover(data_root, settings.data), span=None)
    patterns = {"csv": "*.csv", "jsonl": "*.jsonl*", "parquet": "*.parquet"}
    return data_lib.DataSource(data_root, fmt, single_pattern=patterns.get(fmt, "*.tfrecord*"))


def build_pipeline(settings: Settings, data_root: Optional[str] = None):
    """The pipeline object as compiled for Kubeflow (pipeline parameters, resources)."""
    from tfx import v1 as tfx

    from textops.pipelines.pipeline import Locations, RunParameters, create_pipeline, epochs_parameter

    kf = settings.kubeflow
    data_root = data_root or kf.data_root
    missing = [
        name
        for name, value in (
            ("kubeflow.pipeline_root", kf.pipeline_root),
            ("kubeflow.model_repository", kf.model_repository),
            ("kubeflow.data_root (or --data)", data_root),
        )
        if not value
    ]
    if missing:
        raise CompileError(
            f"set {', '.join(missing)} to compile for Kubeflow: the pipeline root on gs://, s3:// or minio://; "
            "the data and the model repository on gs:// or under a mounted volume (kubeflow.volumes)"
        )
    param = tfx.dsl.experimental.RuntimeParameter
    parameters = RunParameters(
        data_root=param(name="data_root", ptype=str, default=data_root),
        epochs=param(name="epochs", ptype=int, default=epochs_parameter(settings)),  # 0: training.epochs auto
        thresholds={
            m: param(name=f"min_{m}", ptype=float, default=float(v))
            for m, v in settings.evaluation.thresholds.gated().items()
        },
    )
    locations = Locations(
        pipeline_root=kf.pipeline_root,
        model_repository=kf.model_repository,
        beam_pipeline_args=tuple(beam_args(kf.beam, kf.pipeline_root, kf.image)),
    )
    pipeline = create_pipeline(settings, _source(settings, data_root), locations, parameters)
    for component in pipeline.components:
        resources = kf.trainer if component.id in TRAINING_NODES else kf.default_resources
        component.with_platform_config(_resource_spec(resources))
    return pipeline


def _remote_scheme(location: str) -> Optional[str]:
    return location.split("://", 1)[0] if "://" in location else None


def check_storage(settings: Settings, data_root: str, vertex: bool = False) -> None:
    """Refuses locations the pods cannot use, saying what to use instead.

    Component artifacts go through the pipeline root, which the open-source launcher copies in
    and out of each pod (gs://, s3://, minio://; Vertex AI: gs://). Everything else a component
    opens itself (the data, the model repository for the baseline and the push, a curated
    schema) is read by TensorFlow in the pod: gs://, or a path on a mounted volume. TensorFlow
    has no minio:// filesystem and reads s3:// only with tensorflow-io; with a minio:// model
    repository every run would silently look like a first push.
    """
    kf = settings.kubeflow
    roots = ("gs",) if vertex else ("gs", "s3", "minio")
    scheme = _remote_scheme(kf.pipeline_root or "")
    if scheme not in roots:
        raise CompileError(
            f"kubeflow.pipeline_root {kf.pipeline_root!r} must be on {' or '.join(r + '://' for r in roots)}"
            + (" (Vertex AI Pipelines)" if vertex else " (the KFP launcher copies artifacts from and to it)")
        )
    mounts = [v.mount_path.rstrip("/") for v in kf.volumes]
    fix = (
        "use gs://BUCKET/... or a PersistentVolumeClaim mounted into every task, e.g. "
        "kubeflow.volumes: [{pvc: textops-data, mount_path: /mnt/textops}] and a path under /mnt/textops"
    )
    locations = [("data_root (--data / kubeflow.data_root)", data_root), ("kubeflow.model_repository", kf.model_repository)]
    if settings.schema_.schema_file is not None:
        locations.append(("schema.schema_file", str(settings.schema_.schema_file)))
    for name, location in locations:
        scheme = _remote_scheme(location)
        if scheme == "gs":
            continue
        if scheme is not None:
            why = {
                "minio": "TensorFlow has no minio:// filesystem",
                "s3": "TensorFlow reads s3:// only with tensorflow-io, which TFX 1.16 does not install",
            }.get(scheme, f"TensorFlow in the pods cannot open {scheme}://")
            raise CompileError(f"{name} {location!r}: {why}; {fix}")
        if vertex:
            raise CompileError(f"{name} {location!r}: Vertex AI tasks mount no volumes; use gs://BUCKET/...")
        if not any(location == m or location.startswith(m + "/") for m in mounts):
            raise CompileError(
                f"{name} {location!r} is a local path but not under a mounted volume "
                f"({', '.join(mounts) or 'kubeflow.volumes is empty'}); {fix}"
            )


def _root_parameter_defaults(pipeline) -> dict[str, Any]:
    """The default of every RuntimeParameter of the pipeline (the settings' values)."""
    from tfx.orchestration import data_types

    return {
        value.name: value.default
        for component in pipeline.components
        for value in component.exec_properties.values()
        if isinstance(value, data_types.RuntimeParameter)
    }


def _json_value(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _kubeflow_container(container: dict, launcher: bool) -> None:
    """The project's entrypoint instead of TFX's (see pipelines/kfp_entrypoint.py)."""
    from textops.pipelines import kfp_entrypoint

    if container.get("command", [])[-1:] != [TFX_ENTRYPOINT]:
        raise CompileError(f"unexpected container command {container.get('command')!r} (TFX changed its entrypoint?)")
    container["command"] = ENTRYPOINT + ([kfp_entrypoint.LAUNCHER_PATHS_FLAG] if launcher else [])
    if launcher:
        # The open-source backend never runs lifecycle hooks; the entrypoint runs ExampleGen's driver itself.
        container.pop("lifecycle", None)


def compile_pipeline(settings: Settings, output: str, data_root: Optional[str] = None) -> CompiledJob:
    """Compiles the pipeline: ``.yaml`` for open-source KFP v2 (PipelineSpec + PlatformSpec),
    ``.json`` for Vertex AI (TFX's PipelineJob)."""
    from tfx import v1 as tfx

    kf = settings.kubeflow
    vertex = output.endswith(".json")
    pipeline = build_pipeline(settings, data_root)
    check_storage(settings, data_root or kf.data_root, vertex=vertex)
    with tempfile.TemporaryDirectory() as tmp:
        runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
            config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
                default_image=kf.image, display_name=settings.pipeline.name, use_pipeline_spec_2_1=True
            ),
            output_dir=tmp,
            output_filename="pipeline_job.json",
        )
        runner.run(pipeline, write_out=True)
        with open(os.path.join(tmp, "pipeline_job.json")) as f:
            job = json.load(f)
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = kf.pipeline_root
    # Every root parameter with its type and a default, so a run needs no value at all
    # (the API server refuses a parameter with neither: v2_template.go validatePipelineJobInputs).
    defaults = _root_parameter_defaults(pipeline)
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    missing = sorted(set(parameters) - set(defaults))
    if missing:
        raise CompileError(f"pipeline parameter(s) {missing} have no default")
    for name, definition in parameters.items():
        definition["defaultValue"] = _json_value(defaults[name])
    job.setdefault("runtimeConfig", {})["parameterValues"] = {n: _json_value(defaults[n]) for n in parameters}
    for executor in spec["deploymentSpec"]["executors"].values():
        if "container" in executor:
            _kubeflow_container(executor["container"], launcher=not vertex)
    tasks = spec["root"]["dag"]["tasks"]
    uncached = UNCACHED if vertex else UNCACHED + EXAMPLE_GEN_NODES
    for name in uncached:
        if name in tasks:
            tasks[name].setdefault("cachingOptions", {})["enableCache"] = False
    executors: dict[str, dict] = {}
    for task_name, task in tasks.items():
        resources = kf.trainer if task_name in TRAINING_NODES else kf.default_resources
        config = kubernetes_executor_config(resources, kf.volumes)
        if config:
            label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
            executors[label] = config
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}} if executors else {}
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    if vertex:
        with open(output, "w") as f:
            json.dump(job, f, indent=2, sort_keys=True)
    else:
        with open(output, "w") as f:
            yaml.safe_dump_all([spec, platform] if platform else [spec], f, sort_keys=True)
    return CompiledJob(spec, platform, job, output)


def normalize_cron(expression: str) -> str:
    """KFP's cron has a seconds field (6 fields); a standard 5-field expression gets "0 " in front."""
    fields = expression.split()
    if len(fields) == 5:
        return "0 " + expression.strip()
    if len(fields) == 6:
        return expression.strip()
    raise TextOpsError(f"--schedule {expression!r} is not a cron expression (5 or 6 fields, e.g. '0 3 * * *')")


def package_pipeline_root(package: str) -> Optional[str]:
    """The ``defaultPipelineRoot`` a package was compiled with (``textops compile``)."""
    with open(package) as f:
        first = next(iter(yaml.safe_load_all(f)), None) if not package.endswith(".json") else json.load(f)
    if isinstance(first, dict):
        spec = first.get("pipelineSpec", first)
        return spec.get("defaultPipelineRoot")
    return None


def submit(
    package: str,
    host: str,
    experiment: str,
    run_name: str,
    parameters: Optional[dict[str, Any]] = None,
    schedule: Optional[str] = None,
    namespace: Optional[str] = None,
    pipeline_root: Optional[str] = None,
) -> dict[str, Any]:
    """Creates a run, or a recurring run (no catch-up, at most one run at a time).

    ``pipeline_root`` is sent with the run: the backend never reads the package's
    ``defaultPipelineRoot`` (driver/root_dag.go takes the run's root, else the kfp-launcher
    ConfigMap's, else minio://mlpipeline/v2/artifacts), so without it artifacts silently land in
    the in-cluster MinIO.
    """
    import kfp

    unknown = sorted(set(parameters or {}) - set(PARAMETERS))
    if unknown:
        raise TextOpsError(f"unknown pipeline parameter(s) {unknown}; the pipeline has {list(PARAMETERS)}")
    pipeline_root = pipeline_root or package_pipeline_root(package)
    client = kfp.Client(host=host, namespace=namespace or "kubeflow")
    if schedule:
        exp = client.create_experiment(experiment, namespace=namespace)
        recurring = client.create_recurring_run(
            experiment_id=exp.experiment_id,
            job_name=run_name,
            cron_expression=normalize_cron(schedule),
            pipeline_package_path=package,
            params=parameters or {},
            pipeline_root=pipeline_root,
            no_catchup=True,
            max_concurrency=1,
        )
        return {"recurring_run_id": recurring.recurring_run_id, "experiment_id": exp.experiment_id}
    run = client.create_run_from_pipeline_package(
        package,
        arguments=parameters or {},
        run_name=run_name,
        experiment_name=experiment,
        namespace=namespace,
        pipeline_root=pipeline_root,
    )
    return {"run_id": run.run_id}
