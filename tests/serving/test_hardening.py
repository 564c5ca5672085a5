"""Regression tests for issue #13: each case an attacker or a careless operator found.

No 5xx for bad input, no silent loss in the prediction log, no connection held forever, repository
faults reported (once) instead of failing every poll, auth that cannot be turned off by accident.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import time

import pytest

from textops.prediction_log import ReadStats, iter_records

MODEL = "text_classifier"
TFS = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
OK = json.dumps({"instances": ["my parcel is late"]}).encode()
FAST_CONNECTIONS = {"header_timeout_s": 1.0, "body_timeout_s": 1.0, "keepalive_timeout_s": 1.5, "max_connections": 40}


def _v2(data, shape=None, **extra) -> bytes:
    tensor = {"name": "text", "shape": shape if shape is not None else [len(data)], "datatype": "BYTES", "data": data}
    return json.dumps({"inputs": [tensor], **extra}).encode()


def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Sends ``data`` on a fresh connection and reads until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def _post_raw(path: str, body: bytes, extra_headers: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n"
        % (path.encode(), len(body), extra_headers)
        + body
    )


def _closed_within(port: int, first: bytes, limit_s: float, drip: bytes = b"") -> tuple[bool, bytes]:
    """(closed by the server within limit_s, what it sent); ``drip`` is sent one byte per 0.3 s."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.3)
    got = b""
    try:
        if first:
            s.sendall(first)
        deadline = time.monotonic() + limit_s
        i = 0
        while time.monotonic() < deadline:
            try:
                if i < len(drip):
                    s.sendall(drip[i : i + 1])
                    i += 1
                chunk = s.recv(65536)
                if not chunk:
                    return True, got
                got += chunk
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return True, got
        return False, got
    finally:
        s.close()


def _records(log_dir) -> list:
    stats = ReadStats()
    records = list(iter_records(log_dir, stats))
    assert stats.corrupt == 0
    return records


# -- the prediction log never stops on a bad record ---------------------------------------------
def test_undecodable_request_ids_are_logged_escaped_and_the_log_keeps_going(exported_models, tmp_path, start_server, repo_tools):
    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    log_dir = tmp_path / "predictions"
    srv = start_server(repo, log_dir=log_dir)
    answered = 0
    for i in range(60):
        header = b"X-Request-Id: \xffbad-%d\r\n" % i if 20 <= i < 40 else b""
        answered += _raw(srv.port, _post_raw(TFS, OK, header)).startswith(b"HTTP/1.1 200")
    status, data, _ = srv.post(V2, _v2(["a"], id="\ud800"))  # json.dumps writes the lone surrogate as \ud800
    assert status == 400 and "'id'" in data["error"] and "surrogate" in data["error"], data
    assert answered == 60
    assert srv.metric("textops_prediction_log_writer_errors_total") == 0
    assert srv.stop() == 0
    records = _records(log_dir)
    assert len(records) == 60  # one per answered prediction, the bad ids included
    escaped = sorted(r.request_id for r in records if r.request_id.startswith("\\xff"))
    assert escaped == sorted(f"\\xffbad-{i}" for i in range(20, 40))


def test_writer_failure_is_counted_logged_and_the_writer_carries_on(tmp_path, caplog):
    from textops.prediction_log import PredictionRecord
    from textops.serving.metrics import ServingMetrics
    from textops.serving.prediction_logger import PredictionLogWriter, encode_record

    metrics = ServingMetrics()
    writer = PredictionLogWriter(tmp_path, metrics).start()
    good = PredictionRecord(request_id="a", ts=1.0, model="m", version=1, text="hello")
    unserializable = PredictionRecord(request_id="b", ts=1.0, model="m", version=1, text="x", probabilities=[object()])
    writer.submit([good])
    time.sleep(0.3)
    writer.submit([unserializable])  # json.dumps raises TypeError inside the writer thread
    time.sleep(0.3)
    writer.submit([good, PredictionRecord(request_id="\udcff\udcfe", ts=1.0, model="m", version=1, text="caf\udce9")])
    writer.close()
    records = _records(tmp_path)
    assert [r.request_id for r in records] == ["a", "a", "\\xff\\xfe"]
    assert records[-1].text == "caf\\xe9"
    assert writer.records_dropped == 1
    assert metrics.log_writer_errors._value.get() == 1
    assert "the writer failed" in caplog.text
    assert encode_record(PredictionRecord(request_id="\ud800", ts=1, model="m", version=1, text="t")).decode().count("\\\\x") == 3


