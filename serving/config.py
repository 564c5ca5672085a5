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

The bearer token is never read from the file: it comes from the environment variable named by
``auth_token_env`` (default ``TEXTOPS_SERVING_TOKEN``), so the config can be committed. Auth is on
when that variable holds a token; a variable that is set but empty is a start-up error (a typo in
a Secret must not turn auth off) unless ``auth: off`` says so explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from textops.config import ConfigError, load_model  # noqa: F401 - ConfigError: what load_config raises


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelPolicy(_Strict):
    """Which versions of one model are served, and the labels that name some of them."""

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
        return self

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
