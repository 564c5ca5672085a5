"""The label-free estimate's calibration, prior-shift test and alert rule.

Synthetic tasks with known posteriors (no model) for the statistical properties; the fixture
model's real predictions for what ``run_monitor`` does with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.monitoring.conftest import write_log
from textops.errors import ExitCode
from textops.monitoring.config import MonitorError, load_monitor_settings
from textops.monitoring.estimate import (
    Calibrator,
    Interval,
    estimate,
    falls_below,
    prior_shift_noise,
    prior_shift_test,
    reference_recall,
)
from textops.monitoring.monitor import run_monitor
from textops.monitoring.reference import Reference


def _task(rng: np.random.Generator, n: int, priors: np.ndarray, means: np.ndarray, scale: float = 1.3):
    """x ~ N(mean_label, I); returns labels and log-likelihoods ``[n, k]`` (posteriors in closed form)."""
    y = rng.choice(len(priors), size=n, p=priors)
    x = means[y] + rng.normal(0, scale, size=(n, means.shape[1]))
    return y, -((x[:, None, :] - means[None]) ** 2).sum(-1) / (2 * scale**2)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _names(k: int) -> list[str]:
    return [f"c{i}" for i in range(k)]


# -- calibration ----------------------------------------------------------------------------------
def test_temperature_scaling_recovers_the_temperature_of_an_overconfident_model():
    rng = np.random.default_rng(1)
    k = 6
    means = rng.normal(0, 1.2, size=(k, 5))
    y, ll = _task(rng, 4000, np.full(k, 1 / k), means)
    reported = _softmax(2.5 * ll)  # logits 2.5 times too large: the true posterior is softmax(ll)
    cal = Calibrator(_names(k), "temperature").fit(reported, [f"c{i}" for i in y])
    assert cal._calibrated.temperature == pytest.approx(2.5, rel=0.1)
    q = cal.transform(reported)
    assert (q.argmax(axis=1) == reported.argmax(axis=1)).all()  # one temperature keeps every decision
    assert np.abs(q - _softmax(ll)).max() < 0.1


def test_top_label_calibration_gives_the_reference_its_own_accuracy_where_per_class_isotonic_does_not():
    """20 classes, 100 reference texts per class, an overconfident model: per-class isotonic
    steps renormalised miss the reference's own accuracy; the top-label step's expected accuracy
    is the reference's accuracy (isotonic regression keeps the mean), and on fresh windows of the
    same traffic it is closer to the truth."""
    rng = np.random.default_rng(4)
    k = 20
    means = rng.normal(0, 1.0, size=(k, 8))
    y_ref, ll_ref = _task(rng, 2000, np.full(k, 1 / k), means)
    reference = _softmax(2.0 * ll_ref)
    labels = [f"c{i}" for i in y_ref]
    per_class = Calibrator(_names(k), "isotonic").fit(reference, labels)
    top = Calibrator(_names(k), "isotonic", top_label=True).fit(reference, labels)
    predicted = reference.argmax(axis=1)
    accuracy = float((predicted == y_ref).mean())
    rows = np.arange(len(y_ref))
    assert top.transform(reference)[rows, predicted].mean() == pytest.approx(accuracy, abs=1e-9)
    assert abs(per_class.transform(reference)[rows, predicted].mean() - accuracy) > 0.01
    errors = {"per class": [], "top label": []}
    for _ in range(10):
        y, ll = _task(rng, 500, np.full(k, 1 / k), means)
        window = _softmax(2.0 * ll)
        pred = window.argmax(axis=1)
        truth = float((pred == y).mean())
        for name, cal in (("per class", per_class), ("top label", top)):
            errors[name].append(abs(cal.transform(window)[np.arange(500), pred].mean() - truth))
    assert np.mean(errors["top label"]) < np.mean(errors["per class"])
    q = top.transform(window)
    assert np.allclose(q.sum(axis=1), 1.0) and (q >= 0).all()


def test_auto_calibration_picks_the_lowest_cross_validated_log_loss():
    rng = np.random.default_rng(2)
    k = 4
    means = rng.normal(0, 1.5, size=(k, 5))
    y, ll = _task(rng, 1500, np.full(k, 1 / k), means)
    cal = Calibrator(_names(k), "auto").fit(_softmax(3.0 * ll), [f"c{i}" for i in y])
    assert set(cal.cv_log_loss) == {"isotonic", "sigmoid", "temperature"}
    assert cal.chosen == min(cal.cv_log_loss, key=cal.cv_log_loss.get)
    # a model that is only too sure of itself: one temperature fixes it best
    assert cal.chosen == "temperature"
    with pytest.raises(ValueError, match="calibration 'platt' is none of auto"):
        Calibrator(_names(k), "platt")


# -- prior-shift test --------------------------------------------------------------------------------
def test_prior_shift_test_rejects_a_mild_label_shift_and_rarely_an_unshifted_window():
    rng = np.random.default_rng(3)
    k = 4
    means = rng.normal(0, 1.3, size=(k, 5))
    flat = np.full(k, 1 / k)
    rejected_unshifted = 0
    for _ in range(40):
        _, ll = _task(rng, 500, flat, means)
        rejected_unshifted += prior_shift_test(_softmax(ll), flat).p_value < 0.01
    assert rejected_unshifted <= 2  # the test's level is 1%
    _, ll = _task(rng, 500, np.array([0.4, 0.3, 0.2, 0.1]), means)
    shifted = prior_shift_test(_softmax(ll), flat)
    assert shifted.p_value < 0.01 and shifted.statistic > 0
    assert shifted.priors[0] > shifted.priors[3]
    assert np.allclose(shifted.adjusted.sum(axis=1), 1.0)


def test_top_label_calibration_shares_the_rest_in_the_model_s_own_proportions():
    """No class the model gives a probability is set to zero (per-class isotonic steps do that),
    so re-weighting to a window's priors can still move a confident error to its true class."""
    rng = np.random.default_rng(4)
    k = 5
    y, ll = _task(rng, 1500, np.full(k, 1 / k), rng.normal(0, 1.2, size=(k, 5)))
    p = _softmax(2.0 * ll)
    q = Calibrator(_names(k), top_label=True).fit(p, [f"c{i}" for i in y]).transform(p)
    rows, top = np.arange(len(p)), p.argmax(axis=1)
    rest_q, rest_p = q.copy(), p.copy()
    rest_q[rows, top] = rest_p[rows, top] = 0.0
    unsure = q[rows, top] < 1.0  # (where the reference's decisions at that confidence were all right, no rest)
    assert unsure.mean() > 0.5
    share_q = rest_q[unsure] / rest_q[unsure].sum(axis=1, keepdims=True)
    share_p = rest_p[unsure] / rest_p[unsure].sum(axis=1, keepdims=True)
    assert np.allclose(share_q, share_p) and (q[unsure] > 0).all()
    iso = Calibrator(_names(k), "isotonic").fit(p, [f"c{i}" for i in y]).transform(p)
    assert (iso == 0).any()  # what the top-label step avoids


