"""Acceptance 4: `textops rollback` under load: no failed request, answers from the chosen version.

Counts and correctness only; the rate reached is printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np

from textops.serving.loadgen import header_version, run_load, tfs_body

MODEL = "text_classifier"
PREDICT = f"/v1/models/{MODEL}:predict"


async def _load_while(srv, bodies, n, action, delay_s):
    load = asyncio.create_task(
        run_load(srv.url + PREDICT, bodies, concurrency=8, requests=n, rate=60, version_of=header_version)
    )
    await asyncio.sleep(delay_s)
    outcome = await asyncio.to_thread(action)
    return await load, outcome


def test_rollback_under_load_drops_nothing_and_serves_the_chosen_version(
    exported_models, test_texts, tmp_path, start_server, repo_tools, reference
):
    from textops import model_repository

    repo = repo_tools.make(tmp_path, exported_models, versions=(1, 2))
    srv = start_server(repo)  # policy: latest -> version 2 is served
    status, data, headers = srv.post(PREDICT, json.dumps({"instances": test_texts[:1]}).encode())
    assert status == 200 and headers["X-Model-Version"] == "2"
    bodies = [tfs_body([t]) for t in test_texts]

    def roll_back():
        return subprocess.run(
            [sys.executable, "-m", "textops.cli", "rollback", "--model", MODEL, "--to", "1", "--model-repository", str(repo)],
            capture_output=True, text=True, timeout=300,
        )

    result, proc = asyncio.run(_load_while(srv, bodies, 1200, roll_back, delay_s=1.0))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = model_repository.latest_version(str(repo), MODEL)
    assert new.version > 2 and f"version {new.version} is a copy of version 1" in proc.stdout
    assert model_repository.read_push_record(new.path)["rollback_of"] == 1
    print(f"\nrollback: {result.ok}/{result.sent} ok at {result.throughput:.0f} req/s, statuses {dict(result.statuses)}")
    assert result.failed == 0, result.errors
    order = [v for _, v in sorted(result.versions)]
    assert str(new.version) in order, "the server did not swap to the rolled-back version while under load"
    assert order[0] == "2" and set(order) == {"2", str(new.version)}
    first_new = order.index(str(new.version))
    print(f"first answer from the rolled-back version: request {first_new} of {len(order)}")
    assert order[first_new:].count("2") <= 8  # only requests already in flight at the swap
    # The answers now are version 1's answers, exactly.
    status, data, headers = srv.post(PREDICT, json.dumps({"instances": test_texts[:20]}).encode())
    assert status == 200 and headers["X-Model-Version"] == str(new.version)
    served = np.array([p["probabilities"] for p in data["predictions"]])
    np.testing.assert_allclose(served, reference(test_texts[:20], 1), atol=1e-6)
    assert not np.allclose(served, reference(test_texts[:20], 2), atol=1e-3)  # and not version 2's
