"""A replay of one open-source Kubeflow Pipelines v2 run, following the backend's Go source.

No Kubernetes, Argo or Docker exists here, so this module plays the parts of the KFP backend
that decide what a task's container sees, the way ``kubeflow/pipelines`` ``backend/src`` does
them (2.1 - 2.5+; read at the files and functions named below):

- **API server** (``apiserver/template/v2_template.go``): ``NewV2SpecTemplate`` (schema version
  2.1.0 only, pipeline name pattern, strict proto parsing of the spec and the PlatformSpec) and
  ``validatePipelineJobInputs`` (every root parameter has a value or a default, values of the
  declared type, no unknown parameters); ``v2/compiler/argocompiler/argo.go`` fills the root
  defaults into the run's runtime config.
- **Root DAG driver** (``v2/driver/root_dag.go`` ``RootDAG``, ``v2/metadata/client.go``
  ``GetPipeline``): the run's root is ``<pipeline_root>/<pipeline name>/<run id>``; the spec's
  ``defaultPipelineRoot`` is never read.
- **Container driver** (``v2/driver/container.go`` ``Container``, ``v2/driver/resolve.go``
  ``resolveInputs``/``resolveInputParameter``/``resolveUpstreamArtifacts``): parameters from the
  root inputs or ``runtimeValue.constant`` (``constantValue`` is "not implemented"), then type
  checks/conversion; upstream artifacts from the producer's MLMD outputs, built by
  ``GetOutputArtifactsByExecutionId`` + ``OutputArtifact.ToRuntimeArtifact`` with an **empty
  instance schema**, the MLMD id as name and the MLMD custom properties as metadata
  (``v2/metadata/converter.go`` ``toRuntimeArtifact``); outputs by ``v2/driver/driver.go``
  ``provisionOutputs``: URIs ``<run root>/<task>/<uuid>/<key>``, the launcher's
  ``executor-logs`` (``system.Artifact``) output, the output file under the task root's local
  path; the cache lookup by fingerprint (``v2/driver/cache.go``, ``v2/cacheutils/cache.go``
  ``GenerateCacheKey``: input artifact names, parameter values, output specs without URIs,
  image, command and args, PVC names); ``pvcMount`` from the PlatformSpec (``v2/driver/k8s.go``
  ``makeVolumeMountPatch``: a constant claim name and a mount path).
- **Launcher** (``v2/component/launcher_v2.go`` ``execute``/``executeV2``): ``downloadArtifacts``
  to ``LocalPathForURI`` (``/gcs/``, ``/minio/``, ``/s3/``), ``prepareOutputFolders``,
  ``addDefaultParams`` + ``compileCmdAndArgs`` (``{{$}}`` and the placeholders), the command run
  in the pod, ``getExecutorOutputFile`` (strict protojson), ``uploadOutputArtifacts``
  (``mergeRuntimeArtifacts``: the executor output's URI and metadata win; files only,
  ``v2/objectstore/object_store.go`` ``UploadBlob``/``DownloadBlob``: empty directories
  vanish) and ``RecordArtifact`` (``toMLMDArtifact``: numbers become doubles, bools ints, lists
  and structs are wrapped; ``display_name`` and ``store_session_info`` are added).

Each task runs the **real command and args of the compiled package** in its own process, with
its own "pod" directory standing for the container's root filesystem: the launcher's local
paths live under it (``TEXTOPS_KFP_LOCAL_ROOT``, the one liberty taken: a pod's "/" cannot be
this machine's "/"), and nothing but the object store and the mounted volumes outlives a task.
The object store is a local directory of buckets; MLMD and the cache are kept in memory by the
:class:`Backend`, so two runs against one backend share state as two runs on one cluster do.

Not replayed: Argo itself, Kubernetes scheduling (node selectors, tolerations, resources are
only checked for shape), retries, ``ParallelFor``/conditions/nested DAGs (the TFX job has none),
importer nodes, and the object store's network.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import yaml

SCHEMA_VERSION = "2.1.0"
NAME_PATTERN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LAUNCHER_MOUNTS = (("gs://", "gcs"), ("minio://", "minio"), ("s3://", "s3"))
EXECUTOR_LOGS = "executor-logs"


class ReplayError(Exception):
    """A stage of the backend refused the job; the message names the stage (as the backend would)."""

    def __init__(self, stage: str, message: str):
        self.stage = stage
        super().__init__(f"{stage}: {message}")


# -- object store: files only --------------------------------------------------------------------


class ObjectStore:
    """Buckets as directories (``<root>/<bucket>/<key>``); like GCS/S3/MinIO there are only objects."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, uri: str) -> Path:
        for prefix, _ in LAUNCHER_MOUNTS:
            if uri.startswith(prefix):
                return self.root / uri[len(prefix):]
        raise ReplayError("object store", f"unsupported storage scheme in {uri!r}")

    def upload(self, local: Path, uri: str) -> int:
        """UploadBlob: a file, or every file below a directory (directories themselves are not objects)."""
        if not local.exists():
            raise FileNotFoundError(local)
        target = self.path(uri)
        files = [local] if local.is_file() else [p for p in sorted(local.rglob("*")) if p.is_file()]
        for f in files:
            dest = target if local.is_file() else target / f.relative_to(local)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        return len(files)

    def download(self, uri: str, local: Path) -> int:
        """DownloadBlob: every object under the key's prefix, recreating only the directories files need."""
        source = self.path(uri)
        if source.is_file():
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, local)
            return 1
        count = 0
        if source.is_dir():
            for f in sorted(source.rglob("*")):
                if f.is_file():
                    dest = local / f.relative_to(source)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dest)
                    count += 1
        return count


