"""``textops serve`` and ``textops predict``. TensorFlow is imported inside the commands only."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import click


@click.command()
@click.option(
    "--model-repository",
    type=click.Path(path_type=Path, file_okay=False),
    help="TF Serving layout <repo>/<model>/<version>/ (what the Pusher writes). Overrides the config file.",
)
@click.option("--port", type=int, help="HTTP port (TF Serving REST + KServe v2 + /metrics). Default 8501.")
@click.option("--grpc-port", type=int, help="TF Serving gRPC port; 0 disables gRPC. Default 8500.")
@click.option("--host", help="Address to bind. Default 127.0.0.1 (set 0.0.0.0 in a container).")
@click.option("--model", "models", multiple=True, help="Serve only this model (repeatable). Default: every model in the repository.")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), help="YAML serving config (policies, labels, batching, limits, prediction log).")
@click.option("--prediction-log", type=click.Path(path_type=Path, file_okay=False), help="Directory for the prediction log (JSON Lines, rotated, gzipped).")
@click.option("--no-batching", is_flag=True, help="One model call per request (for comparison).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one config key, e.g. --set batching.max_batch_size=64 (repeatable; values are YAML).")
def serve(
    model_repository: Optional[Path],
    port: Optional[int],
    grpc_port: Optional[int],
    host: Optional[str],
    models: tuple[str, ...],
    config: Optional[Path],
    prediction_log: Optional[Path],
    no_batching: bool,
    overrides: tuple[str, ...] = (),
) -> None:
    """Serve the models of a model repository over TF Serving REST/gRPC and KServe v2.

    Watches the repository: new versions are loaded and warmed up in the background, then
    swapped in atomically; a version that fails to load is never served. Health:
    /v2/health/live, /v2/health/ready. Metrics: /metrics. Stop with SIGTERM/Ctrl-C (graceful).
    Bearer-token auth is on when the variable named by auth_token_env (default
    TEXTOPS_SERVING_TOKEN) is set; set but empty is an error unless the config says 'auth: off'.

    Models share one resource pool and scheduler (config 'pool: {resources: {cpu: N}}'); per
    model: 'priority' (1 highest; priority p gets 1/p of the executions of priority 1 while they
    contend), 'queue' (max_queue, timeout_ms deadline, on_full: reject | drop_oldest) and
    'instances' (min, max, resources, idle_s, unload_after_s). See docs/serving.md.
    """
    from textops.serving.config import ConfigError, load_config

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        cfg = load_config(
            config,
            overrides,
            model_repository=model_repository,
            port=port,
            grpc_port=grpc_port,
            host=host,
            models=list(models) or None,
            **{"prediction_log.directory": prediction_log, "batching.enabled": False if no_batching else None},
        )
        cfg.auth_token()  # a token variable that is set but empty stops here, before anything starts
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if not cfg.model_repository.is_dir():
        raise click.UsageError(f"model repository {cfg.model_repository} is not a directory (the Pusher creates it on the first push)")
    import asyncio

    from textops.serving.server import configure_logging, serve_forever

    configure_logging(cfg)
    try:  # uvloop (a uvicorn dependency) makes the HTTP path ~2x cheaper when present
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve_forever(cfg))


@click.command()
@click.argument("texts", nargs=-1, required=True)
@click.option("--url", default="http://127.0.0.1:8501", show_default=True, help="Server URL; grpc://HOST:PORT uses gRPC.")
@click.option("--model", default="text_classifier", show_default=True, help="Model name.")
@click.option("--version", type=int, help="A specific version (default: the latest served).")
@click.option("--label", help="A version label from the server config, e.g. stable or canary.")
@click.option("--retries", default=5, show_default=True, help="Retries on 429/503 with exponential backoff.")
@click.option("--token-env", default="TEXTOPS_SERVING_TOKEN", show_default=True, help="Variable holding the bearer token, if any.")
def predict(texts: tuple[str, ...], url: str, model: str, version: Optional[int], label: Optional[str], retries: int, token_env: str) -> None:
    """Classify TEXTS with a running server; prints one JSON line per text."""
    from textops.serving.client import ClientError, ServingClient

    if version is not None and label is not None:
        raise click.UsageError("use --version or --label, not both")
    client = ServingClient(url, model=model, token=os.environ.get(token_env) or None, retries=retries)
    try:
        results = client.predict(list(texts), version=version, label=label)
    except ClientError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        client.close()
    for text, r in zip(texts, results):
        click.echo(json.dumps({"text": text, "label": r.label, "version": r.version, "probabilities": dict(zip(r.classes, r.probabilities))}, ensure_ascii=False))


COMMANDS = (serve, predict)
