"""The shared scheduler (issue 14): priorities without starvation, deadlines, instances that follow
the load, unload on idle and reload on demand, and the pool/queue config refused with the key named.

The scheduler runs the real exported model; orders and counts are asserted, never timings.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from textops.serving.batching import DynamicBatcher, queue_settings
from textops.serving.config import BatchingConfig, ConfigError, load_config
from textops.serving.errors import DeadlineExceeded, Overloaded
from textops.serving.metrics import ServingMetrics
from textops.serving.runtime import ModelRuntime
from textops.serving.scheduler import ResourcePool, Scheduler

MODEL = "text_classifier"


@pytest.fixture(scope="module")
def runtime(exported_models) -> ModelRuntime:
    rt = ModelRuntime(MODEL, 1, str(exported_models[1])).load()
    rt.warmup()
    return rt


def _metric(metrics: ServingMetrics, name: str, **labels) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _scheduler(metrics, capacity, threads=1):
    return Scheduler(ResourcePool(capacity, metrics), metrics, threads=threads)


def _batcher(name, scheduler, metrics, **settings):
    config = BatchingConfig(enabled=False, max_queue=1000)
    return DynamicBatcher(name, config, metrics, scheduler, queue_settings(config, **settings))


def _hold(scheduler: Scheduler, needs: dict) -> None:
    with scheduler._cond:
        scheduler.pool.take(needs)


def _release(scheduler: Scheduler, needs: dict) -> None:
    with scheduler._cond:
        scheduler.pool.give(needs)
        scheduler._cond.notify_all()


def test_priorities_share_executions_in_their_ratio_and_nobody_starves(runtime):
    """Both models backlogged on one execution slot: priority 1 gets two executions per one of
    priority 2 (Triton's convention), and priority 2 progresses from the start."""

    async def main():
        metrics = ServingMetrics()
        sched = _scheduler(metrics, {"cpu": 1})
        high = _batcher("high", sched, metrics, priority=1)
        low = _batcher("low", sched, metrics, priority=2)
        order: list[str] = []

        async def one(batcher, i):
            await batcher.submit(runtime, [f"text {i}".encode()])
            order.append(batcher.model_name)

        _hold(sched, {"cpu": 1})  # nothing runs until both queues hold their whole backlog
        sched.start()
        tasks = [asyncio.create_task(one(b, i)) for i in range(90) for b in (high, low)]
        await asyncio.sleep(0.05)
        _release(sched, {"cpu": 1})
        await asyncio.gather(*tasks)
        await high.close()
        await low.close()
        await asyncio.to_thread(sched.stop)
        return order, metrics

    order, metrics = asyncio.run(main())
    first = order[:90]  # both queues were backlogged throughout these
    assert abs(first.count("high") - 60) <= 2, first
    assert "low" in order[:4]  # the lower priority progresses at once: no starvation
    assert order.count("high") == order.count("low") == 90  # everything answered
    assert _metric(metrics, "textops_serving_executions_total", model="high", priority="1") == 90
    assert _metric(metrics, "textops_serving_executions_total", model="low", priority="2") == 90


def test_an_idle_model_banks_no_credit(runtime):
    """A model idle while another ran many batches does not then monopolise the slot."""

    async def main():
        metrics = ServingMetrics()
        sched = _scheduler(metrics, {"cpu": 1}).start()
        a = _batcher("a", sched, metrics, priority=1)
        b = _batcher("b", sched, metrics, priority=1)
        await asyncio.gather(*(a.submit(runtime, [b"alone"]) for _ in range(30)))  # b idle meanwhile
        order: list[str] = []

        async def one(batcher):
            await batcher.submit(runtime, [b"together"])
            order.append(batcher.model_name)

        _hold(sched, {"cpu": 1})
        tasks = [asyncio.create_task(one(x)) for _ in range(20) for x in (a, b)]
        await asyncio.sleep(0.05)
        _release(sched, {"cpu": 1})
        await asyncio.gather(*tasks)
        await asyncio.to_thread(sched.stop)
        return order

    order = asyncio.run(main())
    assert abs(order[:20].count("a") - 10) <= 1, order  # equal priorities alternate from the start


def test_expired_requests_are_answered_and_never_run(runtime):
    async def main():
        metrics = ServingMetrics()
        sched = _scheduler(metrics, {"cpu": 1})
        batcher = _batcher(MODEL, sched, metrics)
        _hold(sched, {"cpu": 1})  # the model cannot run: requests wait
        sched.start()
        expired = await asyncio.gather(*(batcher.submit(runtime, [b"late"], timeout_s=0.05) for _ in range(5)), return_exceptions=True)
        calls_while_held = batcher.model_calls
        _release(sched, {"cpu": 1})
        served = await batcher.submit(runtime, [b"in time"], timeout_s=30.0)
        await batcher.close()
        await asyncio.to_thread(sched.stop)
        return expired, calls_while_held, served, batcher, metrics

    expired, calls_while_held, served, batcher, metrics = asyncio.run(main())
    assert all(isinstance(e, DeadlineExceeded) for e in expired), expired
    assert "deadline" in expired[0].message and "not run" in expired[0].message and expired[0].http_status == 504
    assert calls_while_held == 0 and batcher.model_calls == 1  # only the request in time ran
    assert served[0].labels and batcher.queued_texts == 0
    assert _metric(metrics, "textops_serving_deadline_expired_total", model=MODEL) == 5


def test_full_queue_rejects_or_drops_the_oldest(runtime):
    async def main(on_full):
        metrics = ServingMetrics()
        sched = _scheduler(metrics, {"cpu": 1})
        batcher = _batcher(MODEL, sched, metrics, max_queue=3, on_full=on_full)
        _hold(sched, {"cpu": 1})
        sched.start()
        tasks = [asyncio.create_task(batcher.submit(runtime, [f"t{i}".encode()])) for i in range(5)]
        await asyncio.sleep(0.05)
        _release(sched, {"cpu": 1})
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(sched.stop)
        return [isinstance(r, Overloaded) for r in results]

    assert asyncio.run(main("reject")) == [False, False, False, True, True]  # the newest are refused
    assert asyncio.run(main("drop_oldest")) == [True, True, False, False, False]  # the oldest make room


def test_instances_grow_with_backlog_and_shrink_when_idle(runtime):
    async def main():
        metrics = ServingMetrics()
        sched = _scheduler(metrics, {"cpu": 3}, threads=3).start()
        batcher = _batcher(MODEL, sched, metrics, min_instances=1, max_instances=3, scale_up_after_s=0.0, idle_s=0.3)
        assert batcher.queue.instances == 1
        seen = set()

        async def watch(stop):
            while not stop.is_set():
                seen.add(batcher.queue.instances)
                await asyncio.sleep(0.001)

        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        await asyncio.gather(*(batcher.submit(runtime, [b"backlog " * 50]) for _ in range(300)))
        grown = max(seen)
        deadline = time.monotonic() + 30
        while batcher.queue.instances > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await watcher
        await asyncio.to_thread(sched.stop)
        return grown, batcher.queue.instances, metrics

    grown, final, metrics = asyncio.run(main())
    assert grown == 3  # every instance the pool allows while the backlog lasted
    assert final == 1  # back to min once idle
    assert _metric(metrics, "textops_serving_instance_changes_total", model=MODEL, direction="up") == 2
    assert _metric(metrics, "textops_serving_instance_changes_total", model=MODEL, direction="down") == 2
    assert _metric(metrics, "textops_serving_instances", model=MODEL) == 1


def test_instances_do_not_grow_past_the_pool(runtime):
    """Two models may each grow to 2 instances, but the pool has 2 cpu: together they never hold more."""

    async def main():
        metrics = ServingMetrics()
        sched = _scheduler(metrics, {"cpu": 2}, threads=4).start()
        a = _batcher("a", sched, metrics, max_instances=2, scale_up_after_s=0.0)
        b = _batcher("b", sched, metrics, max_instances=2, scale_up_after_s=0.0)
        peak = 0

        async def watch(stop):
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, a.queue.running + b.queue.running)
                assert sched.pool.free["cpu"] >= 0
                await asyncio.sleep(0.0005)

        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        await asyncio.gather(*(x.submit(runtime, [b"busy " * 50]) for _ in range(150) for x in (a, b)))
        stop.set()
        await watcher
        await asyncio.to_thread(sched.stop)
        return peak, metrics

    peak, metrics = asyncio.run(main())
    assert 1 <= peak <= 2
    assert _metric(metrics, "textops_serving_pool_capacity", resource="cpu") == 2
    assert _metric(metrics, "textops_serving_pool_in_use", resource="cpu") == 0


