"""Re-runs the attack / careless-operator cases of issue #13 against a ``textops serve`` and prints a table.

Run it against two checkouts to get a before/after table (the server runs from ``--pythonpath``
when given, so an unmodified copy of main can be measured with this same script)::

    python bench/serving_hardening.py --label after
    python bench/serving_hardening.py --label before --pythonpath /tmp/main-copy/pkg --old-config

``--old-config`` leaves out the connection settings an older server does not know. Only
127.0.0.1; every server it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import textops  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

MODEL = "text_classifier"
TFS = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
FAST = {"header_timeout_s": 2, "body_timeout_s": 2, "keepalive_timeout_s": 3, "max_connections": 200}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, args, repo: Path, work: Path, config: dict, env=None, log_dir=None, wait=True):
        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = {"poll_interval_s": 0.3, **config}
        path = work / f"cfg-{self.port}.yaml"
        path.write_text(json.dumps(cfg))
        self.log_path = work / f"server-{self.port}.log"
        cmd = [sys.executable, "-m", "textops.cli", "serve", "--model-repository", str(repo), "--port", str(self.port),
               "--grpc-port", str(self.grpc_port), "--config", str(path)]
        if log_dir:
            cmd += ["--prediction-log", str(log_dir)]
        e = {**os.environ, **(env or {})}
        if args.pythonpath:
            e["PYTHONPATH"] = args.pythonpath
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=e, cwd=work)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.req("GET", "/v2/health/ready")[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def req(self, method, path, body=None, headers=None, timeout=30):
        r = urllib.request.Request(self.url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})}, method=method)
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def metric(self, name, **labels):
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for fam in text_string_to_metric_families(self.req("GET", "/metrics")[1].decode()):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def raw(port, data: bytes, read=True, timeout=5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"Content-Length" in out:
                    head, _, rest = out.partition(b"\r\n\r\n")
                    n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
                    if len(rest) >= n:
                        break
        except socket.timeout:
            pass
        return out


def status_of(resp: bytes) -> str:
    return resp.split(b" ", 2)[1].decode() if resp.startswith(b"HTTP/") else "no answer"


def held(port, first: bytes, wait_s: float, drip: bytes = b"") -> str:
    """Sends ``first`` (and ``drip`` one byte a second); 'cut after X s' or 'open after X s'."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(1.0)
    t0 = time.time()
    try:
        if first:
            s.sendall(first)
        i = 0
        while time.time() - t0 < wait_s:
            try:
                if drip and i < len(drip):
                    s.sendall(drip[i : i + 1])
                    i += 1
                data = s.recv(65536)
                if data == b"" or data:  # closed, or an answer (the server closes after it)
                    if data:
                        rest = data
                        while rest:
                            try:
                                rest = s.recv(65536)
                            except socket.timeout:
                                break
                    return f"cut after {time.time() - t0:.1f} s" + (f" ({status_of(data)})" if data else "")
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return f"cut after {time.time() - t0:.1f} s"
        return f"open after {wait_s:.0f} s"
    finally:
        s.close()


def v2_body(data, shape=None, rid=None, extra=""):
    shape = shape if shape is not None else [len(data)]
    head = json.dumps({"inputs": [{"name": "text", "shape": shape, "datatype": "BYTES", "data": data}]})
    if rid is not None:
        head = head[:-1] + f', "id": {rid}' + "}"
    if extra:
        head = head[:-1] + ", " + extra + "}"
    return head.encode()


