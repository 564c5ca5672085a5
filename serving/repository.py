"""Versions: watch the model repository, load and warm new versions, swap them in atomically.

A background thread polls the repository (``textops.model_repository`` lists only complete
versions; staging directories are invisible). For each served model it computes the versions
the policy wants (latest N / all / specific) among those that have not failed, loads and warms
up the missing ones *before* they are visible, then replaces the model's table of servable
versions with one assignment. Requests resolve a version from that table once, so an in-flight
request keeps the runtime it started with. A version that fails to load or warm up is recorded
(state END with its error, ``textops_serving_load_failures_total``, an ERROR log line) and
never served; the previous version keeps serving. It is retried only if its ``saved_model.pb``
changes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Callable, Optional

from textops import model_repository

from .config import ModelPolicy, ServerConfig
from .errors import InvalidInput, NotFound, Unavailable
from .metrics import ServingMetrics
from .runtime import LoadError, ModelRuntime

log = logging.getLogger(__name__)

# TF Serving's ModelVersionStatus.State values.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass
class VersionStatus:
    version: int
    state: str
    error: str = ""  # empty: OK


@dataclasses.dataclass
class _Model:
    name: str
    policy: ModelPolicy
    servable: dict[int, ModelRuntime] = dataclasses.field(default_factory=dict)  # replaced, never mutated
    status: dict[int, VersionStatus] = dataclasses.field(default_factory=dict)
    failed: dict[int, float] = dataclasses.field(default_factory=dict)  # version -> saved_model.pb mtime


def _pb_mtime(path: str) -> float:
    try:
        return os.stat(os.path.join(path, "saved_model.pb")).st_mtime
    except OSError:
        return -1.0


def parse_version(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise InvalidInput(f"version must be a positive integer, got {text!r}")
    return int(text)


class ModelManager:
    def __init__(
        self,
        config: ServerConfig,
        metrics: ServingMetrics,
        on_swap: Optional[Callable[[str, list[int]], None]] = None,
    ):
        self.config = config
        self.repository = str(config.model_repository)
        self.metrics = metrics
        self.on_swap = on_swap
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()  # guards _models' structure and status maps
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.initial_poll_done = threading.Event()

    # -- background watcher ------------------------------------------------------------------
    def start(self) -> "ModelManager":
        self._thread = threading.Thread(target=self._watch, name="model-repository-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a transient repository error must not kill the watcher
                log.exception("polling the model repository %s failed", self.repository)
            self.initial_poll_done.set()
            self._stop.wait(self.config.poll_interval_s)

    def model_names(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        return model_repository.list_models(self.repository)

    def poll_once(self) -> None:
        for name in self.model_names():
            if self._stop.is_set():
                return
            with self._lock:
                model = self._models.get(name)
                if model is None:
                    model = self._models[name] = _Model(name, self.config.policy(name))
            self._sync_model(model)

    def _desired(self, model: _Model, on_disk: dict[int, str]) -> list[int]:
        candidates = sorted(v for v in on_disk if v not in model.failed)
        policy = model.policy
        if policy.version_policy == "latest":
            return candidates[-policy.num_latest :]
        if policy.version_policy == "all":
            return candidates
        return [v for v in candidates if v in set(policy.versions)]

    def _sync_model(self, model: _Model) -> None:
        on_disk = {v.version: v.path for v in model_repository.list_versions(self.repository, model.name)}
        for version, mtime in list(model.failed.items()):  # a replaced saved_model.pb gets a new try
            if version not in on_disk or _pb_mtime(on_disk[version]) != mtime:
                del model.failed[version]
        loaded: dict[int, ModelRuntime] = {}
        while True:
            desired = self._desired(model, on_disk)
            missing = [v for v in desired if v not in model.servable and v not in loaded]
            if not missing:
                break
            for version in sorted(missing, reverse=True):  # newest first
                runtime = self._load(model, version, on_disk[version])
                if runtime is not None:
                    loaded[version] = runtime
        desired = self._desired(model, on_disk)
        new_table = {v: (model.servable.get(v) or loaded[v]) for v in desired if v in model.servable or v in loaded}
        if set(new_table) == set(model.servable):
            return
        removed = sorted(set(model.servable) - set(new_table))
        model.servable = new_table  # the atomic swap: one reference assignment
        with self._lock:
            for v in new_table:
                model.status[v] = VersionStatus(v, AVAILABLE)
                self.metrics.loaded_versions.labels(model.name, str(v)).set(1)
            for v in removed:
                model.status[v] = VersionStatus(v, END)
                try:
                    self.metrics.loaded_versions.remove(model.name, str(v))
                except KeyError:
                    pass
        log.info(
            "model %s now serves versions %s",
            model.name,
            sorted(new_table),
            extra={"model": model.name, "versions": sorted(new_table), "unloaded": removed},
        )
        if self.on_swap is not None:
            self.on_swap(model.name, sorted(new_table))

    def _load(self, model: _Model, version: int, path: str) -> Optional[ModelRuntime]:
        with self._lock:
            model.status[version] = VersionStatus(version, LOADING)
        start = time.perf_counter()
        log.info("loading model %s version %d", model.name, version, extra={"model": model.name, "version": version})
        try:
            runtime = ModelRuntime(model.name, version, path).load()
            calls = runtime.warmup(self.config.warmup_texts)
        except LoadError as exc:
            model.failed[version] = _pb_mtime(path)
            public = str(exc).replace(self.repository.rstrip("/") + "/", "")  # clients see repo-relative paths
            with self._lock:
                model.status[version] = VersionStatus(version, END, public)
            self.metrics.load_failures.labels(model.name, str(version)).inc()
            log.error(
                "model %s version %d will not be served: %s",
                model.name,
                version,
                exc,
                extra={"model": model.name, "version": version, "event": "load_failed"},
            )
            return None
        self.metrics.loads.labels(model.name).inc()
        log.info(
            "loaded model %s version %d in %.2f s (warmup: %d calls from %s)",
            model.name,
            version,
            time.perf_counter() - start,
            calls,
            runtime.warmup_source,
            extra={"model": model.name, "version": version, "event": "loaded"},
        )
        return runtime

    # -- lookups (any thread; lock-free reads of the swapped tables) --------------------------
    def is_known(self, name: str) -> bool:
        return name in self._models

    def served_models(self) -> list[str]:
        return sorted(self._models)

    def ready(self) -> bool:
        """Every served model has at least one servable version (after the first poll)."""
        if not self.initial_poll_done.is_set() or not self._models:
            return False
        return all(m.servable for m in list(self._models.values()))

    def model_ready(self, name: str, version: Optional[int] = None) -> bool:
        model = self._models.get(name)
        if model is None:
            return False
        return bool(model.servable) if version is None else version in model.servable

    def _model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            served = ", ".join(self.served_models()) or "none yet"
            raise NotFound(f"model '{name}' is not served here (served models: {served})")
        return model

    def resolve(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> ModelRuntime:
        model = self._model(name)
        table = model.servable  # one read: a concurrent swap cannot split this lookup
        if label is not None:
            if label not in model.policy.labels:
                known = ", ".join(sorted(model.policy.labels)) or "none configured"
                raise NotFound(f"label '{label}' is not defined for model '{name}' (labels: {known})")
            version = model.policy.labels[label]
        if version is not None:
            runtime = table.get(version)
            if runtime is None:
                status = model.status.get(version)
                if status is not None and status.error:
                    raise NotFound(f"version {version} of model '{name}' failed to load and is not served")
                available = ", ".join(str(v) for v in sorted(table)) or "none"
                raise NotFound(f"version {version} of model '{name}' is not available (available: {available})")
            return runtime
        if not table:
            raise Unavailable(f"model '{name}' has no version loaded yet; retry shortly")
        return table[max(table)]

    def versions_status(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> list[VersionStatus]:
        model = self._model(name)
        if label is not None:
            if label not in model.policy.labels:
                known = ", ".join(sorted(model.policy.labels)) or "none configured"
                raise NotFound(f"label '{label}' is not defined for model '{name}' (labels: {known})")
            version = model.policy.labels[label]
        with self._lock:
            statuses = dict(model.status)
        if version is not None:
            if version not in statuses:
                raise NotFound(f"version {version} of model '{name}' is unknown to this server")
            return [statuses[version]]
        return [statuses[v] for v in sorted(statuses, reverse=True)]

    def servable_versions(self, name: str) -> list[int]:
        return sorted(self._model(name).servable)

    def labels(self, name: str) -> dict[str, int]:
        return dict(self._model(name).policy.labels)
