"""In-process tests of the layers: runtime, versions, batcher, prediction-log writer, config."""

from __future__ import annotations

import asyncio
import gzip
import random
import shutil
import time

import numpy as np
import pytest

from textops.prediction_log import PredictionRecord, ReadStats, iter_records
from textops.serving.batching import DynamicBatcher
from textops.serving.config import BatchingConfig, ConfigError, ServerConfig, load_config
from textops.serving.errors import NotFound, Overloaded, Unavailable
from textops.serving.metrics import ServingMetrics
from textops.serving.prediction_logger import PredictionLogWriter
from textops.serving.repository import ModelManager
from textops.serving.runtime import WARMUP_FILE, LoadError, ModelRuntime

MODEL = "text_classifier"


def _metric(metrics: ServingMetrics, name: str, **labels) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# -- runtime -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runtime(exported_models) -> ModelRuntime:
    rt = ModelRuntime(MODEL, 1, str(exported_models[1])).load()
    rt.warmup()
    return rt


def test_runtime_matches_saved_model(runtime, reference, test_texts):
    texts = test_texts[:7]
    prediction = runtime.predict([t.encode() for t in texts])
    np.testing.assert_allclose(prediction.probabilities, reference(texts, 1), atol=1e-6)
    assert prediction.classes == sorted(prediction.classes, key=prediction.classes.index) and len(prediction.classes) == 4
    assert prediction.labels == [prediction.classes[i] for i in prediction.probabilities.argmax(axis=1)]
    assert runtime.warmup_source == "sample texts"


def _write_warmup(version_dir, batches):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    (version_dir / "assets.extra").mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(version_dir / WARMUP_FILE)) as writer:
        for texts in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def test_warmup_uses_tf_serving_warmup_records(exported_models, tmp_path):
    version_dir = tmp_path / "1"
    shutil.copytree(exported_models[1], version_dir)
    _write_warmup(version_dir, [["hello"], ["a", "b", "c"], ["refund please"]])
    rt = ModelRuntime(MODEL, 1, str(version_dir)).load()
    assert rt.warmup() == 3 and rt.warmup_source == WARMUP_FILE

    (version_dir / WARMUP_FILE).write_bytes(b"not a tfrecord at all")
    with pytest.raises(LoadError, match="warmup records"):
        ModelRuntime(MODEL, 1, str(version_dir)).load().warmup()


def test_load_rejects_damaged_models(exported_models, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported_models[1], broken)
    for f in (broken / "variables").iterdir():
        f.write_bytes(b"")  # truncated variables
    with pytest.raises(LoadError):
        ModelRuntime(MODEL, 1, str(broken)).load().warmup()


# -- versions ----------------------------------------------------------------------------------
def _manager(repo, models=None) -> tuple[ModelManager, ServingMetrics]:
    metrics = ServingMetrics()
    # one poll loads what it finds: no settle time, no load retries (their tests are in test_hardening.py)
    config = ServerConfig.model_validate(
        {"model_repository": str(repo), "models": models or {}, "repository": {"settle_s": 0, "load_retries": 0}}
    )
    manager = ModelManager(config, metrics)
    manager.poll_once()
    manager.initial_poll_done.set()
    return manager, metrics


@pytest.mark.parametrize(
    "policy,expected",
    [
        ({"version_policy": "latest"}, [2]),
        ({"version_policy": "latest", "num_latest": 2}, [1, 2]),
        ({"version_policy": "all"}, [1, 2]),
        ({"version_policy": "specific", "versions": [1]}, [1]),
    ],
)
def test_version_policies(exported_models, tmp_path, repo_tools, policy, expected):
    repo = repo_tools.make(tmp_path, exported_models, versions=(1, 2))
    manager, metrics = _manager(repo, {MODEL: policy})
    assert manager.servable_versions(MODEL) == expected and manager.ready()
    assert manager.resolve(MODEL).version == expected[-1]
    for v in expected:
        assert _metric(metrics, "textops_serving_loaded_versions", model=MODEL, version=str(v)) == 1


