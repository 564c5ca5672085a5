"""The alert policy: each signal alerts on its own, and the label-free performance estimate.

Windows are the fixture model's real predictions on demo texts (four classes); each test builds a
window in which one thing changed and checks that exactly the signal meant for it fired.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.monitoring.conftest import write_log
from textops.errors import ExitCode
from textops.monitoring.config import load_monitor_settings
from textops.monitoring.monitor import run_monitor, write_outputs
from textops.monitoring.reference import Reference


def _verdict(reference, log: Path, out: Path, *overrides: str, feedback: Path | None = None):
    settings = load_monitor_settings(None, ["window.last=all", *overrides], log=log, output=out, feedback=feedback)
    return run_monitor(settings, reference=reference)


def _feedback(rows: pd.DataFrame, path: Path, prefix: str = "req") -> Path:
    path.write_text("".join(json.dumps({"request_id": f"{prefix}-{i}", "label": lab}) + "\n" for i, lab in enumerate(rows.label)))
    return path


def _drift_checks(verdict) -> set[str]:
    return {f for f in verdict.fired if f.startswith("drift:")}


@pytest.fixture(scope="module")
def reference(reference_dir) -> Reference:
    return Reference.load(reference_dir)


@pytest.fixture(scope="module")
def estimate_reference(estimate_reference_dir) -> Reference:
    """2,000 reference texts, for the tests that hold the estimate to 3 points (conftest)."""
    return Reference.load(estimate_reference_dir)


def test_in_distribution_window_raises_no_alert_and_the_estimate_matches_the_labels(model_dir, estimate_reference, held_out, tmp_path):
    log = write_log(model_dir, held_out.text.tolist(), tmp_path / "log")
    v = _verdict(estimate_reference, log, tmp_path / "out", feedback=_feedback(held_out, tmp_path / "fb.jsonl")).verdict
    assert v.alerts == [] and v.exit_code == ExitCode.OK, v.line()
    assert not any(s["fired"] for s in v.drift["signals"].values())
    assert v.estimate["priors_adjusted"] is False
    check = v.estimate["versus_labels"]
    assert check["rows"] == len(held_out)
    assert abs(check["error"]["accuracy"]) < 0.03, check
    acc = v.estimate["metrics"]["accuracy"]
    assert acc["low"] < acc["value"] < acc["high"]
    assert "estimated accuracy" in v.line()


def test_a_window_of_two_classes_alerts_with_the_prediction_signal_named(model_dir, estimate_reference, held_out, tmp_path):
    """Window "C": only two of the four classes arrive; the texts are the corpus's own."""
    two = held_out[held_out.label.isin(["billing", "technical"])].reset_index(drop=True)
    log = write_log(model_dir, two.text.tolist(), tmp_path / "log")
    result = _verdict(estimate_reference, log, tmp_path / "out", feedback=_feedback(two, tmp_path / "fb.jsonl"))
    v = result.verdict
    assert v.exit_code == ExitCode.DRIFT
    assert "drift:prediction" in v.fired
    prediction = v.drift["signals"]["prediction"]
    assert prediction["fired"] and prediction["score"] > prediction["limit"] >= prediction["threshold"]
    alert = next(a for a in v.alerts if a.check == "prediction")
    # what it means: which classes the model now predicts, against the reference
    assert "'billing'" in alert.message and "'shipping'" in alert.message and "(reference " in alert.message
    assert "prediction drift" in v.line()
    # the estimate re-weights to the window's priors and stays close to the true accuracy
    assert v.estimate["priors_adjusted"] is True
    assert v.estimate["estimated_priors"]["shipping"] < 0.05
    assert abs(v.estimate["versus_labels"]["error"]["accuracy"]) < 0.03, v.estimate["versus_labels"]
    paths = write_outputs(result, tmp_path / "out")
    html = Path(paths["report"]).read_text()
    assert "Signals that alert on their own" in html and "Performance estimated without labels" in html
    assert "the model now predicts" in html
    saved = json.loads(Path(paths["verdict"]).read_text())
    assert saved["drift"]["signals"]["prediction"]["fired"] is True
    assert saved["estimate"]["metrics"]["accuracy"]["value"] == pytest.approx(v.estimate["metrics"]["accuracy"]["value"])


def test_prediction_signal_alone(model_dir, reference, held_out, tmp_path):
    """Half the requests are billing questions (a quarter in the reference), some repeated: the
    distinct texts look like the corpus; what the model answers does not."""
    billing = held_out[held_out.label == "billing"].sample(250, replace=True, random_state=1)
    rest = held_out[held_out.label != "billing"].sample(250, random_state=1)
    log = write_log(model_dir, pd.concat([billing, rest]).text.tolist(), tmp_path / "log")
    v = _verdict(reference, log, tmp_path / "out").verdict
    assert _drift_checks(v) == {"drift:prediction"}, v.line()
    assert not v.drift["dataset_drift"] and v.exit_code == ExitCode.DRIFT
    v_off = _verdict(reference, log, tmp_path / "out2", "drift.alert_on_prediction_drift=false").verdict
    assert v_off.exit_code == ExitCode.OK, v_off.line()  # the same window without that rule: nothing