def test_pruned_priors_and_pooled_recall_undo_em_s_credit_to_classes_that_stopped_arriving():
    """Two of 12 classes arrive. EM's priors never reach zero: the absent classes keep ~14% of
    them (their few confident errors), and those texts count as answered right. Dropping the
    classes the likelihood does not need, and pooling each class's recall with the reference's,
    brings the estimate back to the truth."""
    plain_err, pooled_err = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        k = 12
        means = rng.normal(0, 1.0, size=(k, 8))
        y_ref, ll = _task(rng, 2000, np.full(k, 1 / k), means)
        ref = _softmax(2.0 * ll)
        cal = Calibrator(_names(k), top_label=True).fit(ref, [f"c{i}" for i in y_ref])
        base = cal.transform(ref).mean(axis=0)
        y, ll_w = _task(rng, 500, np.array([0.5, 0.5] + [0.0] * (k - 2)), means)
        window = _softmax(2.0 * ll_w)
        pred = window.argmax(axis=1)
        truth = float((pred == y).mean())
        q = cal.transform(window)
        plain, pruned = prior_shift_test(q, base, None), prior_shift_test(q, base, 0.01)
        assert plain.support.all() and not pruned.support.all() and pruned.support[:2].all()
        assert pruned.priors[2:].sum() < plain.priors[2:].sum()
        plain_err.append(plain.adjusted[np.arange(len(pred)), pred].mean() - truth)
        pooled = estimate(pruned.adjusted, pred, _names(k), None, draws=20, recall_prior=reference_recall(ref, y_ref, k))
        pooled_err.append(pooled.metrics["accuracy"].value - truth)
    assert np.mean(plain_err) > 0.04  # the over-credit
    assert np.mean(np.abs(pooled_err)) < 0.03 and np.mean(np.abs(pooled_err)) < np.mean(np.abs(plain_err))


