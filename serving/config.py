"""Typed settings of the serving endpoint, loaded once at the entry point (YAML + CLI flags).

Example ``serving.yaml``::

    model_repository: /models
    port: 8501
    grpc_port: 8500
    models:
      textcls:
        version_policy: specific     # latest | all | specific
        versions: [1700000000, 1700003600]
        labels: {stable: 1700000000, canary: 1700003600}
    batching: {enabled: true, max_batch_size: 64, max_wait_ms: 0.0, max_queue: 512}
    limits: {max_body_bytes: 1048576, max_instances: 256}
    connections: {header_timeout_s: 10, body_timeout_s: 30, keepalive_timeout_s: 75, max_connections: 1024}
    repository: {settle_s: 2.0, load_retries: 5, load_retry_interval_s: 2.0}
    prediction_log: {directory: /logs/predictions, sample_rate: 1.0, max_file_bytes: 67108864}
    pool: {resources: {cpu: 4}}      # what model executions draw on (default: cpu = usable cores)

Per model, next to its version policy: ``priority`` (1 highest), ``queue`` (max_queue,
timeout_ms, allow_timeout_override, on_full) and ``instances`` (min, max, resources,
scale_up_after_ms, idle_s, unload_after_s); see docs/serving.md for a worked example.

The bearer token is never read from the file: it comes from the environment variable named by
``auth_token_env`` (default ``TEXTOPS_SERVING_TOKEN``), so the config can be committed. Auth is on
when that variable holds a token; a variable that is set but empty is a start-up error (a typo in
a Secret must not turn auth off) unless ``auth: off`` says so explicitly.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from textops.config import ConfigError, load_model  # noqa: F401 - ConfigError: what load_config raises


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def inference_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def gpu_memory_mib() -> Optional[int]:
    """Memory of the first NVIDIA GPU in MiB (``nvidia-smi``), or None when there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    values = [int(v) for v in out.stdout.split() if v.isascii() and v.isdigit()] if out.returncode == 0 else []
    return values[0] if values else None


class QueuePolicy(_Strict):
    """One model's queue (Triton's ``default_queue_policy``): its size, deadlines, what a full queue does."""

    # Texts waiting for this model; None: batching.max_queue.
    max_queue: Optional[int] = Field(None, ge=1)
    # Default deadline of a request, from its arrival; a request still queued past it is answered
    # 504 (gRPC DEADLINE_EXCEEDED) and never run. None: no deadline.
    timeout_ms: Optional[float] = Field(None, gt=0.0, le=3_600_000.0)
    # Whether a request may set its own deadline (HTTP header X-Request-Timeout-Ms, v2
    # parameters.timeout in microseconds as Triton reads it, the gRPC deadline).
    allow_timeout_override: bool = True
    # reject: the new request gets 429 at once. drop_oldest: the oldest queued request gets 429
    # and the new one is queued (fresh requests win when clients give up on old ones).
    on_full: Literal["reject", "drop_oldest"] = "reject"


class InstancesConfig(_Strict):
    """How many executions of one model may run at once, what each draws from the pool, and how
    that number follows the load (Triton's instance group + rate limiter)."""

    min: int = Field(1, ge=1, description="instances kept however idle the model is")
    # None: batching.workers. More than min: instances are added while the model has a backlog
    # and the pool has free resources, and stopped again once idle.
    max: Optional[int] = Field(None, ge=1, le=64)
    # What one running execution holds from the pool (names must be pool.resources keys).
    resources: dict[str, int] = Field(default_factory=lambda: {"cpu": 1})
    scale_up_after_ms: float = Field(20.0, ge=0.0, le=60_000.0, description="backlog this long with every instance busy adds one")
    idle_s: float = Field(5.0, gt=0.0, le=86_400.0, description="an instance unused this long is stopped (down to min)")
    # The model unloaded after this long without a request, and loaded again by the next
    # request (which waits for the load). None: never unloaded.
    unload_after_s: Optional[float] = Field(None, gt=0.0, le=7 * 86_400.0)

    @model_validator(mode="after")
    def _check(self) -> "InstancesConfig":
        if self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        for name, count in self.resources.items():
            if count < 0:
                raise ValueError(f"resources.{name} is {count}; an instance holds zero or more of a resource")
        return self


