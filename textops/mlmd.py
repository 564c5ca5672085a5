"""Reading runs back from the ML Metadata store (what ran, what was cached, what it produced)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

_STATES = {
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


@dataclasses.dataclass
class ArtifactRecord:
    id: int
    uri: str
    type: str
    properties: dict

    def prop(self, name: str, default=None):
        return self.properties.get(name, default)


@dataclasses.dataclass
class ExecutionRecord:
    node_id: str
    state: str
    seconds: float
    outputs: dict[str, list[ArtifactRecord]]


@dataclasses.dataclass
class RunRecord:
    run_id: str
    pipeline_name: str
    create_time_ms: int
    executions: dict[str, ExecutionRecord]

    def output(self, node_id: str, key: str) -> Optional[ArtifactRecord]:
        execution = self.executions.get(node_id)
        if not execution or not execution.outputs.get(key):
            return None
        return execution.outputs[key][0]


def _value(v: metadata_store_pb2.Value):
    kind = v.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(v.struct_value)
    return getattr(v, kind) if kind else None


def connect_sqlite(path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def list_runs(store: metadata_store.MetadataStore, pipeline_name: str) -> list[RunRecord]:
    """Every run of ``pipeline_name``, oldest first."""
    contexts = store.get_contexts_by_type("pipeline_run")
    prefix_ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    runs = []
    for ctx in contexts:
        if prefix_ctx is not None:
            parents = store.get_parent_contexts_by_context(ctx.id)
            if parents and all(p.id != prefix_ctx.id for p in parents):
                continue
        runs.append(_run_record(store, ctx, pipeline_name))
    return sorted(runs, key=lambda r: r.create_time_ms)


def latest_run(store: metadata_store.MetadataStore, pipeline_name: str) -> Optional[RunRecord]:
    runs = list_runs(store, pipeline_name)
    return runs[-1] if runs else None


def _run_record(store, ctx, pipeline_name: str) -> RunRecord:
    executions = store.get_executions_by_context(ctx.id)
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    records: dict[str, ExecutionRecord] = {}
    for execution in executions:
        node_id = _node_id(store, execution, pipeline_name)
        outputs: dict[str, list[ArtifactRecord]] = {}
        events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type == metadata_store_pb2.Event.OUTPUT]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else "output"
            art = artifacts.get(event.artifact_id)
            if art is None:
                continue
            props = {k: _value(v) for k, v in art.custom_properties.items()}
            props.update({k: _value(v) for k, v in art.properties.items()})
            outputs.setdefault(key, []).append(ArtifactRecord(art.id, art.uri, type_names.get(art.type_id, ""), props))
        seconds = max(0.0, (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0)
        records[node_id] = ExecutionRecord(node_id, _STATES.get(execution.last_known_state, "unknown"), seconds, outputs)
    return RunRecord(ctx.name, pipeline_name, ctx.create_time_since_epoch, records)


def _node_id(store, execution, pipeline_name: str) -> str:
    for ctx in store.get_contexts_by_execution(execution.id):
        if ctx.name.startswith(pipeline_name + ".") and ctx.type_id != 0:
            return ctx.name[len(pipeline_name) + 1 :]
    return str(execution.id)
