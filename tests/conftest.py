"""The fixtures every suite shares, built on ``tests/support`` (one demo dataset factory, one
trained-model factory, one server factory). Importing textops first sets TF_USE_LEGACY_KERAS
before TensorFlow loads."""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Optional

import pytest

import textops  # noqa: F401  (must precede any TensorFlow import)
from tests.support import server as server_lib
from tests.support.data import demo_dataset as _demo_dataset
from tests.support.data import read_csv
from tests.support.models import train_and_export
from tests.support.server import MODEL, ServerProcess


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """``demo_dataset(train_rows, test_rows, seed)`` -> a demo data directory (train.csv,
    test.csv), generated once per session for each size."""
    made: dict[tuple[int, int, int], Path] = {}

    def make(train_rows: int = 600, test_rows: int = 200, seed: int = 3) -> Path:
        key = (train_rows, test_rows, seed)
        if key not in made:
            made[key] = _demo_dataset(tmp_path_factory.mktemp("demo_data"), train_rows, test_rows, seed)
        return made[key]

    return make


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """``trained_model(data_dir, epochs, seed)`` -> a SavedModel with the pipeline's signatures,
    trained on ``data_dir/train.csv`` once per session for each combination."""
    made: dict[tuple[str, int, int], Path] = {}

    def make(data_dir: Path, epochs: int, seed: int = 42) -> Path:
        key = (str(data_dir), epochs, seed)
        if key not in made:
            made[key] = train_and_export(data_dir, tmp_path_factory.mktemp("model") / "export", epochs, seed)
        return made[key]

    return make


@pytest.fixture(scope="session")
def demo_dir(demo_dataset) -> Path:
    """The pipeline tests' demo dataset (600 train / 200 test rows)."""
    return demo_dataset(600, 200, 3)


# -- serving: real exported models and real server processes (serving, loop and e2e tests) -------
@pytest.fixture(scope="session")
def demo_data(demo_dataset) -> Path:
    """The serving tests' demo dataset (600 / 150 rows)."""
    return demo_dataset(600, 150, 7)


@pytest.fixture(scope="session")
def test_texts(demo_data) -> list[str]:
    return [row["text"] for row in read_csv(demo_data / "test.csv")]


@pytest.fixture(scope="session")
def exported_models(demo_data, trained_model) -> dict[int, Path]:
    """Two real SavedModels with the pipeline's signatures, differing in their weights."""
    return {version: trained_model(demo_data, epochs, seed) for version, (epochs, seed) in {1: (2, 42), 2: (3, 7)}.items()}


@pytest.fixture(scope="session")
def reference(exported_models):
    """In-process ``tf.saved_model.load`` predictions: the ground truth every protocol must match."""
    import tensorflow as tf

    signatures = {v: tf.saved_model.load(str(p)).signatures["serving_default"] for v, p in exported_models.items()}

    def predict(texts: list[str], version: int = 2):
        return signatures[version](text=tf.constant(texts))["probabilities"].numpy()

    return predict


@pytest.fixture
def start_server(tmp_path):
    """A factory of servers (stopped, and checked to exit cleanly, at teardown)."""
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
    return types.SimpleNamespace(make=server_lib.make_repository, publish_corrupt=server_lib.publish_corrupt, model=MODEL)


@pytest.fixture(autouse=True)
def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    yield