def test_labels_and_lookup_errors(exported_models, tmp_path, repo_tools):
    repo = repo_tools.make(tmp_path, exported_models, versions=(1, 2))
    manager, _ = _manager(repo, {MODEL: {"version_policy": "all", "labels": {"stable": 1, "canary": 2}}})
    assert manager.resolve(MODEL, label="stable").version == 1
    assert manager.resolve(MODEL, label="canary").version == 2
    with pytest.raises(NotFound, match="label 'gold'.*canary, stable"):
        manager.resolve(MODEL, label="gold")
    with pytest.raises(NotFound, match=r"version 5 .*available: 1, 2"):
        manager.resolve(MODEL, version=5)
    with pytest.raises(NotFound, match="model 'other' is not served"):
        manager.resolve("other")


def test_failed_version_is_never_served_and_old_one_stays(exported_models, tmp_path, repo_tools):
    from textops import model_repository

    repo = repo_tools.make(tmp_path, exported_models, versions=(1,))
    manager, metrics = _manager(repo)
    repo_tools.publish_corrupt(repo, 2, exported_models[1])
    manager.poll_once()
    assert manager.servable_versions(MODEL) == [1] and manager.ready()
    assert _metric(metrics, "textops_serving_load_failures_total", model=MODEL, version="2") == 1
    manager.poll_once()  # not retried while its saved_model.pb is unchanged
    assert _metric(metrics, "textops_serving_load_failures_total", model=MODEL, version="2") == 1
    with pytest.raises(NotFound, match="failed to load"):
        manager.resolve(MODEL, version=2)
    model_repository.publish_version(str(exported_models[2]), str(repo), MODEL, version=3)
    manager.poll_once()
    assert manager.servable_versions(MODEL) == [3]  # the next good push swaps in, 1 is unloaded
    assert {s.version: s.state for s in manager.versions_status(MODEL)} == {1: "END", 2: "END", 3: "AVAILABLE"}


def test_not_ready_without_versions(tmp_path):
    (tmp_path / MODEL).mkdir()
    manager, _ = _manager(tmp_path, {MODEL: {}})
    assert not manager.ready()
    with pytest.raises(Unavailable, match="no version loaded"):
        manager.resolve(MODEL)


# -- batcher -----------------------------------------------------------------------------------
def _submit_all(runtime, texts, config: BatchingConfig):
    async def main():
        batcher = DynamicBatcher(MODEL, config, ServingMetrics()).start()
        results = await asyncio.gather(*(batcher.submit(runtime, [t]) for t in texts), return_exceptions=True)
        await batcher.close()
        return batcher, results

    return asyncio.run(main())


def test_batcher_coalesces_and_keeps_results_apart(runtime, test_texts):
    texts = [t.encode() for t in test_texts[:40]]
    batcher, results = _submit_all(runtime, texts, BatchingConfig(max_batch_size=16, max_queue=100))
    assert batcher.model_calls <= 4  # 40 concurrent texts, at most 16 per call
    got = np.concatenate([r[0].probabilities for r in results])
    np.testing.assert_allclose(got, runtime.predict(texts).probabilities, atol=1e-6)
    assert all(r[1].batch_size > 1 for r in results)


def test_batcher_disabled_calls_once_per_request(runtime, test_texts):
    texts = [t.encode() for t in test_texts[:10]]
    batcher, results = _submit_all(runtime, texts, BatchingConfig(enabled=False, max_queue=100))
    assert batcher.model_calls == 10 and all(r[1].batch_size == 1 for r in results)


def test_batcher_rejects_past_queue_limit(runtime, test_texts):
    texts = [t.encode() for t in test_texts[:10]]
    _, results = _submit_all(runtime, texts, BatchingConfig(max_queue=3))
    rejected = [r for r in results if isinstance(r, Overloaded)]
    assert len(rejected) == 7 and "limit 3" in rejected[0].message
    assert sum(1 for r in results if isinstance(r, tuple)) == 3


def test_batcher_max_wait_collects_a_fuller_batch(runtime):
    async def main():
        batcher = DynamicBatcher(MODEL, BatchingConfig(max_batch_size=8, max_wait_ms=200), ServingMetrics()).start()
        first = asyncio.create_task(batcher.submit(runtime, [b"one"]))
        await asyncio.sleep(0.01)  # well inside max_wait: the idle model waits for the second
        second = asyncio.create_task(batcher.submit(runtime, [b"two"]))
        results = await asyncio.gather(first, second)
        await batcher.close()
        return batcher, results

    batcher, results = asyncio.run(main())
    assert batcher.model_calls == 1 and [r[1].batch_size for r in results] == [2, 2]