def local_path_for_uri(uri: str, pod_root: Path) -> Optional[Path]:
    """launcher_v2.go LocalPathForURI, rooted in the replayed pod's filesystem."""
    for prefix, mount in LAUNCHER_MOUNTS:
        if uri.startswith(prefix):
            return pod_root / mount / uri[len(prefix):]
    return None


def generate_output_uri(root: str, *paths: str) -> str:
    """metadata/client.go GenerateOutputURI (the query string is dropped)."""
    root = root.split("?")[0]
    return f"{root.rstrip('/')}/{'/'.join(p.strip('/') for p in paths)}"


# -- MLMD as the backend uses it ------------------------------------------------------------------


def _struct_value_to_mlmd(value: Any) -> tuple[str, Any]:
    """converter.go StructValueToMLMDValue."""
    if isinstance(value, bool):
        return "int", int(value)
    if isinstance(value, str):
        return "string", value
    if isinstance(value, (int, float)):
        return "double", float(value)
    if isinstance(value, list):
        return "struct", {"list": value}
    if isinstance(value, dict):
        return "struct", {"struct": value}
    raise ReplayError("launcher (RecordArtifact)", f"unknown/unsupported value type {type(value).__name__} in artifact metadata")


def _mlmd_to_struct_value(kind: str, value: Any) -> Any:
    """converter.go toRuntimeArtifact: string, double and int come back as JSON; structs as they are stored."""
    if kind == "string":
        return value
    if kind in ("double", "int"):
        return float(value)
    return value


@dataclasses.dataclass
class Execution:
    id: int
    run_id: str
    task: str
    state: str  # COMPLETE | CACHED | FAILED
    fingerprint: str = ""
    outputs: dict[str, int] = dataclasses.field(default_factory=dict)  # output key -> artifact id
    executor_input: dict = dataclasses.field(default_factory=dict)
    log: str = ""


