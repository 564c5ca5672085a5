"""Real distributed training: two MultiWorkerMirroredStrategy workers on loopback, and resuming
a killed job from its checkpoint. Each case starts separate processes, as a cluster would."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = str(Path(__file__).with_name("_train_worker.py"))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **extra})
    return env


def _run(args, env, timeout=300):
    return subprocess.run([sys.executable, WORKER, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_two_workers_train_in_lockstep_and_match_a_single_worker(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                [sys.executable, WORKER, str(tmp_path / f"w{index}.npy"), "worker", str(index)],
                env=_env(TF_CONFIG=tf_config),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    single = _run([str(tmp_path / "single.npy"), "single"], _env())
    assert single.returncode == 0, single.stderr[-3000:]
    w0, w1, s = (np.load(tmp_path / f) for f in ("w0.npy", "w1.npy", "single.npy"))
    assert w0[-1] == w1[-1] == s[-1] == 12  # the same number of steps everywhere
    np.testing.assert_array_equal(w0, w1)  # workers hold identical weights (synchronous all-reduce)
    assert np.max(np.abs(w0 - s)) <= 1e-5  # = one worker on the same global batch
    assert np.max(np.abs(w0[:-1] - _initial_weights())) > 1e-3  # and they did train


def _initial_weights():
    import tf_keras as keras

    from textops.components import model as model_lib

    keras.utils.set_random_seed(42)  # training.TrainConfig's default seed, set before the build
    m = model_lib.build_bow_model(model_lib.BowConfig(vocab_size=50, num_classes=3, embedding_dim=8, learning_rate=0.05))
    return np.concatenate([w.numpy().ravel() for w in m.weights])


def test_a_killed_job_resumes_from_its_checkpoint_with_the_same_step_count(tmp_path):
    backup = str(tmp_path / "backup")
    killed = _run([str(tmp_path / "never.npy"), "resume", backup], _env(EPOCHS="4", KILL_AFTER_EPOCH="2"))
    assert killed.returncode == 17, killed.stderr[-3000:]
    assert not (tmp_path / "never.npy").exists() and os.listdir(backup)
    resumed = _run([str(tmp_path / "resumed.npy"), "resume", backup], _env(EPOCHS="4"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    uninterrupted = _run([str(tmp_path / "straight.npy"), "resume", str(tmp_path / "other")], _env(EPOCHS="4"))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    r, u = np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "straight.npy")
    assert r[-1] == u[-1] == 4 * 12  # finished with the step count it would have had
    np.testing.assert_allclose(r[:-1], u[:-1], atol=1e-5)  # and the same model
    assert not os.path.exists(backup) or not os.listdir(backup)  # cleaned up after success