class PoolConfig(_Strict):
    """The resources every model's executions draw on (Triton's rate-limiter resources)."""

    # Named counts, e.g. {cpu: 4, gpu_memory_mib: 16000}. Default: {cpu: the cores this process may
    # use}, plus {gpu_memory_mib: the first GPU's memory} when nvidia-smi reports a GPU.
    resources: dict[str, int] = Field(default_factory=dict)
    # Threads that run model calls, shared by every model; None: the most executions the pool
    # and the models' instances allow at once.
    threads: Optional[int] = Field(None, ge=1, le=256)

    @model_validator(mode="after")
    def _check(self) -> "PoolConfig":
        for name, count in self.resources.items():
            if not name or not name.replace("_", "").isalnum():
                raise ValueError(f"resource name {name!r} must be letters, digits or '_'")
            if count < 1:
                raise ValueError(f"resources.{name} is {count}; a pool resource has a count of at least 1")
        return self

    def capacity(self) -> dict[str, int]:
        """The configured resources, else {cpu: usable cores} plus gpu_memory_mib of the first GPU when there is one."""
        if self.resources:
            return dict(self.resources)
        pool = {"cpu": inference_cores()}
        gpu = gpu_memory_mib()
        if gpu:
            pool["gpu_memory_mib"] = gpu
        return pool


class ModelPolicy(_Strict):
    """Which versions of one model are served, the labels that name some of them, and how the
    model shares the server: its priority, its queue and its instances."""

    # Triton's convention: 1 is the highest; a model at priority p gets 1/p of the executions of
    # a priority-1 model while both have work (no model ever starves).
    priority: int = Field(1, ge=1, le=100)
    queue: QueuePolicy = Field(default_factory=QueuePolicy)
    instances: InstancesConfig = Field(default_factory=InstancesConfig)
    version_policy: Literal["latest", "all", "specific"] = "latest"
    # latest: the newest ``num_latest`` versions; specific: exactly ``versions``.
    num_latest: int = Field(1, ge=1)
    versions: list[int] = Field(default_factory=list)
    labels: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "ModelPolicy":
        if self.version_policy == "specific" and not self.versions:
            raise ValueError("version_policy 'specific' needs a non-empty 'versions' list")
        if self.version_policy != "specific" and self.versions:
            raise ValueError("'versions' is only used with version_policy 'specific'")
        for label, version in self.labels.items():
            if not label or not label.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"label {label!r} must be letters, digits, '-' or '_'")
            if version <= 0:
                raise ValueError(f"label {label!r} points at version {version}; versions are positive integers")
        return self


class BatchingConfig(_Strict):
    """Dynamic batching. ``enabled: false`` runs one model call per request (no coalescing)."""

    enabled: bool = True
    max_batch_size: int = Field(64, ge=1, description="most texts in one model call")
    # How long a batch may wait for more requests while the model is idle. 0: a batch is formed
    # from whatever is queued the moment the model is free (batches still grow under load,
    # because requests queue up while the model runs the previous batch).
    max_wait_ms: float = Field(0.0, ge=0.0, le=1000.0)
    max_queue: int = Field(512, ge=1, description="most texts waiting per model; past it: 429 at once")
    workers: int = Field(1, ge=1, le=16, description="model calls in flight per model")
    # Requests admitted per model and not yet answered; past it a request gets 429 before its
    # body is read. None: max_queue (every request carries at least one text).
    max_inflight: Optional[int] = Field(None, ge=1)

    @property
    def inflight_limit(self) -> int:
        return self.max_inflight if self.max_inflight is not None else self.max_queue


class LimitsConfig(_Strict):
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_instances: int = Field(256, ge=1)
    max_text_bytes: int = Field(64 << 10, ge=1)


class ConnectionsConfig(_Strict):
    """HTTP connection hygiene (nginx's client_header_timeout / client_body_timeout / keepalive_timeout)."""

    # From the connection's start (or the first byte of its next request) until the request's
    # headers are complete: bounds slowloris clients and connections that never send a request.
    header_timeout_s: float = Field(10.0, gt=0.0, le=3600.0)
    # Once the headers are in, the whole body must arrive within this (a body that stops
    # short of its Content-Length, or a chunked body that never ends, gets 408).
    body_timeout_s: float = Field(30.0, gt=0.0, le=3600.0)
    # An idle keep-alive connection is closed after this. Longer than the 60 s idle timeout of
    # common load balancers, so the balancer, not the server, closes idle connections.
    keepalive_timeout_s: float = Field(75.0, gt=0.0, le=3600.0)
    max_connections: int = Field(1024, ge=1, description="open HTTP connections; past it a new one gets 503 and is closed")


class RepositoryConfig(_Strict):
    """How versions are picked up (TF Serving: file_system_poll_wait_seconds, max_num_load_retries)."""

    # A version is loaded only once its files (names, sizes, mtimes) have not changed for this
    # long, so a version copied file by file (rsync, gsutil cp) is not loaded half-written.
    settle_s: float = Field(2.0, ge=0.0, le=600.0)
    load_retries: int = Field(5, ge=0, le=100, description="retries of a failed load before it is reported failed")
    load_retry_interval_s: float = Field(2.0, gt=0.0, le=600.0, description="first retry delay; doubles, at most 60 s")