def test_the_noise_level_keeps_a_small_many_class_reference_from_rejecting_unshifted_windows():
    """40 classes, 1,000 reference texts (25 each): the reference's own priors are ~20% off, so the
    chi-squared level rejects unshifted windows often; the level of resampled reference pairs does
    not, and a window of two classes is still far above it."""
    from scipy.stats import chi2

    rng = np.random.default_rng(5)
    k = 40
    means = rng.normal(0, 1.6, size=(k, 10))
    flat = np.full(k, 1 / k)
    y_ref, ll = _task(rng, 1000, flat, means)
    cal = Calibrator(_names(k), top_label=True).fit(_softmax(ll), [f"c{i}" for i in y_ref])
    q_ref = cal.transform(_softmax(ll))
    base = q_ref.mean(axis=0)
    noise = prior_shift_noise(q_ref, 500)
    critical = chi2.isf(0.01, k - 1)
    stats = [prior_shift_test(cal.transform(_softmax(_task(rng, 500, flat, means)[1])), base).statistic for _ in range(30)]
    assert sum(s > critical for s in stats) >= 5
    assert sum(s > max(critical, noise) for s in stats) <= 1
    two = np.zeros(k)
    two[:2] = 0.5
    assert prior_shift_test(cal.transform(_softmax(_task(rng, 500, two, means)[1])), base).statistic > 2 * noise
    # a window larger than NOISE_MAX_ROWS is judged as one of that size: the level scales with its rows
    from textops.monitoring.estimate import NOISE_MAX_ROWS

    at_cap = prior_shift_noise(q_ref, NOISE_MAX_ROWS, draws=10)
    assert prior_shift_noise(q_ref, 4 * NOISE_MAX_ROWS, draws=10) == pytest.approx(4 * at_cap)


# -- the alert rule -----------------------------------------------------------------------------------
def test_windows_of_a_model_just_above_the_gate_alert_rarely_under_the_interval_rule():
    """The wisesight case: a model whose metric on the traffic sits just above the gate.
    Windows of 500 from that traffic dip below the gate by chance; the estimate's interval
    (texts resampled, labels drawn) says that is within what a window of this size varies by,
    so the interval rule alerts in at most a few percent of windows, the point rule in many."""
    rng = np.random.default_rng(0)
    n, windows = 500, 100
    classes = _names(4)
    traffic = 0.51  # a text of this traffic is answered right with probability 0.51 on average
    alerts = {"interval": 0, "value": 0}
    covered = 0
    for w in range(windows):
        predicted = rng.integers(0, 4, size=n)
        right = np.clip(traffic + rng.normal(0, 0.3, size=n), 0.0, 1.0)  # per text, around the traffic's
        q = np.repeat(((1 - right) / 3)[:, None], 4, axis=1)
        q[np.arange(n), predicted] = right
        est = estimate(q, predicted, classes, None, draws=40, seed=w).metrics["accuracy"]
        for rule in alerts:
            alerts[rule] += falls_below(est, 0.5, rule)
        covered += est.low <= traffic <= est.high
    assert alerts["interval"] <= 0.05 * windows, alerts
    assert alerts["value"] >= 0.1 * windows, alerts
    assert covered >= 0.9 * windows
    assert falls_below(Interval(0.40, 0.36, 0.44), 0.5) and not falls_below(Interval(0.48, 0.45, 0.51), 0.5)
    assert falls_below(Interval(0.48, 0.45, 0.51), 0.5, "value")
    assert not falls_below(Interval(float("nan"), float("nan"), float("nan")), 0.5, "value")


@pytest.fixture(scope="module")
def reference(estimate_reference_dir) -> Reference:
    return Reference.load(estimate_reference_dir)


def _run(reference, log: Path, out: Path, *overrides: str, feedback: Path | None = None):
    settings = load_monitor_settings(None, ["window.last=all", *overrides], log=log, output=out, feedback=feedback)
    return run_monitor(settings, reference=reference).verdict


