"""``textops serve`` in a subprocess on free local ports, and model repositories to serve."""

from __future__ import annotations

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

import yaml

MODEL = "text_classifier"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(proc: subprocess.Popen, timeout: float) -> int:
    """SIGTERM (a graceful drain), SIGKILL after ``timeout`` seconds; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90.0, log_path: Optional[Path] = None) -> None:
    """Waits until ``url``'s KServe v2 readiness answers 200; raises (with the log's tail) if the
    process exits first or ``timeout`` passes."""
    tail = lambda: ":\n" + log_path.read_text(errors="replace")[-3000:] if log_path is not None else ""  # noqa: E731
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}{tail()}")
        try:
            with urllib.request.urlopen(url + "/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError:
            pass  # up, not ready yet
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s{tail()}")


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


class ServerProcess:
    """``textops serve`` in a subprocess, on free local ports."""

    def __init__(
        self,
        repo: Path,
        workdir: Path,
        config: Optional[dict] = None,
        env: Optional[dict] = None,
        log_dir: Optional[Path] = None,
        prefix: tuple[str, ...] = (),  # a command to run the server under (e.g. setpriv)
    ):
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
            *prefix,
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
        wait_ready(self.url, self.proc, timeout, self.log_path)

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
        code = terminate(self.proc, 60.0)
        self._log.close()
        return code
