"""Settings, descriptors, curves and the ROC/PR computation, on tiny in-repo inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from textops.monitoring import curves, descriptors
from textops.errors import ExitCode
from textops.monitoring.config import MonitorError, load_monitor_settings, parse_duration


def test_settings_reject_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(MonitorError, match="drift.text_treshold: unknown setting") as err:
        load_monitor_settings(None, ["drift.text_treshold=0.7"])
    assert err.value.exit_code == ExitCode.USAGE
    with pytest.raises(MonitorError, match="drift.text_threshold"):
        load_monitor_settings(None, ["drift.text_threshold=0.4"])  # must be above chance (0.5)
    with pytest.raises(MonitorError, match="since must be before"):
        load_monitor_settings(None, ["window.since=2026-11-28T12:00:00Z", "window.until=2026-11-28T10:00:00Z"])
    config = tmp_path / "monitor.yaml"
    config.write_text("reference: runs/demo\nwindow: {last: 7d, max_records: 5000}\nquality: {f1_min: 0.8}\n")
    s = load_monitor_settings(config, ["drift.num_threshold=0.2"], log="logs")
    assert s.window.max_records == 5000 and s.quality.f1_min == 0.8 and s.drift.num_threshold == 0.2
    assert str(s.log) == "logs"
    config.write_text("- just a list\n")
    with pytest.raises(MonitorError, match="must be a mapping"):
        load_monitor_settings(config)


def test_window_bounds():
    assert parse_duration("90m") == 5400 and parse_duration("all") is None
    s = load_monitor_settings(None, ["window.last=2h", "window.until=1000000"])
    assert s.window.bounds(now=0) == (1000000 - 7200, 1000000)
    s = load_monitor_settings(None, ["window.since=2026-01-01T00:00:00"])
    start, _ = s.window.bounds(now=1.9e9)
    assert start == pytest.approx(1767225600.0)


def test_descriptors_use_the_model_tokenizer_and_vocabulary():
    vocab = descriptors.unigram_vocabulary([b"the\n", b"cat\n", b"the cat\n", "sat\n"])
    assert vocab == frozenset({"the", "cat", "sat"})
    frame = pd.DataFrame({"text": ["The CAT sat.", "the dog barked", "", "12345 !!!", "猫"]})
    descriptors.add_descriptors(frame, vocab)
    assert frame["oov_share"].tolist() == pytest.approx([0.0, 2 / 3, 0.0, 1.0, 1.0])
    assert frame["length"].tolist() == [12, 14, 0, 9, 1]
    assert frame["non_letter_share"].tolist() == pytest.approx([1 / 10, 0.0, 0.0, 1.0, 0.0])


def test_training_curves_draw_every_series_present(tmp_path):
    history = {"loss": [0.9, 0.5, 0.3], "val_loss": [1.0, 0.7, 0.6], "accuracy": [0.6, 0.8, 0.9], "val_accuracy": [0.5, 0.7, 0.8], "val_f1": [0.4, 0.6, 0.7]}
    pairs = curves.metric_pairs(history)
    assert pairs[0] == ("loss", "loss", "val_loss")
    assert ("f1", None, "val_f1") in pairs
    written = curves.write_curve_images(history, tmp_path)
    assert sorted(p.name for p in written) == ["accuracy.png", "all.png", "f1.png", "loss.png"]
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "loss.png").convert("L"))
    assert img.std() > 10  # lines and text, not a blank canvas


def test_training_curves_name_the_split_the_trainer_evaluated_on(tmp_path):
    def label(record):
        (tmp_path / curves.HISTORY_FILE).write_text(json.dumps(record))
        return curves.eval_label(tmp_path)

    history = {"loss": [0.5], "val_loss": [0.6]}
    assert label({"history": history, "eval_splits": ["validation"]}) == "validation"
    assert label({"history": history, "eval_splits": ["train-holdout"]}) == "validation (held out of train)"
    assert label({"history": history, "eval_splits": ["eval"]}) == "eval (the gate's split)"
    assert label({"history": history}) == "eval (the gate's split)"  # a record from before eval_splits
    fig = curves.curves_figure(history, evaluated_on="validation")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train", "validation"]


def test_roc_and_pr_match_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from textops.monitoring.analysis_report import _pr, _roc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(bool)
    s = np.clip(rng.normal(0.5 + 0.2 * y, 0.2), 0, 1).round(2)  # ties included
    assert _roc(s, y)[2] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert _pr(s, y)[2] == pytest.approx(average_precision_score(y, s), abs=1e-9)


def test_true_class_slices_show_recall_and_confusions_not_macro_precision():
    """A slice of one true class: its recall and what it is mistaken for; not the slice's macro
    precision (0.25 here, which reads like a failure of a class recalled at 0.9)."""
    from textops.monitoring.analysis_report import _slices_html, confusion_rows

    slices = {
        "overall": {"overall": {"candidate": {"example_count": 40.0, "accuracy": 0.85, "precision": 0.86}}},
        "label": {
            "sports": {
                "candidate": {"example_count": 20.0, "accuracy": 0.9, "precision": 0.25, "per_class/recall/sports": 0.9},
                "baseline": {"accuracy": 0.8, "precision": 0.25, "per_class/recall/sports": 0.8},
            },
            "world": {"candidate": {"example_count": 20.0, "accuracy": 0.8, "precision": 0.33, "per_class/recall/world": 0.8}},
        },
    }
    classes = ["sports", "world", "business"]
    labels = ["sports"] * 20 + ["world"] * 20
    predicted = [0] * 18 + [1, 2] + [1] * 16 + [0] * 3 + [2]
    probs = np.eye(3)[predicted]
    confusions = {"candidate": confusion_rows(labels, probs, classes)}
    assert confusions["candidate"]["world"] == {"world": 16, "sports": 3, "business": 1}
    html = _slices_html(slices, "label", confusions)
    by_label = html.split("By label")[1]
    assert "recall (baseline)" in by_label and "mistaken for (candidate)" in by_label
    assert "precision</th>" not in by_label.split("</table>")[0]  # no macro precision column for class slices
    assert "0.2500" not in by_label
    assert "sports 15.0% (3), business 5.0% (1)" in by_label  # world's confusions, share of the slice
    assert "<td>0.9000</td>" in by_label and "<td>0.8000</td>" in by_label
    # without a scored eval split the recall still shows, and the page says why confusions are missing
    assert "could not be scored" in _slices_html(slices, "label", {})