# -- input errors are 4xx with a JSON body -------------------------------------------------------
VERSION_ENDPOINTS = [
    ("GET", "/v1/models/{m}/versions/{v}"),
    ("GET", "/v1/models/{m}/versions/{v}/metadata"),
    ("POST", "/v1/models/{m}/versions/{v}:predict"),
    ("GET", "/v2/models/{m}/versions/{v}"),
    ("GET", "/v2/models/{m}/versions/{v}/ready"),
    ("POST", "/v2/models/{m}/versions/{v}/infer"),
]


@pytest.mark.parametrize("version", ["%C2%B2", "%D9%A3", "9" * 5000, "99999999999999999999", "0"], ids=["superscript-2", "arabic-3", "5000-digits", "beyond-int64", "zero"])
@pytest.mark.parametrize("method,template", VERSION_ENDPOINTS, ids=[t for _, t in VERSION_ENDPOINTS])
def test_bad_versions_are_400_on_every_endpoint(server, method, template, version):
    path = template.format(m=MODEL, v=version)
    body = _v2(["a"]) if path.endswith("infer") else OK
    status, data, _ = server.post(path, body) if method == "POST" else (*_get_json(server, path), None)
    assert status == 400, data
    assert "ASCII digits" in data["error"] and len(data["error"]) < 300, data


def _get_json(server, path):
    status, body = server.get(path)
    return status, json.loads(body)


BODY_CASES = [
    # (id, path, body, headers, status, fragment)
    ("v1-5000-digit-int", TFS, b'{"instances": [' + b"1" * 5000 + b"]}", {}, 400, "number that cannot be read"),
    ("v2-5000-digit-int", V2, _v2(["a"])[:-1] + b', "parameters": {"n": ' + b"7" * 5000 + b"}}", {}, 400, "number that cannot be read"),
    ("gzip-header-plain-body", TFS, OK, {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ("deflate-header-plain-body", TFS, OK, {"Content-Encoding": "deflate"}, 400, "not valid deflate"),
    ("unknown-encoding", TFS, OK, {"Content-Encoding": "compress"}, 415, "not supported"),
    ("v2-id-lone-surrogate", V2, _v2(["a"], id="\udc00"), {}, 400, "surrogate"),
    ("v2-id-not-a-string", V2, _v2(["a"], id=5), {}, 400, "'id' must be a string"),
    ("binary-header-5000-digits", V2, _v2(["a"]), {"Inference-Header-Content-Length": "9" * 5000}, 400, "Inference-Header-Content-Length"),
    ("binary-header-unicode-digits", V2, _v2(["a"]), {"Inference-Header-Content-Length": "\u00b2"}, 400, "Inference-Header-Content-Length"),
    ("v2-shape-1-nested-4-deep", V2, _v2([[[["a"]]]], shape=[1]), {}, 400, "shape [1]"),
    ("v2-shape-2-1-nested-wrong", V2, _v2([["a", "b"]], shape=[2, 1]), {}, 400, "to match shape [2, 1]"),
    ("v2-shape-2-1-ragged", V2, _v2([["a"], "b"], shape=[2, 1]), {}, 400, "to match shape [2, 1]"),
    ("v2-shape-huge", V2, _v2(["a"], shape=[10**30]), {}, 400, "needs"),
    ("v1-huge-name", "/v1/models/" + "m" * 5000 + ":predict", OK, {}, 404, "5000 characters"),
]


@pytest.mark.parametrize("path,body,headers,status,fragment", [c[1:] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES])
def test_bad_bodies_and_headers_are_4xx(server, path, body, headers, status, fragment):
    got, data, _ = server.post(path, body, headers)
    assert got == status, data
    assert set(data) == {"error"} and fragment in data["error"], data
    assert len(data["error"]) < 500  # client-chosen names are cut, not echoed whole


def test_gzip_bodies_are_decompressed_and_exact_v2_nesting_is_accepted(server):
    status, data, _ = server.post(TFS, gzip.compress(OK), {"Content-Encoding": "gzip"})
    assert status == 200 and data["predictions"][0]["label"]
    status, data, _ = server.post(V2, _v2([["a"], ["b"]], shape=[2, 1]))  # nested exactly as the shape says
    assert status == 200 and data["outputs"][1]["shape"] == [2]
    status, data, _ = server.post(V2, _v2(["a", "b"], shape=[2, 1]))  # flat, row-major
    assert status == 200


def test_client_half_closing_mid_body_is_a_client_disconnect(server):
    before = {s: server.metric("textops_serving_requests_total", status=s) for s in ("500", "499")}
    log_size = server.log_path.stat().st_size
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" % TFS.encode() + b"x" * 100)
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.3)
        s.close()
    time.sleep(0.3)
    assert server.metric("textops_serving_requests_total", status="500") == before["500"]
    assert server.metric("textops_serving_requests_total", status="499") == before["499"] + 3
    with open(server.log_path, "rb") as f:
        f.seek(log_size)
        new = f.read().decode("utf-8", "replace")
    assert "Traceback" not in new and '"level": "ERROR"' not in new
    assert new.count("closed the connection before sending the whole body") == 3
    assert server.alive()


def test_malformed_http_gets_json_400_and_one_log_line(server):
    log_size = server.log_path.stat().st_size
    answers = [_raw(server.port, b"GET /v2 HTTP/1.1\r\nHost: t\r\nBroken Header Line\r\n\r\n") for _ in range(20)]
    assert all(a.split(b" ", 2)[1] == b"400" for a in answers), answers[0]
    body = answers[0].partition(b"\r\n\r\n")[2]
    assert json.loads(body)["error"].startswith("malformed HTTP request")
    with open(server.log_path, "rb") as f:
        f.seek(log_size)
        new = f.read().decode("utf-8", "replace")
    assert "Traceback" not in new
    assert new.count("malformed HTTP request") == 1  # rate-limited: one line, not 20 tracebacks


# -- connections are never held forever -----------------------------------------------------------
def test_read_timeouts_idle_timeouts_and_the_connection_cap(exported_models, tmp_path, start_server, repo_tools):
    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    srv = start_server(repo, {"connections": FAST_CONNECTIONS})
    partial = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" % TFS.encode() + b"x" * 100
    closed, got = _closed_within(srv.port, partial, 6)
    assert closed and got.startswith(b"HTTP/1.1 408") and b"body_timeout_s" in got, got
    chunked = b"POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" % TFS.encode()
    closed, got = _closed_within(srv.port, chunked, 6)
    assert closed and got.startswith(b"HTTP/1.1 408"), got
    closed, got = _closed_within(srv.port, b"", 6)  # never sends a byte
    assert closed and got.startswith(b"HTTP/1.1 408") and b"header_timeout_s" in got, got
    slowloris = b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 40
    closed, got = _closed_within(srv.port, slowloris[:1], 8, drip=slowloris[1:])  # a byte every 0.3 s, never finishing
    assert closed and got.startswith(b"HTTP/1.1 408"), got
    s = socket.create_connection(("127.0.0.1", srv.port))  # keep-alive: one request, then idle
    s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
    s.settimeout(6)
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    start = time.monotonic()
    assert s.recv(65536) == b""  # closed by the server after the keep-alive timeout
    assert time.monotonic() - start < 5
    s.close()
    assert srv.metric("textops_serving_connection_timeouts_total", kind="body") == 2
    assert srv.metric("textops_serving_connection_timeouts_total", kind="header") == 2

    held = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(60)]  # cap is 40
    time.sleep(0.5)
    refused = 0
    for c in held:
        c.setblocking(False)
        try:
            data = c.recv(65536)
            refused += data.startswith(b"HTTP/1.1 503")
        except BlockingIOError:
            pass
    for c in held:
        c.close()
    assert refused >= 20 and srv.metric("textops_serving_connections_refused_total") == refused
    time.sleep(0.3)
    assert srv.post(TFS, OK)[0] == 200  # the server serves again once they are gone
    assert "Traceback" not in srv.log_path.read_text()