# -- prediction log ------------------------------------------------------------------------------
def _records(n, start=0):
    return [
        PredictionRecord(request_id=f"r{i}", ts=time.time(), model=MODEL, version=1, text=f"text {i} ünï", label="a",
                         probabilities=[0.9, 0.1], classes=["a", "b"], latency_ms=1.5, protocol="rest")
        for i in range(start, start + n)
    ]


def test_log_writer_rotates_gzips_and_reads_back_exactly(tmp_path):
    metrics = ServingMetrics()
    writer = PredictionLogWriter(tmp_path, metrics, max_file_bytes=2048).start()
    for i in range(50):
        assert writer.submit(_records(10, i * 10))
    writer.close()
    stats = ReadStats()
    records = list(iter_records(tmp_path, stats))
    assert [r.request_id for r in records] == [f"r{i}" for i in range(500)]
    assert records[3].text == "text 3 ünï" and stats.corrupt == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) > 5 and all(f.startswith("predictions-") and f.endswith(".jsonl.gz") for f in files)
    assert _metric(metrics, "textops_prediction_log_records_total") == 500
    with gzip.open(tmp_path / files[0], "rt") as f:
        assert PredictionRecord.from_dict(__import__("json").loads(f.readline())).request_id == "r0"


def test_log_writer_flushes_each_batch_before_close(tmp_path):
    writer = PredictionLogWriter(tmp_path, ServingMetrics()).start()
    writer.submit(_records(3))
    deadline = time.time() + 10
    while writer.records_written < 3 and time.time() < deadline:
        time.sleep(0.01)
    assert len(list(iter_records(tmp_path))) == 3  # readable while the file is still open
    writer.close()


def test_log_writer_counts_drops_never_blocks(tmp_path):
    metrics = ServingMetrics()
    writer = PredictionLogWriter(tmp_path, metrics, queue_size=10)  # thread not started: nothing drains
    assert writer.submit(_records(8))
    assert not writer.submit(_records(5))
    assert _metric(metrics, "textops_prediction_log_dropped_total", reason="queue_full") == 5
    writer.start()
    writer.close()
    assert len(list(iter_records(tmp_path))) == 8
    assert not writer.submit(_records(1))  # after close: dropped and counted, not lost silently
    assert _metric(metrics, "textops_prediction_log_dropped_total", reason="closed") == 1


def test_log_sampling(tmp_path):
    metrics = ServingMetrics()
    writer = PredictionLogWriter(tmp_path, metrics, sample_rate=0.25, rng=random.Random(0))
    decisions = [writer.sampled() for _ in range(4000)]
    assert 800 < sum(decisions) < 1200
    assert not any(PredictionLogWriter(tmp_path, metrics, sample_rate=0.0).sampled() for _ in range(100))
    writer.skip(7)
    assert _metric(metrics, "textops_prediction_log_sampled_out_total") == 7


# -- config ----------------------------------------------------------------------------------
def test_config_from_yaml_and_flags(tmp_path):
    path = tmp_path / "serving.yaml"
    path.write_text(
        "model_repository: /models\nmodels:\n  text_classifier:\n    version_policy: specific\n    versions: [3, 4]\n"
        "    labels: {stable: 3, canary: 4}\nbatching: {max_batch_size: 32}\n"
    )
    cfg = load_config(path, port=9000, models=None, **{"batching.enabled": False})
    assert cfg.port == 9000 and cfg.grpc_port == 8500 and cfg.host == "127.0.0.1"
    assert cfg.batching.max_batch_size == 32 and not cfg.batching.enabled
    assert cfg.policy(MODEL).labels == {"stable": 3, "canary": 4} and cfg.policy("other").version_policy == "latest"


@pytest.mark.parametrize(
    "yaml_text,fragment",
    [
        ("model_repository: /m\nbatching: {max_batch_size: 0}\n", "batching.max_batch_size"),
        ("model_repository: /m\nmodels: {x: {version_policy: specific}}\n", "non-empty 'versions'"),
        ("model_repository: /m\nportt: 1\n", "portt"),
        ("model_repository: /m\nlimits: {max_instances: 1000}\nbatching: {max_queue: 10}\n", "must not exceed batching.max_queue"),
        ("[unclosed", "not valid YAML"),
    ],
)
def test_config_errors_say_what_is_wrong(tmp_path, yaml_text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace(".", r"\.")):
        load_config(path)

