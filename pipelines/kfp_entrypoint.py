"""The container entrypoint of every task of the compiled Kubeflow job.

The compiled job runs ``python -m textops.pipelines.kfp_entrypoint [--launcher_local_paths]``
followed by TFX's own arguments (``--executor_class_path``, ``--json_serialized_invocation_args``,
``--json_serialized_inputs_spec_args`` and the Beam arguments). This module is a thin layer over
TFX 1.16's ``kubeflow_v2_run_executor`` that makes TFX understand what the open-source KFP v2
launcher hands it; on Vertex AI Pipelines it changes nothing TFX relies on. It patches nothing
and installs no import hook: each case below is one explicit function with a unit test.

What the open-source backend does that TFX 1.16 does not expect (kubeflow/pipelines
``backend/src/v2``):

- **Input artifacts arrive without a type.** ``metadata/client.go``
  ``GetOutputArtifactsByExecutionId`` builds upstream artifacts with ``Schema: ""``, so an input
  reaches the executor as ``type {instanceSchema: ""}`` and TFX's ``_retrieve_class_path`` fails
  with ``'NoneType' object has no attribute 'get'``. :func:`fill_input_types` takes the type from
  the task's inputs spec (``--json_serialized_inputs_spec_args``, pipeline spec schema 2.1).
- **Outputs TFX never declared.** Since KFP 2.5 the driver adds ``executor-logs`` of type
  ``system.Artifact`` (``driver/driver.go`` ``provisionOutputs``); TFX cannot import a
  ``system.*`` type. :func:`split_foreign_outputs` hides them from TFX and
  :func:`finalize_executor_output` passes them through untouched.
- **Artifacts live in the launcher's local paths.** ``component/launcher_v2.go``
  (``LocalPathForURI``, ``downloadArtifacts``, ``uploadOutputArtifacts``) downloads inputs to
  ``/gcs/``, ``/minio/``, ``/s3/`` + bucket/key and uploads outputs from there after the command
  exits (files only). TensorFlow cannot open ``minio://`` at all, and writing ``gs://`` directly
  leaves zero-byte ``dir/`` markers that break later downloads (kubeflow/pipelines#13476). With
  ``--launcher_local_paths`` :func:`localize_artifacts` points TFX at the local paths and the
  executor output keeps the remote URIs (the launcher records ``ExecutorOutput`` URIs verbatim,
  ``mergeRuntimeArtifacts``, and uploads from ``LocalPathForURI`` of them).
- **No ExampleGen driver.** The open-source backend ignores the ``lifecycle.preCacheCheck`` hook
  that runs TFX's file-based ExampleGen driver on Vertex, so ``{SPAN}`` patterns were never
  resolved. :func:`run_example_gen_driver` runs that driver in the task before the executor.

The process exits 0 only after the executor output file is written and readable, and 1 with the
component's error (one line naming the executor, then the traceback) otherwise; a half-written
output file is removed so the launcher never records a failed task's outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Optional

import textops  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

LAUNCHER_PATHS_FLAG = "--launcher_local_paths"
# Where the launcher's local paths are rooted: "/" in a KFP pod. A replay of the launcher
# outside a pod (tests/kubeflow) roots them in a sandbox instead.
LOCAL_ROOT_ENV = "TEXTOPS_KFP_LOCAL_ROOT"
# launcher_v2.go LocalPathForURI: scheme -> local directory.
LAUNCHER_MOUNTS = (("gs://", "gcs"), ("minio://", "minio"), ("s3://", "s3"))
# Artifact types of the KFP SDK itself (system.Artifact, system.Metrics, ...): never TFX's.
FOREIGN_TYPE_PREFIX = "system."

MODULE = __name__


class EntrypointError(Exception):
    """What the launcher handed the task cannot be given to TFX; the message says why."""


def local_path_for_uri(uri: str, root: str = "/") -> Optional[str]:
    """The launcher's local path of a remote URI (``LocalPathForURI``), or None for other URIs."""
    for prefix, mount in LAUNCHER_MOUNTS:
        if uri.startswith(prefix):
            return os.path.join(root, mount, uri[len(prefix):])
    return None