# -- repository faults ------------------------------------------------------------------------------
def test_repository_faults_are_reported_once_and_block_nothing(exported_models, tmp_path, start_server, repo_tools):
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    model_dir = repo / MODEL
    for name in ("²", "99999999999999999999", "v3", "\u0663"):
        shutil.copytree(exported_models[2], model_dir / name)
    srv = start_server(repo)
    # a version copied file by file: saved_model.pb first, the variables 1.5 s later (rsync order)
    target = model_dir / "5"
    target.mkdir()
    shutil.copy(exported_models[2] / "saved_model.pb", target / "saved_model.pb")
    time.sleep(1.5)
    for item in exported_models[2].iterdir():
        if item.name != "saved_model.pb":
            (shutil.copytree if item.is_dir() else shutil.copy)(item, target / item.name)
    _wait_state(srv, 5, "AVAILABLE")
    assert srv.metric("textops_serving_load_attempt_failures_total", version="5") == 0  # never loaded half-copied
    log = srv.log_path.read_text()
    for name in ("²", "99999999999999999999", "v3", "\u0663"):
        assert log.count(f"skipping {name!r}") == 1, name  # one warning each, not one per poll
    assert "Traceback" not in log and "polling the model repository" not in log
    assert srv.metric("textops_serving_invalid_version_dirs", model=MODEL) == 4
    with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
        states = {v.version: v.state for v in status.model_version_status}
        assert states[5] == get_model_status_pb2.ModelVersionStatus.AVAILABLE and set(states) == {1, 5}  # 1: unloaded (END)

    # a broken version is retried (load_retries) and then reported; a fixed copy loads
    repo_tools.publish_corrupt(repo, 6, exported_models[2])
    _wait_state(srv, 6, "END")
    assert srv.metric("textops_serving_load_attempt_failures_total", version="6") == 6  # 1 + 5 retries
    assert srv.metric("textops_serving_load_failures_total", version="6") == 1
    assert srv.metric("textops_serving_version_not_loaded", version="6", reason="load_failed") == 1
    assert srv.post(TFS, OK)[2]["X-Model-Version"] == "5"
    shutil.copy(exported_models[2] / "saved_model.pb", model_dir / "6" / "saved_model.pb")
    _wait_state(srv, 6, "AVAILABLE")
    assert srv.metric("textops_serving_version_not_loaded", version="6") == 0

    # a version directory that cannot be read (a dangling link: a lost mount) is reported, not fatal
    os.symlink(tmp_path / "gone", model_dir / "9")
    deadline = time.time() + 20
    while time.time() < deadline and not srv.metric("textops_serving_version_not_loaded", version="9", reason="unreadable"):
        time.sleep(0.2)
    assert srv.metric("textops_serving_version_not_loaded", version="9", reason="unreadable") == 1
    assert srv.post(TFS, OK)[2]["X-Model-Version"] == "6"
    time.sleep(1.0)
    assert srv.log_path.read_text().count("version 9 is not loaded (unreadable)") == 1