class Backend:
    """The cluster's state that outlives a run: the object store, MLMD, the cache table."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.store = ObjectStore(self.root / "object-store")
        self.artifacts: dict[int, dict] = {}
        self.executions: dict[int, Execution] = {}
        self.cache: dict[str, int] = {}  # fingerprint -> execution id (cacheutils CreateExecutionCache)
        self._next_id = 1

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def record_artifact(self, name: str, schema: str, runtime_artifact: dict, session_info: str) -> int:
        """metadata/client.go RecordArtifact with converter.go toMLMDArtifact."""
        custom = {}
        for key, value in (runtime_artifact.get("metadata") or {}).items():
            if key == "_kfp_workspace":
                continue
            custom[key] = _struct_value_to_mlmd(value)
        custom.setdefault("display_name", ("string", name))
        custom.setdefault("store_session_info", ("string", session_info))
        title = (yaml.safe_load(schema) or {}).get("title") if schema.strip() else None
        if not title:
            raise ReplayError("launcher (RecordArtifact)", f"output {name!r} has no type title (schema {schema!r})")
        artifact_id = self._id()
        self.artifacts[artifact_id] = {"uri": runtime_artifact.get("uri", ""), "type": title, "custom": custom}
        return artifact_id

    def runtime_artifact(self, artifact_id: int) -> dict:
        """GetOutputArtifactsByExecutionId + OutputArtifact.ToRuntimeArtifact: Schema "" (a TODO upstream)."""
        stored = self.artifacts[artifact_id]
        return {
            "name": str(artifact_id),
            "uri": stored["uri"],
            "metadata": {k: _mlmd_to_struct_value(kind, v) for k, (kind, v) in stored["custom"].items()},
            "type": {"instanceSchema": ""},
        }

    def artifact_metadata(self, artifact_id: int) -> dict:
        return self.runtime_artifact(artifact_id)["metadata"]


# -- API server ------------------------------------------------------------------------------------


def _proto(message_name: str, data: dict, stage: str):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    try:  # protojson.Unmarshal: unknown fields are errors
        return json_format.ParseDict(data, getattr(pipeline_spec_pb2, message_name)())
    except json_format.ParseError as exc:
        raise ReplayError(stage, f"invalid {message_name}: {exc}") from None


def load_package(path: Path) -> tuple[dict, dict]:
    """v2_template.go NewV2SpecTemplate: the pipeline spec and the platform spec documents."""
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    specs = [d for d in docs if "pipelineInfo" in d or "root" in d]
    platforms = [d for d in docs if "platforms" in d]
    stage = "api-server (upload)"
    if len(specs) != 1:
        raise ReplayError(stage, f"expected one pipeline spec, found {len(specs)}")
    if len(platforms) > 1:
        raise ReplayError(stage, "multiple platform specs provided")
    spec = specs[0]
    _proto("PipelineSpec", spec, stage)
    if spec.get("schemaVersion") != SCHEMA_VERSION:
        raise ReplayError(stage, f"KFP only supports schema version 2.1.0, but the pipeline spec has version {spec.get('schemaVersion')}")
    name = spec.get("pipelineInfo", {}).get("name", "")
    if not name or not NAME_PATTERN.match(name):
        raise ReplayError(stage, f"invalid v2 pipeline spec: bad name {name!r}")
    if not spec.get("root"):
        raise ReplayError(stage, "invalid v2 pipeline spec: root component is empty")
    platform = platforms[0] if platforms else {}
    if platform:
        _proto("PlatformSpec", platform, stage)
        for label, config in platform["platforms"].get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {}).items():
            from google.protobuf import json_format
            from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

            known = {k: v for k, v in config.items() if k != "tolerations"}  # tolerations: backend >= 2.1, newer proto
            try:
                json_format.ParseDict(known, k8s.KubernetesExecutorConfig())
            except json_format.ParseError as exc:
                raise ReplayError(stage, f"executor {label}: invalid KubernetesExecutorConfig: {exc}") from None
    return spec, platform


_TYPE_CHECK = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int, float),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


def runtime_parameters(spec: dict, values: Optional[dict]) -> dict:
    """validatePipelineJobInputs (API server), then argo.go's root defaults."""
    stage = "api-server (create run)"
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    values = dict(values or {})
    for name, param in declared.items():
        kind = param.get("parameterType")
        if name not in values:
            if not param.get("isOptional") and "defaultValue" not in param:
                raise ReplayError(stage, f"parameter {name} is not optional, yet has neither default value nor user provided value")
            continue
        if kind not in _TYPE_CHECK:
            raise ReplayError(stage, f"input parameter {name} has unspecified type")
        value = values[name]
        if isinstance(value, bool) and kind != "BOOLEAN" or not isinstance(value, _TYPE_CHECK[kind]):
            raise ReplayError(stage, f"input parameter {name} requires type {kind}")
    extra = sorted(set(values) - set(declared))
    if extra:
        raise ReplayError(stage, f"parameter(s) provided are not required by pipeline: {', '.join(extra)}")
    for name, param in declared.items():  # argocompiler/argo.go
        if name not in values and "defaultValue" in param:
            values[name] = param["defaultValue"]
    return values