class PredictionLogConfig(_Strict):
    directory: Optional[Path] = None  # None: no prediction log
    sample_rate: float = Field(1.0, ge=0.0, le=1.0, description="fraction of requests logged")
    max_file_bytes: int = Field(64 << 20, ge=1024, description="rotate (and gzip) past this size")
    queue_size: int = Field(100_000, ge=1, description="records buffered for the writer; past it they are dropped and counted")


class ServerConfig(_Strict):
    model_repository: Path
    host: str = "127.0.0.1"
    port: int = Field(8501, ge=0, le=65535)
    grpc_port: int = Field(8500, ge=0, le=65535, description="0: no gRPC server")
    # Models to serve; an empty mapping serves every model in the repository (latest version).
    models: dict[str, ModelPolicy] = Field(default_factory=dict)
    poll_interval_s: float = Field(2.0, gt=0.0)
    warmup_texts: int = Field(8, ge=1, description="sample inputs when a version has no warmup records")
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    prediction_log: PredictionLogConfig = Field(default_factory=PredictionLogConfig)
    connections: ConnectionsConfig = Field(default_factory=ConnectionsConfig)
    repository: RepositoryConfig = Field(default_factory=RepositoryConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    # After SIGTERM: how long queued and running requests may take to finish (the Deployment's
    # preStop delay + this must fit in its terminationGracePeriodSeconds; a test checks it).
    drain_timeout_s: float = Field(20.0, gt=0.0, le=600.0)
    auth_token_env: str = "TEXTOPS_SERVING_TOKEN"
    # on: the token variable must hold a token; off: no auth whatever the variable holds;
    # None (default): on when the variable is set. Set-but-empty is an error unless off.
    auth: Optional[Literal["on", "off"]] = None
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _check(self) -> "ServerConfig":
        if self.limits.max_instances > self.batching.max_queue:
            raise ValueError(
                f"limits.max_instances ({self.limits.max_instances}) must not exceed batching.max_queue "
                f"({self.batching.max_queue}): a request that large could never be queued"
            )
        capacity = self.pool.capacity()
        for name, policy in self.models.items():
            where = f"models.{name}"
            if policy.queue.max_queue is not None and self.limits.max_instances > policy.queue.max_queue:
                raise ValueError(
                    f"{where}.queue.max_queue ({policy.queue.max_queue}) is smaller than limits.max_instances "
                    f"({self.limits.max_instances}): a request that large could never be queued"
                )
            self._check_instances(policy.instances, capacity, f"{where}.instances")
        if not self.models:
            self._check_instances(InstancesConfig(), capacity, "the default model instance")
        return self

    def _check_instances(self, instances: "InstancesConfig", capacity: dict[str, int], where: str) -> None:
        for resource, count in instances.resources.items():
            if resource not in capacity:
                raise ValueError(
                    f"{where}.resources.{resource}: no such resource in pool.resources "
                    f"({', '.join(sorted(capacity))}); add it there or fix the name"
                )
            if count > capacity[resource]:
                raise ValueError(
                    f"{where}.resources.{resource} is {count}, more than the pool has ({capacity[resource]}): "
                    f"the model could never run"
                )

    def max_instances(self, model_name: str) -> int:
        instances = self.policy(model_name).instances
        return instances.max if instances.max is not None else max(instances.min, self.batching.workers)

    def queue_limit(self, model_name: str) -> int:
        """The most texts that may wait for the model (its queue policy, else batching.max_queue)."""
        limit = self.policy(model_name).queue.max_queue
        return limit if limit is not None else self.batching.max_queue

    def auth_token(self) -> Optional[str]:
        """The bearer token clients must send, or None when auth is off; ConfigError if ambiguous."""
        if self.auth == "off":
            return None
        token = os.environ.get(self.auth_token_env)
        if token is None:
            if self.auth == "on":
                raise ConfigError(f"auth is 'on' but the variable {self.auth_token_env} is not set: set it to the bearer token")
            return None
        if not token.strip():
            raise ConfigError(
                f"the variable {self.auth_token_env} is set but empty, which would turn auth off: set it to the bearer "
                f"token, or set 'auth: off' in the serving config to run without auth"
            )
        return token

    def policy(self, model_name: str) -> ModelPolicy:
        return self.models.get(model_name) or ModelPolicy()


def load_config(path: Optional[Path] = None, overrides: Sequence[str] = (), **flags: Any) -> ServerConfig:
    """Reads ``path`` (YAML) if given, applies ``overrides`` (``--set KEY=VALUE``) and then
    ``flags`` (command-line values, dotted keys; None = not given). ``models=[...]`` serves only
    those models (keeping their policies from the file)."""
    models = flags.pop("models", None)
    cfg = load_model(
        ServerConfig, path, overrides, flags, what="serving config",
        title="invalid serving config", unknown_hint="see docs/serving.md for every valid key",
    )
    if models:
        cfg = cfg.model_copy(update={"models": {name: cfg.models.get(name) or ModelPolicy() for name in models}})
    return cfg
