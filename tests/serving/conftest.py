"""Shared fixtures: real exported models (trained once per session) and real server processes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import textops  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import pytest
import yaml

MODEL = "text_classifier"


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from textops.pipelines.demo_data import generate

    return Path(generate(tmp_path_factory.mktemp("demo"), train_rows=600, test_rows=150))


@pytest.fixture(scope="session")
def test_texts(demo_data) -> list[str]:
    with open(demo_data / "test.csv", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


@pytest.fixture(scope="session")
def exported_models(demo_data, tmp_path_factory) -> dict[int, Path]:
    """Two real SavedModels with the pipeline's signatures, differing in their weights."""
    from textops.components import bare, training

    with open(demo_data / "train.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    out = tmp_path_factory.mktemp("exports")
    models = {}
    for version, (epochs, seed) in {1: (2, 42), 2: (3, 7)}.items():
        model = bare.train_bare(texts, labels, train_config=training.TrainConfig(epochs=epochs, seed=seed))
        models[version] = Path(model.export(str(out / f"v{version}")))
    return models


def make_repository(root: Path, exported: dict[int, Path], versions=(1,), name: str = MODEL) -> Path:
    from textops import model_repository

    repo = root / "repo"
    for v in versions:
        model_repository.publish_version(str(exported[v]), str(repo), name, version=v)
    return repo


def publish_corrupt(repo: Path, version: int, source: Path, name: str = MODEL) -> None:
    """A complete-looking version (saved_model.pb present) whose graph is garbage."""
    from textops import model_repository

    broken = repo.parent / f"broken-{version}"
    shutil.copytree(source, broken)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel protobuf" * 10)
    model_repository.publish_version(str(broken), str(repo), name, version=version)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``textops serve`` in a subprocess, on free local ports."""

    def __init__(self, repo: Path, workdir: Path, config: Optional[dict] = None, env: Optional[dict] = None, log_dir: Optional[Path] = None):
        self.repo = repo
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        # fast polling, a short settle time and quick load retries keep the tests short
        cfg = {"poll_interval_s": 0.3, "repository": {"settle_s": 0.5, "load_retry_interval_s": 0.1}, **(config or {})}
        self.config_path = workdir / f"serving-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        args = [
            sys.executable, "-m", "textops.cli", "serve",
            "--model-repository", str(repo),
            "--port", str(self.port),
            "--grpc-port", str(self.grpc_port),
            "--config", str(self.config_path),
        ]
        if log_dir is not None:
            args += ["--prediction-log", str(log_dir)]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.wait_ready()

    def get(self, path: str, headers: Optional[dict] = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, path: str, body: bytes, headers: Optional[dict] = None) -> tuple[int, dict, dict]:
        request = urllib.request.Request(
            self.url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read()), dict(r.headers)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"raw": raw.decode("utf-8", "replace")}
            return exc.code, data, dict(exc.headers)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if self.get("/v2/health/ready")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None and self.get("/v2/health/live")[0] == 200

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        from prometheus_client.parser import text_string_to_metric_families

        _, body = self.get("/metrics")
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_server(tmp_path):
    """A factory of extra servers (stopped, and checked to exit cleanly, at teardown)."""
    started: list[ServerProcess] = []

    def start(repo: Path, config: Optional[dict] = None, **kwargs) -> ServerProcess:
        srv = ServerProcess(repo, tmp_path, config, **kwargs)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        assert srv.stop() == 0, srv.log_path.read_text()[-3000:]


@pytest.fixture
def repo_tools():
    """Helpers to build and damage model repositories (namespaced for test modules)."""
    import types

    return types.SimpleNamespace(make=make_repository, publish_corrupt=publish_corrupt, model=MODEL)


@pytest.fixture(scope="module")
def server(exported_models, tmp_path_factory):
    """v1 and v2 in the repository, policy 'all', labels stable=1 and canary=2, a prediction log."""
    root = tmp_path_factory.mktemp("server")
    repo = make_repository(root, exported_models, versions=(1, 2))
    config = {"models": {MODEL: {"version_policy": "all", "labels": {"stable": 1, "canary": 2}}}}
    srv = ServerProcess(repo, root, config, log_dir=root / "predictions")
    yield srv
    assert srv.stop() == 0, srv.log_path.read_text()[-3000:]


@pytest.fixture(scope="session")
def reference(exported_models):
    """In-process ``tf.saved_model.load`` predictions: the ground truth every protocol must match."""
    import tensorflow as tf

    signatures = {v: tf.saved_model.load(str(p)).signatures["serving_default"] for v, p in exported_models.items()}

    def predict(texts: list[str], version: int = 2):
        return signatures[version](text=tf.constant(texts))["probabilities"].numpy()

    return predict