def test_chmod_000_version_is_reported(exported_models, tmp_path, start_server, repo_tools):
    # Permission bits do not bind root: as root, the server runs without the capabilities that
    # bypass them (setpriv), as it would under a non-root user in its container.
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop CAP_DAC_OVERRIDE")
        prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")
    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    srv = start_server(repo, prefix=prefix)
    staging = repo / MODEL / ".copy"
    shutil.copytree(exported_models[2], staging)
    os.chmod(staging, 0)
    os.rename(staging, repo / MODEL / "4")
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not srv.metric("textops_serving_version_not_loaded", version="4", reason="unreadable"):
            time.sleep(0.2)
        assert srv.metric("textops_serving_version_not_loaded", version="4", reason="unreadable") == 1
        assert "version 4 is not loaded (unreadable)" in srv.log_path.read_text()
    finally:
        os.chmod(repo / MODEL / "4", 0o755)


def _wait_state(srv, version: int, state: str, timeout_s: float = 60.0) -> None:
    deadline = time.time() + timeout_s
    states = None
    while time.time() < deadline:
        status, body = srv.get(f"/v1/models/{MODEL}")
        if status == 200:
            states = {v["version"]: v["state"] for v in json.loads(body)["model_version_status"]}
            if states.get(str(version)) == state:
                return
        time.sleep(0.2)
    raise AssertionError(f"version {version} never reached {state}: {states}")


# -- gRPC ---------------------------------------------------------------------------------------------
def test_grpc_undecodable_request_and_huge_names(server):
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        for method in ("/tensorflow.serving.PredictionService/Predict", "/tensorflow.serving.ModelService/GetModelStatus"):
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary(method)(b"\xff\xff\xff\xff not a protobuf", timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
            assert "not a serialized tensorflow.serving." in err.value.details()
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "m" * 100_000
        with pytest.raises(grpc.RpcError) as err:
            model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "100000 characters" in err.value.details() and len(err.value.details()) < 500
    assert server.alive()


# -- auth -----------------------------------------------------------------------------------------------
def test_empty_token_is_a_startup_error_unless_auth_is_off(exported_models, tmp_path, start_server, repo_tools):
    import subprocess
    import sys

    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    env = {**os.environ, "TEXTOPS_SERVING_TOKEN": ""}
    done = subprocess.run(
        [sys.executable, "-m", "textops.cli", "serve", "--model-repository", str(repo), "--port", "0", "--grpc-port", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and "set but empty" in done.stderr and "auth: off" in done.stderr, done.stderr
    off = start_server(repo, {"auth": "off"}, env={"TEXTOPS_SERVING_TOKEN": ""})
    assert off.post(TFS, OK)[0] == 200
    assert "auth off" in off.log_path.read_text()
    on = start_server(repo, env={"TEXTOPS_SERVING_TOKEN": "s3cret"})
    assert "auth on" in on.log_path.read_text()
    for _ in range(30):
        assert on.post(TFS, OK, {"Authorization": "Bearer wrong"})[0] == 401
    assert on.metric("textops_serving_requests_total", status="401") == 30
    assert on.log_path.read_text().count("rest authentication failed from 127.0.0.1: wrong bearer token") == 1  # rate-limited
