"""The serving tests' own fixture: one server for a module (the shared fixtures, real models and
server processes, are in tests/conftest.py and tests/support/)."""

from __future__ import annotations

import pytest

from tests.support.server import MODEL, ServerProcess, make_repository


@pytest.fixture(scope="module")
def server(exported_models, tmp_path_factory):
    """v1 and v2 in the repository, policy 'all', labels stable=1 and canary=2, a prediction log."""
    root = tmp_path_factory.mktemp("server")
    repo = make_repository(root, exported_models, versions=(1, 2))
    config = {"models": {MODEL: {"version_policy": "all", "labels": {"stable": 1, "canary": 2}}}}
    srv = ServerProcess(repo, root, config, log_dir=root / "predictions")
    yield srv
    assert srv.stop() == 0, srv.log_path.read_text()[-3000:]