# -- a run ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class TaskResult:
    task: str
    state: str
    execution: Execution
    seconds: float


@dataclasses.dataclass
class RunResult:
    run_id: str
    tasks: dict[str, TaskResult]

    def state(self, task: str) -> str:
        return self.tasks[task].state


def _image_env(dockerfile: Path) -> dict[str, str]:
    """The ENV of the image's last stage (PATH aside: the replay runs this machine's Python)."""
    env: dict[str, str] = {}
    stage_lines: list[str] = []
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip().upper().startswith("FROM "):
            stage_lines = []
        stage_lines.append(line)
    for line in stage_lines:
        if line.strip().upper().startswith("ENV "):
            for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line):
                if key != "PATH":
                    env[key] = value
    return env


def _topological(tasks: dict) -> list[str]:
    order, done = [], set()
    pending = dict(tasks)
    while pending:
        ready = sorted(n for n, t in pending.items() if set(t.get("dependentTasks", [])) <= done)
        if not ready:
            raise ReplayError("api-server", f"the DAG has a cycle or unknown dependencies among {sorted(pending)}")
        for name in ready:
            order.append(name)
            done.add(name)
            del pending[name]
    return order


class KfpRun:
    """One run of a compiled package on a :class:`Backend`."""

    def __init__(
        self,
        backend: Backend,
        package: Path,
        pipeline_root: str = "minio://mlpipeline/v2/artifacts",
        publish_logs: bool = True,
        dockerfile: Optional[Path] = None,
        task_timeout: float = 900,
    ):
        self.backend = backend
        self.spec, self.platform = load_package(package)
        self.pipeline_root = pipeline_root
        self.publish_logs = publish_logs
        self.task_timeout = task_timeout
        self.image_env = _image_env(dockerfile) if dockerfile else {}

    # driver ----------------------------------------------------------------------------------

    def _component(self, task: dict) -> dict:
        return self.spec["components"][task["componentRef"]["name"]]

    def _executor(self, component: dict) -> dict:
        return self.spec["deploymentSpec"]["executors"][component["executorLabel"]]

    def _k8s(self, component: dict) -> dict:
        return (
            self.platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
            .get("executors", {}).get(component["executorLabel"], {})
        )

    def _resolve_parameters(self, name: str, task: dict, component: dict, root_values: dict, run_id: str) -> dict:
        stage = f"driver ({name}, resolveInputs)"
        values: dict[str, Any] = {}
        for key, pspec in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in pspec:
                ref = pspec["componentInputParameter"]
                if ref not in root_values:
                    raise ReplayError(stage, f"parent DAG does not have input parameter {ref}")
                values[key] = root_values[ref]
            elif "runtimeValue" in pspec:
                runtime = pspec["runtimeValue"]
                if "constant" not in runtime:
                    raise ReplayError(stage, f"param runtime value spec of type {sorted(runtime)} not implemented")
                constant = runtime["constant"]
                values[key] = {
                    "{{$.pipeline_job_name}}": run_id,
                    "{{$.pipeline_job_resource_name}}": run_id,
                    "{{$.pipeline_job_uuid}}": run_id,
                    "{{$.pipeline_task_name}}": name,
                }.get(constant, constant) if isinstance(constant, str) else constant
            else:
                raise ReplayError(stage, f"parameter spec of type {sorted(pspec)} not implemented yet")
        declared = component.get("inputDefinitions", {}).get("parameters", {})
        for key, pdef in declared.items():  # handleParamTypeValidationAndConversion
            if key not in values:
                if not pdef.get("isOptional") and "defaultValue" not in pdef:
                    raise ReplayError(stage, f"neither value nor default value provided for non-optional parameter {key!r}")
                continue
            value, kind = values[key], pdef.get("parameterType")
            if kind == "STRING":
                if not isinstance(value, str):
                    values[key] = json.dumps(value) if not isinstance(value, (int, float)) else format(value, "g")
            elif kind in _TYPE_CHECK and not isinstance(value, _TYPE_CHECK[kind]):
                raise ReplayError(stage, f"input parameter {key!r} type mismatch: expect {kind}, got {type(value).__name__}")
        return values

    def _resolve_artifacts(self, name: str, task: dict, executions: dict[str, Execution]) -> dict:
        stage = f"driver ({name}, resolveUpstreamArtifacts)"
        artifacts = {}
        for key, aspec in task.get("inputs", {}).get("artifacts", {}).items():
            upstream = aspec.get("taskOutputArtifact")
            if upstream is None:
                raise ReplayError(stage, f"artifact spec {sorted(aspec)} not implemented in the replay")
            producer = executions.get(upstream["producerTask"])
            if producer is None:
                raise ReplayError(stage, f"cannot find producer task {upstream['producerTask']!r}")
            artifact_id = producer.outputs.get(upstream["outputArtifactKey"])
            if artifact_id is None:
                raise ReplayError(stage, f"cannot find output artifact key {upstream['outputArtifactKey']!r} in producer task")
            artifacts[key] = {"artifacts": [self.backend.runtime_artifact(artifact_id)]}
        return artifacts

    def _provision_outputs(self, name: str, component: dict, run_root: str, pod: Path) -> dict:
        outputs_spec = dict(component.get("outputDefinitions", {}).get("artifacts", {}))
        if self.publish_logs:
            outputs_spec[EXECUTOR_LOGS] = {"artifactType": {"schemaTitle": "system.Artifact"}}
        task_root = generate_output_uri(run_root, name, str(uuid.uuid4()))
        artifacts = {}
        for key, aspec in outputs_spec.items():
            artifact = {"name": key, "uri": generate_output_uri(task_root, key), "type": aspec.get("artifactType", {})}
            if aspec.get("metadata"):
                artifact["metadata"] = aspec["metadata"]
            artifacts[key] = {"artifacts": [artifact]}
        outputs: dict[str, Any] = {"artifacts": artifacts}
        params = component.get("outputDefinitions", {}).get("parameters", {})
        if params:
            outputs["parameters"] = {k: {"outputFile": f"/tmp/kfp/outputs/{k}"} for k in params}
        outputs["outputFile"] = str(local_path_for_uri(task_root, pod) / "output_metadata.json")
        return outputs

    def _fingerprint(self, executor_input: dict, executor: dict, pvc_names: list[str]) -> str:
        """cacheutils GenerateCacheKey + GenerateFingerPrint (a SHA-256 of the canonical key)."""
        inputs = executor_input["inputs"]
        key = {
            "inputArtifactNames": {k: [a["name"] for a in v["artifacts"]] for k, v in inputs.get("artifacts", {}).items()},
            "inputParameterValues": inputs.get("parameterValues", {}),
            "outputArtifactsSpec": {
                k: {"name": v["artifacts"][0]["name"], "type": v["artifacts"][0].get("type"), "metadata": v["artifacts"][0].get("metadata")}
                for k, v in executor_input["outputs"].get("artifacts", {}).items()
                if v["artifacts"]
            },
            "containerSpec": {
                "image": executor["container"]["image"],
                "cmdArgs": executor["container"].get("command", []) + executor["container"].get("args", []),
                "pvcNames": pvc_names,
            },
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    # launcher --------------------------------------------------------------------------------

    def _compile_args(self, executor_input: dict, component: dict, container: dict, pod: Path) -> list[str]:
        """addDefaultParams + compileCmdAndArgs."""
        with_defaults = copy.deepcopy(executor_input)
        values = with_defaults["inputs"].setdefault("parameterValues", {})
        for key, pdef in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if key not in values and "defaultValue" in pdef:
                values[key] = pdef["defaultValue"]
        serialized = json.dumps(with_defaults, separators=(",", ":"))
        placeholders = {}
        for key, alist in with_defaults["inputs"].get("artifacts", {}).items():
            artifact = alist["artifacts"][0]
            placeholders[f"{{{{$.inputs.artifacts['{key}'].uri}}}}"] = artifact["uri"]
            local = local_path_for_uri(artifact["uri"], pod)
            if local is not None:
                placeholders[f"{{{{$.inputs.artifacts['{key}'].path}}}}"] = str(local)
        for key, alist in with_defaults["outputs"].get("artifacts", {}).items():
            artifact = alist["artifacts"][0]
            placeholders[f"{{{{$.outputs.artifacts['{key}'].uri}}}}"] = artifact["uri"]
            placeholders[f"{{{{$.outputs.artifacts['{key}'].path}}}}"] = str(local_path_for_uri(artifact["uri"], pod))
        for key, value in values.items():
            placeholders[f"{{{{$.inputs.parameters['{key}']}}}}"] = value if isinstance(value, str) else json.dumps(value)
        compiled = []
        for arg in container.get("command", []) + container.get("args", []):
            arg = arg.replace("{{$}}", serialized)
            for placeholder, replacement in placeholders.items():
                arg = arg.replace(placeholder, replacement)
            compiled.append(arg)
        return compiled

    def _launch(self, name: str, executor_input: dict, component: dict, container: dict, pod: Path, mounts: list[str]) -> tuple[dict, str]:
        stage = f"launcher ({name})"
        for key, alist in executor_input["inputs"].get("artifacts", {}).items():  # downloadArtifacts
            for artifact in alist["artifacts"]:
                local = local_path_for_uri(artifact["uri"], pod)
                if local is not None:
                    self.backend.store.download(artifact["uri"], local)
        for key, alist in executor_input["outputs"].get("artifacts", {}).items():  # prepareOutputFolders
            for artifact in alist["artifacts"]:
                local = local_path_for_uri(artifact["uri"], pod)
                if local is None:
                    raise ReplayError(stage, f"failed to generate local storage path for output artifact {key!r}")
                local.parent.mkdir(parents=True, exist_ok=True)
        argv = self._compile_args(executor_input, component, container, pod)
        workdir = pod / "workdir"
        workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
        env.update(self.image_env)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["TEXTOPS_KFP_LOCAL_ROOT"] = str(pod)
        env["HOME"] = str(pod / "root")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=self.task_timeout)
        log = proc.stdout + proc.stderr
        logs = executor_input["outputs"]["artifacts"].get(EXECUTOR_LOGS)
        if logs:  # getLogWriter: the command's output also goes to the executor-logs local path
            path = local_path_for_uri(logs["artifacts"][0]["uri"], pod)
            path.write_text(log)
        if proc.returncode != 0:
            tail = "\n".join(log.strip().splitlines()[-25:])
            raise ReplayError(stage, f"the command exited {proc.returncode}:\n{tail}")
        output_file = Path(executor_input["outputs"]["outputFile"])
        executor_output: dict = {}
        if output_file.exists():  # getExecutorOutputFile (strict protojson)
            executor_output = json.loads(output_file.read_text())
            _proto("ExecutorOutput", executor_output, stage + " getExecutorOutputFile")
        return executor_output, log

    def _upload(self, name: str, executor_input: dict, executor_output: dict, pod: Path) -> dict[str, int]:
        """uploadOutputArtifacts: merge, upload files from LocalPathForURI, RecordArtifact."""
        stage = f"launcher ({name}, uploadOutputArtifacts)"
        recorded = {}
        session = json.dumps({"Provider": "minio", "Params": {"region": "minio", "endpoint": "minio-service.kubeflow:9000"}})
        for key, alist in executor_input["outputs"].get("artifacts", {}).items():
            artifact = copy.deepcopy(alist["artifacts"][0])
            reported = executor_output.get("artifacts", {}).get(key, {}).get("artifacts", [])
            if key != EXECUTOR_LOGS and reported:  # mergeRuntimeArtifacts
                src = reported[0]
                if src.get("uri"):
                    artifact["uri"] = src["uri"]
                if src.get("metadata"):
                    artifact.setdefault("metadata", {}).update(src["metadata"])
            local = local_path_for_uri(artifact["uri"], pod)
            if local is None:
                if key == EXECUTOR_LOGS:
                    continue
                # the launcher only warns; the artifact's files then never reach the store
            elif local.exists():
                self.backend.store.upload(local, artifact["uri"])
            elif key == EXECUTOR_LOGS:
                continue
            type_schema = artifact.get("type", {})
            schema = type_schema.get("instanceSchema") or (f"title: {type_schema['schemaTitle']}" if type_schema.get("schemaTitle") else "")
            if not schema:
                raise ReplayError(stage, f"failed to determine schema for output {key!r}")
            recorded[key] = self.backend.record_artifact(key, schema, artifact, session)
        return recorded

    # the run ---------------------------------------------------------------------------------

    def run(self, parameters: Optional[dict] = None, run_id: Optional[str] = None, stop_after: Optional[str] = None) -> RunResult:
        run_id = run_id or str(uuid.uuid4())
        values = runtime_parameters(self.spec, parameters)
        pipeline_name = self.spec["pipelineInfo"]["name"]
        run_root = generate_output_uri(self.pipeline_root, pipeline_name, run_id)  # client.go GetPipeline
        tasks = self.spec["root"]["dag"]["tasks"]
        done: dict[str, Execution] = {}
        results: dict[str, TaskResult] = {}
        for name in _topological(tasks):
            started = time.monotonic()
            task = tasks[name]
            component = self._component(task)
            executor = self._executor(component)
            if "container" not in executor:
                raise ReplayError(f"driver ({name})", f"executor kind {sorted(executor)} not replayed")
            pod = self.backend.root / "pods" / run_id / name
            shutil.rmtree(pod, ignore_errors=True)
            pod.mkdir(parents=True)
            k8s = self._k8s(component)
            mounts = []
            for mount in k8s.get("pvcMount", []):  # makeVolumeMountPatch
                claim, path = mount.get("constant"), mount.get("mountPath")
                if not claim or not path:
                    raise ReplayError(f"driver ({name})", "failed to mount volume, missing mountpath or pvc name")
                if not Path(path).is_dir():
                    raise ReplayError(f"driver ({name})", f"volume {claim!r}: nothing to mount at {path}")
                mounts.append(claim)
            executor_input = {
                "inputs": {
                    "parameterValues": self._resolve_parameters(name, task, component, values, run_id),
                    "artifacts": self._resolve_artifacts(name, task, done),
                },
                "outputs": self._provision_outputs(name, component, run_root, pod),
            }
            if not executor_input["inputs"]["artifacts"]:
                del executor_input["inputs"]["artifacts"]
            fingerprint = self._fingerprint(executor_input, executor, mounts)
            execution = Execution(self.backend._id(), run_id, name, "RUNNING", fingerprint, executor_input=executor_input)
            self.backend.executions[execution.id] = execution
            cached_id = self.backend.cache.get(fingerprint)
            if task.get("cachingOptions", {}).get("enableCache") and cached_id is not None:
                execution.outputs = dict(self.backend.executions[cached_id].outputs)  # reuseCachedOutputs
                execution.state = "CACHED"
            else:
                try:
                    executor_output, execution.log = self._launch(name, executor_input, component, executor["container"], pod, mounts)
                    execution.outputs = self._upload(name, executor_input, executor_output, pod)
                except ReplayError:
                    execution.state = "FAILED"
                    raise
                execution.state = "COMPLETE"
                self.backend.cache[fingerprint] = execution.id  # CreateExecutionCache
            shutil.rmtree(pod, ignore_errors=True)  # the pod is gone; only the store and volumes remain
            done[name] = execution
            results[name] = TaskResult(name, execution.state, execution, time.monotonic() - started)
            if name == stop_after:
                break
        return RunResult(run_id, results)