def test_an_estimate_just_below_the_gate_alerts_only_when_its_interval_lies_below(model_dir, reference, held_out, tmp_path):
    log = write_log(model_dir, held_out.text.tolist(), tmp_path / "log")
    quick = "drift.enabled=false"  # only the estimate is under test here
    first = _run(reference, log, tmp_path / "o1", quick)
    acc = first.estimate["metrics"]["accuracy"]
    assert first.estimate["alert_when"] == "interval"
    bar = round(acc["value"] + 0.005, 4)  # above the estimate, inside its interval
    assert acc["low"] < bar < acc["high"]
    gated = Reference(reference.frame, reference.classes, reference.vocabulary, dict(reference.meta, run_id="r2", gate_thresholds={"accuracy": bar}))
    v = _run(gated, log, tmp_path / "o2", quick)
    assert v.exit_code == ExitCode.OK, v.line()
    v_point = _run(gated, log, tmp_path / "o3", quick, "estimate.alert_when=value")
    assert v_point.fired == ["quality:estimated_accuracy"], v_point.line()
    assert "is below" in v_point.alerts[0].message
    high = Reference(reference.frame, reference.classes, reference.vocabulary, dict(reference.meta, run_id="r3", gate_thresholds={"accuracy": acc["high"] + 0.01}))
    v_high = _run(high, log, tmp_path / "o4", quick)
    assert v_high.fired == ["quality:estimated_accuracy"] and "lies wholly below" in v_high.alerts[0].message


def test_the_prior_shift_test_reweights_a_shifted_window_without_the_prediction_signal(model_dir, reference, held_out, tmp_path):
    """Drift checks off (no prediction signal at all): the likelihood-ratio test on the window's own
    probabilities finds the two-class window and the estimate is re-weighted; turned off, it is not."""
    two = held_out[held_out.label.isin(["billing", "technical"])].reset_index(drop=True)
    log = write_log(model_dir, two.text.tolist(), tmp_path / "log")
    fb = tmp_path / "fb.jsonl"
    fb.write_text("".join(json.dumps({"request_id": f"req-{i}", "label": lab}) + "\n" for i, lab in enumerate(two.label)))
    v = _run(reference, log, tmp_path / "o1", "drift.enabled=false", feedback=fb)
    test = v.estimate["prior_shift_test"]
    assert test["signal"] is False and test["p_value"] < 0.01
    assert v.estimate["priors_adjusted"] is True
    # no other signal ran: the test's own alert says the label mix moved, and to what
    drift = [a for a in v.alerts if a.kind == "drift"]  # (the fed-back labels raise quality alerts of their own)
    assert test["fired"] is True and [a.check for a in drift] == ["prior_shift"] and v.exit_code == ExitCode.DRIFT, v.line()
    message = drift[0].message
    assert "label-prior shift" in message and "'shipping'" in message and "(reference " in message
    assert v.estimate["estimated_priors"]["shipping"] < 0.05
    adjusted_error = abs(v.estimate["versus_labels"]["error"]["accuracy"])
    assert adjusted_error < 0.03, v.estimate["versus_labels"]
    off = _run(reference, log, tmp_path / "o2", "drift.enabled=false", "estimate.prior_shift_p=null", "estimate.prior_shift_alert_p=null", feedback=fb)
    assert off.estimate["priors_adjusted"] is False and off.estimate["prior_shift_test"]["fired"] is False
    assert "drift:prior_shift" not in off.fired
    assert abs(off.estimate["versus_labels"]["error"]["accuracy"]) > adjusted_error


def test_in_distribution_window_is_not_reweighted_and_records_the_calibration(model_dir, reference, held_out, tmp_path):
    log = write_log(model_dir, held_out.text.tolist(), tmp_path / "log")
    v = _run(reference, log, tmp_path / "o1", "estimate.calibration=auto", "estimate.top_label=false")
    e = v.estimate
    assert e["priors_adjusted"] is False and e["prior_shift_test"]["p_value"] >= 0.01
    assert e["prior_shift_test"]["statistic"] < e["prior_shift_test"]["noise"]
    assert e["calibration_setting"] == "auto" and e["top_label"] is False
    assert e["calibration"] == min(e["calibration_cv_log_loss"], key=e["calibration_cv_log_loss"].get)
    assert v.exit_code == ExitCode.OK, v.line()
    # the default: top-label calibration, which leaves the per-class method unused
    default = _run(reference, log, tmp_path / "o2").estimate
    assert default["top_label"] is True and default["calibration"] == "top-label" and default["calibration_cv_log_loss"] == {}
    assert default["priors_adjusted"] is False


def test_new_estimate_settings_are_validated():
    s = load_monitor_settings(None, ["estimate.calibration=temperature", "estimate.alert_when=value", "estimate.prior_shift_p=0.05"])
    assert (s.estimate.calibration, s.estimate.alert_when, s.estimate.prior_shift_p) == ("temperature", "value", 0.05)
    with pytest.raises(MonitorError, match="estimate.alert_when"):
        load_monitor_settings(None, ["estimate.alert_when=sometimes"])
    with pytest.raises(MonitorError, match="estimate.prior_shift_p"):
        load_monitor_settings(None, ["estimate.prior_shift_p=1.5"])