def artifact_title(type_schema) -> Optional[str]:
    """The type title of an ``ArtifactTypeSchema``; None when it is empty (as the launcher sends it)."""
    import yaml

    kind = type_schema.WhichOneof("kind")
    if kind == "schema_title":
        return type_schema.schema_title or None
    if kind == "instance_schema":
        data = yaml.safe_load(type_schema.instance_schema) if type_schema.instance_schema.strip() else None
        return data.get("title") if isinstance(data, dict) else None
    return None


def fill_input_types(executor_input, inputs_spec) -> list[str]:
    """Gives every input artifact without a type the type its task declares; returns the keys filled."""
    filled = []
    for key, artifact_list in executor_input.inputs.artifacts.items():
        for artifact in artifact_list.artifacts:
            if artifact_title(artifact.type) is not None:
                continue
            declared = inputs_spec.artifacts.get(key) if inputs_spec is not None else None
            if declared is None or artifact_title(declared.artifact_type) is None:
                raise EntrypointError(
                    f"input artifact {key!r} arrived without a type and the task's inputs spec does not declare "
                    "one; compile the job again with `textops compile` (pipeline spec schema 2.1 carries "
                    "--json_serialized_inputs_spec_args)"
                )
            artifact.type.CopyFrom(declared.artifact_type)
            filled.append(key)
    return filled


def split_foreign_outputs(executor_input) -> dict:
    """Removes the outputs TFX did not declare (``system.*`` types such as the launcher's
    ``executor-logs``) from the executor input and returns them, as they were."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    foreign = {}
    for key in list(executor_input.outputs.artifacts):
        artifact_list = executor_input.outputs.artifacts[key]
        titles = [artifact_title(a.type) or "" for a in artifact_list.artifacts]
        if titles and all(t.startswith(FOREIGN_TYPE_PREFIX) for t in titles):
            kept = pipeline_spec_pb2.ArtifactList()
            kept.CopyFrom(artifact_list)
            foreign[key] = kept
            del executor_input.outputs.artifacts[key]
    return foreign


def localize_artifacts(executor_input, root: str = "/") -> dict[str, list[str]]:
    """Points every input and output artifact on gs://, minio:// or s3:// at the launcher's local
    path; returns the remote URIs of the outputs (by key, in order) for the executor output."""
    for artifact_list in executor_input.inputs.artifacts.values():
        for artifact in artifact_list.artifacts:
            local = local_path_for_uri(artifact.uri, root)
            if local is not None:
                artifact.uri = local
    remote: dict[str, list[str]] = {}
    for key, artifact_list in executor_input.outputs.artifacts.items():
        remote[key] = []
        for artifact in artifact_list.artifacts:
            remote[key].append(artifact.uri)
            local = local_path_for_uri(artifact.uri, root)
            if local is not None:
                artifact.uri = local
    return remote


def is_file_based_example_gen(executor_class_path: str) -> bool:
    from tfx.components.example_gen import base_example_gen_executor
    from tfx.utils import import_utils

    cls = import_utils.import_class_by_path(executor_class_path)
    return issubclass(cls, base_example_gen_executor.BaseExampleGenExecutor)


def run_example_gen_driver(executor_input, inputs_spec) -> bool:
    """Runs TFX's file-based ExampleGen driver (span, version, fingerprint, resolved split
    patterns) unless a driver already wrote the task's output file (Vertex's preCacheCheck).
    The executor entrypoint reads the driver's results from that file, as on Vertex."""
    from tfx.dsl.io import fileio
    from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver

    if fileio.exists(executor_input.outputs.output_file):
        return False
    driver._run_driver(executor_input, inputs_spec)  # pylint: disable=protected-access
    return True


