import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tensorflow as tf

from textops import model_repository as repo


def make_saved_model(path: Path, scale: float = 1.0) -> Path:
    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(scale)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return {"y": x * self.w}

    m = M()
    tf.saved_model.save(m, str(path), signatures=m.__call__)
    return path


def test_publish_lists_and_orders_versions(tmp_path: Path):
    src = make_saved_model(tmp_path / "src")
    r = str(tmp_path / "repo")
    assert repo.latest_version(r, "m") is None
    v1 = repo.publish_version(str(src), r, "m", record={"note": "first"}, version=5)
    v2 = repo.publish_version(str(src), r, "m")
    assert v2.version > v1.version == 5
    assert [v.version for v in repo.list_versions(r, "m")] == [5, v2.version]
    assert repo.read_push_record(v1.path)["note"] == "first"
    assert repo.list_models(r) == ["m"]
    loaded = tf.saved_model.load(v1.path)
    assert float(loaded.signatures["serving_default"](tf.constant([2.0]))["y"][0]) == 2.0
    with pytest.raises(FileExistsError):
        repo.publish_version(str(src), r, "m", version=5)


def test_incomplete_or_hidden_directories_are_not_versions(tmp_path: Path):
    r = tmp_path / "repo"
    (r / "m" / "7").mkdir(parents=True)  # no saved_model.pb: partial
    (r / "m" / ".staging-9-abc").mkdir()
    (r / "m" / "notes").mkdir()
    assert repo.list_versions(str(r), "m") == []


def test_failure_mid_copy_leaves_no_version(tmp_path: Path, monkeypatch):
    src = make_saved_model(tmp_path / "src")
    r = str(tmp_path / "repo")
    calls = {"n": 0}
    real_copy = tf.io.gfile.copy

    def flaky(a, b, overwrite=False):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_copy(a, b, overwrite=overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", flaky)
    with pytest.raises(OSError, match="disk full"):
        repo.publish_version(str(src), r, "m", version=3)
    assert os.listdir(os.path.join(r, "m")) == []  # neither a version nor a staging dir


def test_killed_push_leaves_no_version_and_next_push_cleans_up(tmp_path: Path):
    src = make_saved_model(tmp_path / "src")
    r = tmp_path / "repo"
    marker = tmp_path / "copying"
    script = textwrap.dedent(
        f"""
        import time, textops
        import tensorflow as tf
        from textops import model_repository as repo
        real = tf.io.gfile.copy
        def slow(a, b, overwrite=False):
            real(a, b, overwrite=overwrite)
            open({str(marker)!r}, "w").close()
            time.sleep(60)
        tf.io.gfile.copy = slow
        repo.publish_version({str(src)!r}, {str(r)!r}, "m", version=11)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 120
        while not marker.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), "the push never started copying"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    entries = os.listdir(r / "m")
    assert not (r / "m" / "11").exists()
    assert entries and all(e.startswith(repo.STAGING_PREFIX) for e in entries)
    assert repo.list_versions(str(r), "m") == []
    v = repo.publish_version(str(src), str(r), "m", version=12)
    assert os.listdir(r / "m") == ["12"] and v.version == 12