def test_confidence_signal_alone(model_dir, reference, held_out, tmp_path):
    """The same texts and decisions, but probabilities flattened (a model that became unsure)."""
    from textops.monitoring.reference import score

    probs, classes = score(model_dir, held_out.text.tolist())
    flat = np.exp(np.log(np.clip(probs, 1e-9, 1.0)) / 3)
    flat /= flat.sum(axis=1, keepdims=True)
    assert (flat.argmax(axis=1) == probs.argmax(axis=1)).all()
    log = write_log(model_dir, held_out.text.tolist(), tmp_path / "log", probabilities=flat, classes=classes)
    v = _verdict(reference, log, tmp_path / "out").verdict
    assert _drift_checks(v) == {"drift:confidence"}, v.line()
    assert "mean confidence" in next(a.message for a in v.alerts if a.check == "confidence")


def test_text_signal_alone(model_dir, reference, held_out, tmp_path):
    """Half the texts carry a word the corpus never uses; labels and confidence barely move."""
    texts = [t + " pls" if i % 2 else t for i, t in enumerate(held_out.text)]
    log = write_log(model_dir, texts, tmp_path / "log")
    v = _verdict(reference, log, tmp_path / "out").verdict
    assert _drift_checks(v) == {"drift:text"}, v.line()
    assert not v.drift["dataset_drift"]


def test_estimate_alone_alerts_below_the_gate_threshold(model_dir, reference, held_out, tmp_path):
    """An in-distribution window held to a gate the model cannot meet: only the estimate fires,
    with the threshold taken from the reference run's gate; exit 6 (quality)."""
    gated = Reference(reference.frame, reference.classes, reference.vocabulary, dict(reference.meta, run_id="r1", gate_thresholds={"accuracy": 0.99, "auc": 0.5}))
    log = write_log(model_dir, held_out.text.tolist(), tmp_path / "log")
    v = _verdict(gated, log, tmp_path / "out").verdict
    assert v.fired == ["quality:estimated_accuracy"], v.line()
    assert v.exit_code == ExitCode.QUALITY
    assert "the gate of run r1" in v.alerts[0].message and v.alerts[0].threshold == 0.99
    assert set(v.estimate["thresholds"]) == {"accuracy"}  # AUC is not estimated
    # the monitor's own setting wins over the gate
    v2 = _verdict(gated, log, tmp_path / "out2", "estimate.accuracy_min=0.5").verdict
    assert v2.exit_code == ExitCode.OK, v2.line()


# -- the estimate on synthetic data with known calibration (no model) ------------------------------
def _gaussian_task(rng, n, priors, means, scale=1.3):
    """Texts stand-in: x ~ N(mean_label, I); the true posterior under ``reference_priors`` is
    known in closed form."""
    k = len(priors)
    y = rng.choice(k, size=n, p=priors)
    x = means[y] + rng.normal(0, scale, size=(n, means.shape[1]))
    log_lik = -((x[:, None, :] - means[None]) ** 2).sum(-1) / (2 * scale**2)
    return x, y, log_lik


def _posterior(log_lik, priors):
    z = log_lik + np.log(priors)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _synthetic(seed: int, spread: float, window_priors, window_rows: int, sharpen: float = 1.0):
    """A 4-class task with known posteriors; the model reports them sharpened by ``sharpen``
    (2.5: overconfident). Returns classes, the calibrator fitted on 6,000 reference rows, the
    reference's and the window's model probabilities, the window's labels and true posteriors."""
    from textops.monitoring.estimate import Calibrator

    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c", "d"]
    priors = np.full(4, 0.25)
    means = rng.normal(0, spread, size=(4, 5))
    _, y_ref, ll_ref = _gaussian_task(rng, 6000, priors, means)
    _, y_win, ll_win = _gaussian_task(rng, window_rows, np.asarray(window_priors), means)
    reference, window = _posterior(sharpen * ll_ref, priors), _posterior(sharpen * ll_win, priors)
    calibrator = Calibrator(classes).fit(reference, [classes[i] for i in y_ref])
    return classes, calibrator, reference, window, y_win, _posterior(ll_win, priors)


def test_estimate_recovers_accuracy_of_an_overconfident_model():
    from textops.monitoring.estimate import estimate

    classes, calibrator, _, window, y_win, truth = _synthetic(7, 1.5, [0.25] * 4, 3000, sharpen=2.5)
    predicted = window.argmax(axis=1)
    true_acc = float((predicted == y_win).mean())
    expected_acc = float(truth[np.arange(len(y_win)), predicted].mean())
    est = estimate(calibrator.transform(window), predicted, classes, None)
    assert window.max(axis=1).mean() - true_acc > 0.05  # the raw confidence overstates accuracy
    assert abs(est.metrics["accuracy"].value - expected_acc) < 0.02
    assert abs(est.metrics["accuracy"].value - true_acc) < 0.03
    acc = est.metrics["accuracy"]
    assert acc.low <= true_acc <= acc.high
    assert abs(est.metrics["f1"].value - true_acc) < 0.05  # balanced classes: macro-F1 near accuracy
    for c in classes:
        assert 0.0 <= est.per_class[c]["recall"].low <= est.per_class[c]["recall"].high <= 1.0