def finalize_executor_output(output_file: str, remote_uris: dict[str, list[str]], foreign: dict) -> None:
    """Rewrites the executor output TFX wrote: remote URIs back in place of local paths, and the
    foreign outputs passed through untouched. Written to a temporary file and renamed."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.dsl.io import fileio

    if not fileio.exists(output_file):
        raise EntrypointError(f"the executor finished but wrote no executor output at {output_file}")
    output = pipeline_spec_pb2.ExecutorOutput()
    with fileio.open(output_file, "rb") as f:
        json_format.Parse(f.read(), output, ignore_unknown_fields=True)
    for key, uris in remote_uris.items():
        if key not in output.artifacts:
            continue
        artifacts = output.artifacts[key].artifacts
        if len(artifacts) != len(uris):
            raise EntrypointError(
                f"output {key!r}: the executor reported {len(artifacts)} artifact(s) for {len(uris)} provisioned"
            )
        for artifact, uri in zip(artifacts, uris):
            artifact.uri = uri
    for key, artifact_list in foreign.items():
        output.artifacts[key].CopyFrom(artifact_list)
    tmp = f"{output_file}.textops-tmp"
    with fileio.open(tmp, "wb") as f:
        f.write(json_format.MessageToJson(output).encode("utf-8"))
    fileio.rename(tmp, output_file, overwrite=True)


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", allow_abbrev=False)
    parser.add_argument(LAUNCHER_PATHS_FLAG, action="store_true",
                        help="read and write artifacts through the open-source KFP launcher's local paths")
    parser.add_argument("--executor_class_path", required=True)
    parser.add_argument("--json_serialized_invocation_args", required=True)
    parser.add_argument("--json_serialized_inputs_spec_args", default=None)
    return parser.parse_known_args(argv)


def _executor_input(args: argparse.Namespace):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(args.json_serialized_invocation_args, executor_input, ignore_unknown_fields=True)
    return executor_input


def run(args: argparse.Namespace, beam_args: list[str], executor_input) -> None:
    """Prepares the executor input, runs TFX's executor entrypoint on it, finalizes its output."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    inputs_spec = None
    if args.json_serialized_inputs_spec_args:
        inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
        json_format.Parse(args.json_serialized_inputs_spec_args, inputs_spec, ignore_unknown_fields=True)

    fill_input_types(executor_input, inputs_spec)
    foreign = split_foreign_outputs(executor_input)
    remote_uris: dict[str, list[str]] = {}
    if args.launcher_local_paths:
        remote_uris = localize_artifacts(executor_input, os.environ.get(LOCAL_ROOT_ENV, "/"))
    if is_file_based_example_gen(args.executor_class_path):
        run_example_gen_driver(executor_input, inputs_spec)

    tfx_args = argparse.Namespace(
        executor_class_path=args.executor_class_path,
        json_serialized_invocation_args=json_format.MessageToJson(executor_input),
        json_serialized_inputs_spec_args=args.json_serialized_inputs_spec_args,
    )
    kubeflow_v2_run_executor._run_executor(tfx_args, beam_args)  # pylint: disable=protected-access
    finalize_executor_output(executor_input.outputs.output_file, remote_uris, foreign)


def main(argv: Optional[list[str]] = None) -> int:
    args, beam_args = _parse(sys.argv[1:] if argv is None else argv)
    output_file = None
    try:
        executor_input = _executor_input(args)
        output_file = executor_input.outputs.output_file or None
        run(args, beam_args, executor_input)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001  (every failure must fail the task, with its cause)
        print(f"textops: task failed in {args.executor_class_path}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        traceback.print_exc()
        _remove_quietly(output_file)
        return 1
    return 0


def _remove_quietly(path: Optional[str]) -> None:
    if not path:
        return
    try:
        from tfx.dsl.io import fileio

        if fileio.exists(path):
            fileio.remove(path)
    except Exception as exc:  # noqa: BLE001  (already failing: say it, keep the original error)
        print(f"textops: could not remove the partial executor output {path}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
