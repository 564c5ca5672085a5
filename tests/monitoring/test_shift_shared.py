"""Acceptance 1 on the public datasets: sms_spam texts sent to an ag_news model are flagged as
drift; windows from the ag_news test split are not. (The 20-window figures come from
``bench/monitoring_bench.py shift``; this is the same setup with fewer windows.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.conftest import write_log
from tests.support.data import shared_dataset
from textops.monitoring.config import load_monitor_settings
from textops.monitoring.monitor import run_monitor

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def ag_news_setup(tmp_path_factory):
    from textops.components import bare, training
    from textops.monitoring.reference import build_reference

    ag = shared_dataset("ag_news")
    train = pd.read_csv(ag / "train.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(ag / "test.csv", dtype=str, keep_default_na=False).sample(frac=1.0, random_state=0)
    model = bare.train_bare(train.text.tolist(), train.label.tolist(), train_config=training.TrainConfig(epochs=3))
    model_dir = tmp_path_factory.mktemp("ag_model") / "1"
    model.export(str(model_dir))
    half = len(test) // 2
    reference = build_reference(test.text[:half].tolist(), test.label[:half].tolist(), model_dir, source="ag_news test half")
    return model_dir, reference, test.text[half:].tolist()


def _verdict(model_dir, reference, texts, tmp_path):
    log = write_log(model_dir, texts, tmp_path / "log")
    settings = load_monitor_settings(None, ["window.last=all"], log=log, output=tmp_path / "out")
    return run_monitor(settings, reference=reference).verdict


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ag_news_windows_are_not_flagged(ag_news_setup, seed, tmp_path):
    model_dir, reference, pool = ag_news_setup
    rng = np.random.default_rng(seed)
    window = [pool[i] for i in rng.choice(len(pool), 300, replace=False)]
    v = _verdict(model_dir, reference, window, tmp_path)
    assert not v.drifted and v.exit_code == 0, v.line()


@pytest.mark.parametrize("seed", [1, 2])
def test_sms_spam_windows_sent_to_an_ag_news_model_are_flagged(ag_news_setup, seed, tmp_path):
    model_dir, reference, _ = ag_news_setup
    sms = pd.read_csv(shared_dataset("sms_spam") / "test.csv", dtype=str, keep_default_na=False).text.tolist()
    rng = np.random.default_rng(seed)
    window = [sms[i] for i in rng.choice(len(sms), 300, replace=False)]
    v = _verdict(model_dir, reference, window, tmp_path)
    assert v.drifted and v.exit_code == 5, v.line()
    assert "drift:text" in v.fired
    assert v.drift["columns"]["text"]["score"] > 0.7