# -- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config, key",
    [
        ({"models": {"a": {"instances": {"resources": {"gpu_memory_mib": 100}}}}}, "models.a.instances.resources.gpu_memory_mib"),
        ({"pool": {"resources": {"cpu": 2}}, "models": {"a": {"instances": {"resources": {"cpu": 3}}}}}, "models.a.instances.resources.cpu"),
        ({"models": {"a": {"instances": {"min": 3, "max": 2}}}}, "models.a.instances"),
        ({"models": {"a": {"instances": {"replicas": 2}}}}, "models.a.instances.replicas"),
        ({"models": {"a": {"priority": 0}}}, "models.a.priority"),
        ({"models": {"a": {"queue": {"on_full": "wait"}}}}, "models.a.queue.on_full"),
        ({"models": {"a": {"queue": {"timeout_ms": -5}}}}, "models.a.queue.timeout_ms"),
        ({"models": {"a": {"queue": {"max_queue": 8}}}}, "models.a.queue.max_queue"),
        ({"pool": {"resources": {"cpu": 0}}}, "pool"),
        ({"pool": {"resources": {"cpu": 2}, "cores": 2}}, "pool.cores"),
        ({"pool": {"resources": {"gpu": 1}}}, "the default model instance.resources.cpu"),
    ],
)
def test_invalid_pool_and_queue_configs_name_the_key(tmp_path, config, key):
    import yaml

    path = tmp_path / "serving.yaml"
    path.write_text(yaml.safe_dump({"model_repository": str(tmp_path), **config}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in str(info.value) and str(path) in str(info.value), str(info.value)


def test_pool_defaults_to_the_usable_cores(tmp_path):
    import os

    from textops.serving.config import gpu_memory_mib

    cfg = load_config(None, model_repository=tmp_path)
    gpu = {"gpu_memory_mib": gpu_memory_mib()} if gpu_memory_mib() else {}
    assert cfg.pool.capacity() == {"cpu": len(os.sched_getaffinity(0)), **gpu}
    assert cfg.max_instances(MODEL) == 1 and cfg.queue_limit(MODEL) == cfg.batching.max_queue


# -- end to end: unload on idle, reload on demand, deadlines over HTTP -------------------------------
def test_idle_model_is_unloaded_and_reloaded_on_demand(exported_models, tmp_path, start_server, repo_tools, reference):
    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    srv = start_server(repo, {"models": {MODEL: {"instances": {"unload_after_s": 1.0}}}})
    predict = f"/v1/models/{MODEL}:predict"
    status, data, _ = srv.post(predict, json.dumps({"instances": ["my parcel is late"]}).encode())
    assert status == 200

    deadline = time.time() + 30
    while time.time() < deadline and srv.get(f"/v2/models/{MODEL}/ready")[0] == 200:
        time.sleep(0.2)
    status, body = srv.get(f"/v2/models/{MODEL}/ready")
    assert status == 503 and json.loads(body)["ready"] is False  # honest: not loaded
    assert srv.get("/v2/health/ready")[0] == 200  # the server still takes its requests
    state = json.loads(srv.get(f"/v1/models/{MODEL}")[1])["model_version_status"][0]
    assert state["state"] == "END" and "loads again on the next request" in state["status"]["error_message"]
    assert srv.metric("textops_serving_instances", model=MODEL) == 0
    assert srv.metric("textops_serving_loaded_versions", model=MODEL) == 0

    texts = ["the app crashes on start", "refund my order"]
    status, data, _ = srv.post(predict, json.dumps({"instances": texts}).encode())  # waits for the reload
    assert status == 200, (data, srv.log_path.read_text()[-3000:])
    got = [p["probabilities"] for p in data["predictions"]]
    assert max(abs(x - y) for row, ref in zip(got, reference(texts, 1)) for x, y in zip(row, ref)) < 1e-5
    assert srv.get(f"/v2/models/{MODEL}/ready")[0] == 200
    assert srv.metric("textops_serving_instance_changes_total", model=MODEL, direction="unload") >= 1
    assert srv.metric("textops_serving_instance_changes_total", model=MODEL, direction="reload") >= 1
    assert "loaded again on demand" in srv.log_path.read_text()


def test_deadline_parameters_over_http_are_checked(exported_models, tmp_path, start_server, repo_tools):
    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    srv = start_server(repo, {"models": {MODEL: {"queue": {"timeout_ms": 30000}}}})
    body = json.dumps({"instances": ["hello"]}).encode()
    status, data, _ = srv.post(f"/v1/models/{MODEL}:predict", body, {"X-Request-Timeout-Ms": "soon"})
    assert status == 400 and "X-Request-Timeout-Ms" in data["error"]
    status, data, _ = srv.post(f"/v1/models/{MODEL}:predict", body, {"X-Request-Timeout-Ms": "20000"})
    assert status == 200
    v2 = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}], "parameters": {"timeout": -1}}
    status, data, _ = srv.post(f"/v2/models/{MODEL}/infer", json.dumps(v2).encode())
    assert status == 400 and "parameters.timeout" in data["error"]
    for timeout in (20_000_000, 10**400):  # an absurdly long deadline is a long deadline, not an error
        v2["parameters"]["timeout"] = timeout
        status, data, _ = srv.post(f"/v2/models/{MODEL}/infer", json.dumps(v2).encode())
        assert status == 200, data
    status, data, _ = srv.post(f"/v1/models/{MODEL}:predict", body, {"X-Request-Timeout-Ms": "9" * 18})
    assert status == 200, data