def count_records(log_dir: Path) -> int:
    from textops.prediction_log import ReadStats, iter_records

    stats = ReadStats()
    return sum(1 for _ in iter_records(log_dir, stats))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label", default="run")
    p.add_argument("--pythonpath", help="run the server from this import path (an older checkout)")
    p.add_argument("--old-config", action="store_true", help="no 'connections' section (an older server rejects it)")
    p.add_argument("--only", help="comma-separated case groups: log,input,conn,overload,repo,grpc,auth")
    args = p.parse_args()
    groups = set((args.only or "log,input,conn,overload,repo,grpc,auth").split(","))
    work = Path(tempfile.mkdtemp(prefix="hardening-"))
    rows: list[tuple[str, str]] = []
    conn_cfg = {} if args.old_config else {"connections": FAST, "repository": {"settle_s": 1.0, "load_retry_interval_s": 0.5}}
    try:
        from textops import model_repository
        from textops.pipelines import demo_data as demo
        from textops.components import bare, training

        data = Path(demo.generate(work / "demo", train_rows=600, test_rows=150))
        with open(data / "train.csv", encoding="utf-8") as f:
            rows_ = list(csv.DictReader(f))
        model = bare.train_bare([r["text"] for r in rows_], [r["label"] for r in rows_], train_config=training.TrainConfig(epochs=2, seed=1))
        exported = Path(model.export(str(work / "export")))
        repo = work / "repo"
        model_repository.publish_version(str(exported), str(repo), MODEL, version=1)
        ok = json.dumps({"instances": ["hello there"]}).encode()

        if "log" in groups:
            srv = Server(args, repo, work, conn_cfg, log_dir=work / "log1")
            answered = 0
            for i in range(1100):
                hdr = (b"X-Request-Id: \xffid-%d\r\n" % i) if 500 <= i < 600 else b""
                req = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n%s" % (TFS.encode(), len(ok), hdr, ok)
                answered += status_of(raw(srv.port, req)) == "200"
            dropped = srv.metric("textops_prediction_log_dropped_total")
            srv.stop()
            rows.append(("X-Request-Id with byte 0xFF (100 of 1,100 requests): answered / logged / drop counter",
                         f"{answered} / {count_records(work / 'log1')} / {dropped:.0f}"))
            srv = Server(args, repo, work, conn_cfg, log_dir=work / "log2")
            st = srv.req("POST", V2, v2_body(["a"], rid='"\\ud800"'))[0]
            n_ok = sum(srv.req("POST", TFS, ok)[0] == 200 for _ in range(50))
            srv.stop()
            rows.append(('v2 "id": "\\ud800", then 50 good: status / logged', f"{st} / {count_records(work / 'log2')} (of {n_ok})"))
            srv = Server(args, repo, work, conn_cfg, log_dir=work / "log3")
            from textops.serving.loadgen import run_load

            r = asyncio.run(run_load(srv.url + TFS, [ok], concurrency=16, requests=2000))
            srv.stop(signal.SIGKILL)
            rows.append(("SIGKILL right after 2,000 answers: logged", f"{count_records(work / 'log3')} of {r.ok}"))

        if "input" in groups or "grpc" in groups or "auth" in groups or "conn" in groups:
            srv = Server(args, repo, work, conn_cfg, log_dir=work / "log4")
        if "input" in groups:
            for label, ver in (("%C2%B2", "non-ASCII digit"), ("9" * 5000, "5,000 digits")):
                st = [srv.req("GET", f"/v1/models/{MODEL}/versions/{label}")[0], srv.req("GET", f"/v1/models/{MODEL}/versions/{label}/metadata")[0],
                      srv.req("POST", f"/v1/models/{MODEL}/versions/{label}:predict", ok)[0], srv.req("GET", f"/v2/models/{MODEL}/versions/{label}")[0],
                      srv.req("GET", f"/v2/models/{MODEL}/versions/{label}/ready")[0], srv.req("POST", f"/v2/models/{MODEL}/versions/{label}/infer", v2_body(["a"]))[0]]
                rows.append((f"version {ver} on the 6 version endpoints: statuses", " ".join(map(str, st))))
            big = "1" * 5000
            rows.append(("5,000-digit JSON integer in a v1 body", str(srv.req("POST", TFS, b'{"instances": [' + big.encode() + b"]}")[0])))
            rows.append(("5,000-digit JSON integer in a v2 body", str(srv.req("POST", V2, v2_body(["a"], extra=f'"parameters": {{"n": {big}}}'))[0])))
            rows.append(("Content-Encoding: gzip on a plain body", str(srv.req("POST", TFS, ok, {"Content-Encoding": "gzip"})[0])))
            rows.append(("Content-Encoding: gzip on a gzip body", str(srv.req("POST", TFS, gzip.compress(ok), {"Content-Encoding": "gzip"})[0])))
            rows.append(('v2 "id": "\\ud800"', str(srv.req("POST", V2, v2_body(["a"], rid='"\\ud800"'))[0])))
            rows.append(("5,000-digit Inference-Header-Content-Length", str(srv.req("POST", V2, v2_body(["a"]), {"Inference-Header-Content-Length": "9" * 5000})[0])))
            rows.append(('v2 shape [1] with data [[[["a"]]]]', str(srv.req("POST", V2, v2_body([[[["a"]]]], shape=[1]))[0])))
            before500 = srv.metric("textops_serving_requests_total", status="500")
            errors_before = srv.log_text().count('"level": "ERROR"')
            for _ in range(5):
                s = socket.create_connection(("127.0.0.1", srv.port))
                s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" % TFS.encode() + b"x" * 100)
                s.shutdown(socket.SHUT_WR)
                time.sleep(0.3)
                s.close()
            time.sleep(0.5)
            rows.append(("client half-closes mid-body (x5): counted 500 / ERROR lines",
                         f"{srv.metric('textops_serving_requests_total', status='500') - before500:.0f} / {srv.log_text().count(chr(34) + 'level' + chr(34) + ': ' + chr(34) + 'ERROR') - errors_before}"))
            size0 = srv.log_path.stat().st_size
            for _ in range(20):
                raw(srv.port, b"GET /v2 HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
            time.sleep(0.3)
            rows.append(("20 malformed HTTP requests: bytes of server log written", str(srv.log_path.stat().st_size - size0)))

        if "conn" in groups:
            wait = 8.0
            rows.append(("body: 100 of 1,000 announced bytes", held(srv.port, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" % TFS.encode() + b"x" * 100, wait)))
            rows.append(("chunked body never finished", held(srv.port, b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" % TFS.encode(), wait)))
            rows.append(("idle never-used connection", held(srv.port, b"", wait)))
            req = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(req)
            s.recv(65536)
            s.settimeout(wait + 1)
            t0 = time.time()
            try:
                s.recv(65536)
                rows.append(("idle keep-alive connection after one request", f"cut after {time.time() - t0:.1f} s"))
            except socket.timeout:
                rows.append(("idle keep-alive connection after one request", f"open after {wait:.0f} s"))
            s.close()
            rows.append(("slowloris: request head at 1 byte/s", held(srv.port, b"G", wait + 4, drip=b"ET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40)))
            socks = []
            for _ in range(400):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=2))
                except OSError:
                    break
            time.sleep(1.0)
            open_ = 0
            for c in socks:
                c.setblocking(False)
                try:
                    c.recv(65536)  # an answer (503) or EOF: the server closed it
                except BlockingIOError:
                    open_ += 1  # nothing to read: still held open
                except OSError:
                    pass
                c.close()
            rows.append(("400 idle sockets at once: held open by the server after 1 s", str(open_)))

        if "grpc" in groups:
            import grpc

            ch = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}", options=[("grpc.max_metadata_size", 1 << 20)])
            call = ch.unary_unary("/tensorflow.serving.PredictionService/Predict")
            try:
                call(b"\xff\xff\xff\xff not a protobuf", timeout=10)
                rows.append(("gRPC bytes that are not a protobuf", "OK"))
            except grpc.RpcError as exc:
                rows.append(("gRPC bytes that are not a protobuf", exc.code().name))
            from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

            stub = model_service_pb2_grpc.ModelServiceStub(ch)
            req = get_model_status_pb2.GetModelStatusRequest()
            req.model_spec.name = "m" * 100_000
            try:
                stub.GetModelStatus(req, timeout=10)
            except grpc.RpcError as exc:
                rows.append(("gRPC 100 KB model name: code / error length", f"{exc.code().name} / {len(exc.details() or '')}"))
            st, body = srv.req("GET", "/v1/models/" + "m" * 6000)
            rows.append(("HTTP 6 KB model name: status / body length", f"{st} / {len(body)}"))
            ch.close()

        if "auth" in groups:
            bad = Server(args, repo, work, {**conn_cfg}, env={"TEXTOPS_SERVING_TOKEN": ""}, wait=False)
            up = bad.wait_ready(60)
            rows.append(('TEXTOPS_SERVING_TOKEN="": server starts? (unauthenticated predict status)',
                         f"starts, {bad.req('POST', TFS, ok)[0]}" if up else f"refused to start (exit {bad.proc.returncode})"))
            bad.stop()
            tok = Server(args, repo, work, conn_cfg, env={"TEXTOPS_SERVING_TOKEN": "s3cret"})
            for _ in range(30):
                tok.req("POST", TFS, ok, {"Authorization": "Bearer wrong"})
            text = tok.log_text()
            says = "auth" in [line for line in text.splitlines() if "serving" in line and "http://" in line][0]
            rows.append(("start-up line says auth on/off; 30 failed auths: log lines", f"{'yes' if says else 'no'}; {text.count('authentication failed')}"))
            tok.stop()
        if "input" in groups or "grpc" in groups or "auth" in groups or "conn" in groups:
            srv.stop()

        if "overload" in groups:
            from textops.serving.loadgen import run_load

            cfg = {**conn_cfg, "batching": {"max_queue": int(os.environ.get("QUEUE", 16)), "max_batch_size": 16}, "limits": {"max_instances": 8}}
            srv = Server(args, repo, work, cfg)
            bodies = [json.dumps({"instances": ["text number 1099 " * int(os.environ.get("REPEAT", 20))] * 8}).encode()]
            asyncio.run(run_load(srv.url + TFS, bodies, concurrency=4, requests=100))
            cap = asyncio.run(run_load(srv.url + TFS, bodies, concurrency=int(os.environ.get("CAPCONC", 4)), duration_s=4))
            over = asyncio.run(run_load(srv.url + TFS, bodies, concurrency=256, duration_s=5))
            paced = asyncio.run(run_load(srv.url + TFS, bodies, concurrency=64, duration_s=5, rate=2 * cap.throughput))
            batches = srv.metric("textops_serving_batch_size_count")
            srv.stop()
            rows.append(("overload: offered 2x capacity (paced, conc. 64): served req/s / ratio to capacity",
                         f"{paced.throughput:.0f} / {paced.throughput / max(cap.throughput, 1e-9):.2f} ({paced.statuses.get(429, 0)} x 429, {batches:.0f} batches)"))
            rows.append(("overload: capacity (req/s, conc. 4) / served at conc. 256 (req/s) / ratio",
                         f"{cap.throughput:.0f} / {over.throughput:.0f} / {over.throughput / max(cap.throughput, 1e-9):.2f} ({over.statuses.get(429, 0)} x 429)"))

        if "repo" in groups:
            repo2 = work / "repo2"
            model_repository.publish_version(str(exported), str(repo2), MODEL, version=1)
            srv = Server(args, repo2, work, conn_cfg)
            (repo2 / MODEL / "²").mkdir()
            (repo2 / MODEL / "99999999999999999999").mkdir()
            shutil.copytree(exported, repo2 / MODEL / "99999999999999999999", dirs_exist_ok=True)
            time.sleep(2)
            vdir = repo2 / MODEL / "5"  # rsync-like: saved_model.pb first, variables/ 2 s later
            vdir.mkdir()
            shutil.copy(exported / "saved_model.pb", vdir / "saved_model.pb")
            time.sleep(2.0)
            for item in exported.iterdir():
                if item.name != "saved_model.pb":
                    (shutil.copytree if item.is_dir() else shutil.copy)(item, vdir / item.name)
            deadline = time.time() + 20
            served = None
            while time.time() < deadline:
                st, body = srv.req("GET", f"/v1/models/{MODEL}/versions/5")
                if st == 200 and b"AVAILABLE" in body:
                    served = time.time() - (deadline - 20)
                    break
                time.sleep(0.3)
            rows.append(("version copied file by file (+ dirs '²', 9999...9 present): v5 served", f"after {served:.1f} s" if served else "not within 20 s"))
            st = srv.req("GET", f"/v1/models/{MODEL}/versions/99999999999999999999")[0]
            import grpc
            from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

            with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as ch:
                req = get_model_status_pb2.GetModelStatusRequest()
                req.model_spec.name = MODEL
                try:
                    model_service_pb2_grpc.ModelServiceStub(ch).GetModelStatus(req, timeout=10)
                    g = "OK"
                except grpc.RpcError as exc:
                    g = exc.code().name
            rows.append(("dir 99999999999999999999: REST status / gRPC GetModelStatus", f"{st} / {g}"))
            text = srv.log_text()
            rows.append(("dir '²' and 9999...9: log lines naming them (over ~20 polls)", str(sum(("²" in line or "\\u00b2" in line or "99999999999999999999" in line) for line in text.splitlines()))))
            shutil.copytree(exported, repo2 / MODEL / ".tmp7")
            os.chmod(repo2 / MODEL / ".tmp7", 0)
            os.rename(repo2 / MODEL / ".tmp7", repo2 / MODEL / "7")
            time.sleep(4)
            text = srv.log_text()
            lines = sum("version 7" in line or "versions/7" in line or "/7" in line for line in text.splitlines())
            m = srv.metric("textops_serving_version_not_loaded", model=MODEL, version="7")
            rows.append(("chmod 000 on a new version 7: log lines / not-loaded metric", f"{lines} / {m:.0f}"))
            os.chmod(repo2 / MODEL / "7", 0o755)
            srv.stop()
    finally:
        for path in work.rglob("*"):
            try:
                os.chmod(path, 0o755) if path.is_dir() else None
            except OSError:
                pass
        print(f"\n| case | {args.label} |\n|---|---|")
        for case, value in rows:
            print(f"| {case} | {value} |")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
