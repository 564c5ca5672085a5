"""Versions: watch the model repository, load and warm new versions, swap them in atomically.

A background thread polls the repository. A version directory is a candidate once its name is
a version (ASCII digits, 1..2**63-1; anything else is skipped with one warning), it holds
``saved_model.pb`` and ``variables/variables.index``, and its files (names, sizes, mtimes) have
not changed for ``repository.settle_s`` (so a version copied file by file, as rsync or gsutil
do, is not loaded half-written). A directory that cannot be read is reported (one warning,
``textops_serving_version_not_loaded{reason="unreadable"}``), never a failure of the poll.
For each served model it computes the versions
the policy wants (latest N / all / specific) among those that have not failed, loads and warms
up the missing ones *before* they are visible, then replaces the model's table of servable
versions with one assignment. Requests resolve a version from that table once, so an in-flight
request keeps the runtime it started with. A version that fails to load or warm up is recorded
after ``repository.load_retries`` retries with doubling delays (TF Serving retries 5 times):
state END with its error, ``textops_serving_load_failures_total``, an ERROR log line; it is
never served and the previous version keeps serving. Until then it is LOADING with the last
error. It gets a new round of attempts when its files change.
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
from .errors import InvalidInput, NotFound, Unavailable, shorten
from .metrics import ServingMetrics
from .ratelimit import RateLimitedLog
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
class _Candidate:
    """A version directory on disk that is not served (yet): what it looked like, since when."""

    path: str
    signature: tuple = ()
    since: float = 0.0
    reason: str = ""  # why it is not loaded: settling | incomplete | unreadable | retrying | load_failed
    detail: str = ""
    attempts: int = 0
    retry_at: float = 0.0


@dataclasses.dataclass
class _Model:
    name: str
    policy: ModelPolicy
    servable: dict[int, ModelRuntime] = dataclasses.field(default_factory=dict)  # replaced, never mutated
    status: dict[int, VersionStatus] = dataclasses.field(default_factory=dict)
    candidates: dict[int, _Candidate] = dataclasses.field(default_factory=dict)
    invalid_names: set[str] = dataclasses.field(default_factory=set)  # warned about once
    unreadable_served: set[int] = dataclasses.field(default_factory=set)
    unloaded: bool = False  # unloaded after instances.unload_after_s idle; loaded again on demand
    trusted: set[int] = dataclasses.field(default_factory=set)  # served before the unload: no settling wait
    sync_lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)  # one sync at a time


_REQUIRED_FILES = ("saved_model.pb", "variables/variables.index")


def _inspect(path: str) -> tuple[str, tuple, str]:
    """(state, signature, detail) of one version directory: state ready | incomplete | unreadable."""
    import tensorflow as tf

    try:
        tf.io.gfile.listdir(path)  # raises on a directory we may not read (gfile.walk would not)
        files = []

        def fail(exc):
            raise exc

        for root, _, names in tf.io.gfile.walk(path, onerror=fail):
            for name in names:
                full = os.path.join(root, name)
                stat = tf.io.gfile.stat(full)
                files.append((os.path.relpath(full, path), stat.length, stat.mtime_nsec))
    except (tf.errors.OpError, OSError) as exc:
        return "unreadable", (), f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    present = {f[0] for f in files}
    missing = [f for f in _REQUIRED_FILES if f not in present]
    if missing:
        return "incomplete", tuple(sorted(files)), f"missing {', '.join(missing)}"
    return "ready", tuple(sorted(files)), ""


def parse_version(text: str) -> int:
    """A version from a URL or a request: ASCII digits within int64 (TF Serving's version type)."""
    version = model_repository.version_from_name(text)
    if version is None:
        raise InvalidInput(
            f"version must be a positive integer of ASCII digits no larger than {model_repository.MAX_VERSION}, got {shorten(text)}"
        )
    return version


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
        self._poll_errors = RateLimitedLog(log, 60.0)
        self._clock = time.monotonic

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
                self._poll_errors.log(logging.ERROR, "polling the model repository %s failed", self.repository, exc_info=True)
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

    def _desired(self, model: _Model, loadable: set[int]) -> list[int]:
        candidates = sorted(loadable)
        policy = model.policy
        if policy.version_policy == "latest":
            return candidates[-policy.num_latest :]
        if policy.version_policy == "all":
            return candidates
        return [v for v in candidates if v in set(policy.versions)]

    def _scan(self, model: _Model) -> dict[int, str]:
        """Valid version directories on disk (version -> path); invalid names warned about once."""
        import tensorflow as tf

        base = model_repository.model_dir(self.repository, model.name)
        try:
            entries = [e.rstrip("/") for e in tf.io.gfile.listdir(base)] if tf.io.gfile.isdir(base) else []
        except (tf.errors.OpError, OSError) as exc:
            self._poll_errors.log(logging.ERROR, "cannot list %s: %s; keeping the versions already served", base, exc)
            return {v: m.path for v, m in model.servable.items()}
        found: dict[int, str] = {}
        invalid = set()
        for name in entries:
            if name.startswith("."):  # staging directories, editor files
                continue
            version = model_repository.version_from_name(name)
            if version is None:
                invalid.add(name)
                if name not in model.invalid_names:
                    log.warning(
                        "model %s: skipping %s: a version directory is named by a positive integer of ASCII digits "
                        "no larger than %d", model.name, shorten(name), model_repository.MAX_VERSION,
                        extra={"model": model.name, "event": "invalid_version_dir"},
                    )
                continue
            found[version] = os.path.join(base, name) if "://" not in base else f"{base}/{name}"
        model.invalid_names = invalid
        self.metrics.invalid_version_dirs.labels(model.name).set(len(invalid))
        return found

    def _loadable(self, model: _Model, on_disk: dict[int, str]) -> set[int]:
        """Served versions still on disk, plus candidates that are complete, settled and due a try."""
        now = self._clock()
        settle = self.config.repository.settle_s
        for version in list(model.candidates):
            if version not in on_disk or version in model.servable:
                self._set_reason(model, version, None)
                del model.candidates[version]
        loadable = {v for v in model.servable if v in on_disk}
        for version, path in on_disk.items():
            if version in model.servable:
                self._check_served_readable(model, version, path)
                continue
            if version in model.trusted:  # served until its model was unloaded while idle
                loadable.add(version)
                continue
            state, signature, detail = _inspect(path)
            cand = model.candidates.get(version)
            if cand is None or cand.signature != signature:  # new, or its files changed: start over
                if cand is not None:
                    self._set_reason(model, version, None)  # drop the old reason's gauge
                # settled since the newest file was written (as far as mtimes tell), else from now
                newest = max((f[2] for f in signature), default=0) / 1e9
                age = max(0.0, min(time.time() - newest, settle)) if cand is None else 0.0
                cand = model.candidates[version] = _Candidate(path, signature, now - age)
            if state != "ready":
                self._set_reason(model, version, state, detail)
            elif cand.reason in ("retrying", "load_failed"):
                if cand.reason == "retrying" and now >= cand.retry_at:
                    loadable.add(version)
            elif now - cand.since < settle:
                self._set_reason(model, version, "settling", f"files changed less than {settle:g} s ago")
            else:
                loadable.add(version)
        return loadable

    def _check_served_readable(self, model: _Model, version: int, path: str) -> None:
        import tensorflow as tf

        try:
            tf.io.gfile.listdir(path)
        except (tf.errors.OpError, OSError) as exc:
            if version not in model.unreadable_served:
                model.unreadable_served.add(version)
                log.warning(
                    "model %s version %d: its directory became unreadable (%s); the loaded copy keeps serving",
                    model.name, version, getattr(exc, "message", None) or exc,
                    extra={"model": model.name, "version": version, "event": "version_unreadable"},
                )
            return
        model.unreadable_served.discard(version)

    def _set_reason(self, model: _Model, version: int, reason: Optional[str], detail: str = "") -> None:
        """Records (metric, one log line per change) why an on-disk version is not served."""
        cand = model.candidates.get(version)
        old = cand.reason if cand is not None else ""
        if old == (reason or ""):
            return
        if old:
            try:
                self.metrics.version_not_loaded.remove(model.name, str(version), old)
            except KeyError:
                pass
        if cand is None or reason is None:
            return
        cand.reason, cand.detail = reason, detail
        self.metrics.version_not_loaded.labels(model.name, str(version), reason).set(1)
        level = logging.WARNING if reason == "unreadable" else logging.INFO
        log.log(
            level, "model %s version %d is not loaded (%s): %s", model.name, version, reason, detail,
            extra={"model": model.name, "version": version, "event": "version_not_loaded", "reason": reason},
        )

    def _sync_model(self, model: _Model) -> None:
        with model.sync_lock:
            if not model.unloaded:
                self._sync_model_locked(model)

    def _sync_model_locked(self, model: _Model) -> None:
        on_disk = self._scan(model)
        loadable = self._loadable(model, on_disk)
        loaded: dict[int, ModelRuntime] = {}
        while True:
            desired = self._desired(model, loadable)
            missing = [v for v in desired if v not in model.servable and v not in loaded]
            if not missing:
                break
            for version in sorted(missing, reverse=True):  # newest first
                runtime = self._load(model, version, on_disk[version])
                if runtime is not None:
                    loaded[version] = runtime
                else:
                    loadable.discard(version)
        desired = self._desired(model, loadable)
        new_table = {v: (model.servable.get(v) or loaded[v]) for v in desired if v in model.servable or v in loaded}
        for version in loaded:
            self._set_reason(model, version, None)
            model.candidates.pop(version, None)
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
            self._load_failed(model, version, exc)
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

    def _load_failed(self, model: _Model, version: int, exc: LoadError) -> None:
        """A failed attempt: retried later with a doubling delay, or given up on (reported)."""
        cand = model.candidates.setdefault(version, _Candidate(""))
        cand.attempts += 1
        public = str(exc).replace(self.repository.rstrip("/") + "/", "")  # clients see repo-relative paths
        retries = self.config.repository.load_retries
        self.metrics.load_attempt_failures.labels(model.name, str(version)).inc()
        extra = {"model": model.name, "version": version, "attempt": cand.attempts}
        if cand.attempts <= retries:
            delay = min(60.0, self.config.repository.load_retry_interval_s * 2 ** (cand.attempts - 1))
            cand.retry_at = self._clock() + delay
            with self._lock:
                model.status[version] = VersionStatus(version, LOADING, f"attempt {cand.attempts} failed: {public}; retrying in {delay:g} s")
            self._set_reason(model, version, "retrying", f"attempt {cand.attempts} of {retries + 1} failed: {exc}; next in {delay:g} s")
            return
        with self._lock:
            model.status[version] = VersionStatus(version, END, public)
        self.metrics.load_failures.labels(model.name, str(version)).inc()
        self._set_reason(model, version, "load_failed", str(exc))
        log.error(
            "model %s version %d will not be served (%d attempts): %s", model.name, version, cand.attempts, exc,
            extra={**extra, "event": "load_failed"},
        )

    # -- unload on idle, reload on demand (driven by the scheduler through the data plane) -----
    def unload(self, name: str) -> None:
        """Drops the model's loaded versions (their memory goes with the last running call);
        status END with a message saying it loads again on the next request."""
        model = self._models.get(name)
        if model is None:
            return
        with model.sync_lock:
            if model.unloaded or not model.servable:
                return
            versions = sorted(model.servable)
            model.trusted = set(versions)
            model.unloaded = True
            model.servable = {}
            with self._lock:
                for v in versions:
                    model.status[v] = VersionStatus(v, END, "unloaded while idle (instances.unload_after_s); loads again on the next request")
                    try:
                        self.metrics.loaded_versions.remove(name, str(v))
                    except KeyError:
                        pass
        log.info("model %s unloaded after being idle (versions %s); the next request loads it again", name, versions,
                 extra={"model": name, "event": "unloaded_idle", "versions": versions})

    def reload(self, name: str) -> None:
        """Loads an unloaded model again (the caller waits); a no-op for a loaded one."""
        model = self._models.get(name)
        if model is None:
            return
        with model.sync_lock:
            if not model.unloaded:
                return
            model.unloaded = False
            start = time.perf_counter()
            try:
                self._sync_model_locked(model)
            finally:
                model.trusted = set()
        log.info("model %s loaded again on demand in %.2f s", name, time.perf_counter() - start,
                 extra={"model": name, "event": "reloaded"})

    def is_unloaded(self, name: str) -> bool:
        model = self._models.get(name)
        return model is not None and model.unloaded

    # -- lookups (any thread; lock-free reads of the swapped tables) --------------------------
    def is_known(self, name: str) -> bool:
        return name in self._models

    def served_models(self) -> list[str]:
        return sorted(self._models)

    def ready(self) -> bool:
        """Every served model has at least one servable version (after the first poll); a model
        unloaded while idle counts as ready, since its next request loads it (the model's own
        readiness says it is not loaded)."""
        if not self.initial_poll_done.is_set() or not self._models:
            return False
        return all(m.servable or m.unloaded for m in list(self._models.values()))

    def model_ready(self, name: str, version: Optional[int] = None) -> bool:
        model = self._models.get(name)
        if model is None:
            return False
        return bool(model.servable) if version is None else version in model.servable

    def _model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            served = ", ".join(self.served_models()) or "none yet"
            raise NotFound(f"model {shorten(name)} is not served here (served models: {served})")
        return model

    def resolve(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> ModelRuntime:
        model = self._model(name)
        table = model.servable  # one read: a concurrent swap cannot split this lookup
        if label is not None:
            if label not in model.policy.labels:
                known = ", ".join(sorted(model.policy.labels)) or "none configured"
                raise NotFound(f"label {shorten(label)} is not defined for model '{name}' (labels: {known})")
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
                raise NotFound(f"label {shorten(label)} is not defined for model '{name}' (labels: {known})")
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