def test_prior_adjustment_keeps_the_estimate_right_under_a_label_shift():
    from textops.monitoring.estimate import adjust_to_priors, estimate

    classes, calibrator, reference, window, y_win, _ = _synthetic(3, 1.2, [0.5, 0.5, 0.0, 0.0], 2000)
    predicted = window.argmax(axis=1)
    true_acc = float((predicted == y_win).mean())
    calibrated = calibrator.transform(window)
    plain = estimate(calibrated, predicted, classes, None).metrics["accuracy"].value
    adjusted, new_priors = adjust_to_priors(calibrated, calibrator.transform(reference).mean(axis=0))
    shifted = estimate(adjusted, predicted, classes, None).metrics["accuracy"].value
    assert new_priors[:2].sum() > 0.95
    assert abs(shifted - true_acc) < 0.03
    assert abs(shifted - true_acc) < abs(plain - true_acc)


def test_noise_level_grows_with_the_number_of_classes():
    """50 equally likely classes, windows of 500: sampling alone puts the Jensen-Shannon distance
    above the 0.1 threshold, so the prediction signal's limit is the noise level; a real shift
    still passes it."""
    from textops.monitoring.drift import noise_level, stat_score

    rng = np.random.default_rng(0)
    labels = [f"c{i}" for i in range(50)]
    reference = pd.Series(rng.choice(labels, size=5000))
    noise, rows = noise_level(reference, 500, "jensenshannon", 0.99, 100, 0, categorical=True)
    assert rows == 500 and noise > 0.1
    same = stat_score(reference, pd.Series(rng.choice(labels, size=500)), "jensenshannon", True)
    shifted = stat_score(reference, pd.Series(rng.choice(labels[:10], size=500)), "jensenshannon", True)
    assert same < noise < shifted
    few, _ = noise_level(pd.Series(rng.choice(labels[:4], size=5000)), 500, "jensenshannon", 0.99, 100, 0, categorical=True)
    assert few < 0.1  # four classes: the threshold is the limit


def test_estimate_settings_are_validated():
    from textops.monitoring.config import MonitorError

    s = load_monitor_settings(None, ["estimate.calibration=sigmoid", "estimate.f1_min=0.7", "drift.confidence_threshold=0.3"])
    assert s.estimate.minimums() == {"f1": 0.7} and s.drift.confidence_threshold == 0.3
    with pytest.raises(MonitorError, match="estimate.calibration"):
        load_monitor_settings(None, ["estimate.calibration=platt"])
    with pytest.raises(MonitorError, match="drift.noise_quantile"):
        load_monitor_settings(None, ["drift.noise_quantile=0.3"])


def test_estimated_metrics_use_the_gate_definitions():
    """The vectorised metrics of the estimate equal ``ClassificationStats`` (the gate's) on the
    same confusion matrices, absent and never-predicted classes included."""
    from textops.components.classification import ClassificationStats
    from textops.monitoring.estimate import gate_metrics

    rng = np.random.default_rng(5)
    for k, positive in ((5, None), (2, 0), (2, 1)):
        confusions = rng.integers(0, 6, size=(30, k, k)).astype(float)
        confusions[:10, 1, :] = 0  # class 1 absent from the labels
        confusions[10:20, :, 2 % k] = 0  # a class never predicted
        got = gate_metrics(confusions, positive)
        classes = tuple(f"c{i}" for i in range(k))
        for b in range(len(confusions)):
            stats = ClassificationStats(classes)
            stats.confusion[:k, :] = confusions[b]
            label = None if positive is None else classes[positive]
            for m in ("accuracy", "precision", "recall", "f1"):
                want = stats.headline(m, label)
                assert (np.isnan(want) and np.isnan(got[m][b])) or got[m][b] == pytest.approx(want), (k, m, b)
            per = stats.per_class()
            for j, c in enumerate(classes):
                assert np.isnan(got["class_recall"][b, j]) == np.isnan(per[c]["recall"])


def test_fast_noise_level_equals_evidently_jensenshannon():
    from textops.monitoring.drift import _jensenshannon_codes, stat_score

    rng = np.random.default_rng(2)
    ref = pd.Series(rng.choice(list("abcdef"), size=800, p=[0.3, 0.3, 0.2, 0.1, 0.1, 0.0]))
    cur = pd.Series(rng.choice(list("abcdef"), size=300))
    codes, uniques = pd.factorize(pd.concat([ref, cur], ignore_index=True))
    fast = _jensenshannon_codes(codes[:800], codes[800:], len(uniques))
    assert fast == pytest.approx(stat_score(ref, cur, "jensenshannon", categorical=True), abs=1e-12)
