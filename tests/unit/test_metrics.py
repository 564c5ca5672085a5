import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

from textops.components.classification import ClassificationStats


def _stats(classes, probs, labels):
    s = ClassificationStats()
    for p, y in zip(probs, labels):
        s.add(tuple(classes), np.asarray(p), y, 1.0)
    return s


def _random(n_classes, n=400, seed=0, skill=2.0):
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(n_classes)]
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), y] += skill
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return classes, probs, [classes[i] for i in y], y


@pytest.mark.parametrize("n_classes", [3, 4, 6])
def test_multiclass_headlines_match_scikit_learn_macro(n_classes):
    classes, probs, labels, y = _random(n_classes)
    s = _stats(classes, probs, labels)
    pred = probs.argmax(1)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert s.headline("accuracy") == pytest.approx(accuracy_score(y, pred))
    assert s.headline("precision") == pytest.approx(p)
    assert s.headline("recall") == pytest.approx(r)
    assert s.headline("f1") == pytest.approx(f)
    assert s.headline("auc") == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=2e-3)


def test_binary_headlines_are_those_of_the_positive_class():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.15).astype(int)  # imbalanced: "spam" is rare
    score = np.clip(0.35 * y + rng.normal(0.3, 0.2, 500), 0, 1)
    probs = np.stack([1 - score, score], 1)
    classes = ["ham", "spam"]
    s = _stats(classes, probs, [classes[i] for i in y])
    pred = probs.argmax(1)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", pos_label=1, zero_division=0)
    for positive in (None, "spam"):  # unset: the rarer class
        assert s.headline("precision", positive) == pytest.approx(p)
        assert s.headline("recall", positive) == pytest.approx(r)
        assert s.headline("f1", positive) == pytest.approx(f)
        assert s.headline("auc", positive) == pytest.approx(roc_auc_score(y, score), abs=2e-3)
    assert s.headline("recall", "ham") == pytest.approx(((pred == 0) & (y == 0)).sum() / (y == 0).sum())
    with pytest.raises(ValueError, match="not one of the model's classes"):
        s.headline("f1", "eggs")


def test_merge_equals_single_pass_and_rejects_other_class_lists():
    classes, probs, labels, _ = _random(3, n=300, seed=5)
    whole = _stats(classes, probs, labels)
    a, b = _stats(classes, probs[:100], labels[:100]), _stats(classes, probs[100:], labels[100:])
    merged = a.merge(b)
    assert np.array_equal(merged.confusion, whole.confusion)
    assert merged.headline("auc") == whole.headline("auc")
    other = _stats(["x", "y", "z"], probs[:5], ["x"] * 5)
    with pytest.raises(ValueError, match="cannot merge"):
        whole.merge(other)


def test_degenerate_cases_are_explicit():
    s = _stats(["a", "b", "c"], [[0.9, 0.05, 0.05]] * 4, ["a", "a", "b", "zzz"])
    assert s.precision(2) == 0.0  # never predicted
    assert math.isnan(s.recall(2))  # never a label
    assert s.accuracy() == 0.5  # the unknown label counts as an error
    assert ClassificationStats().headline("f1") != ClassificationStats().headline("f1")  # NaN when empty
    pc = s.per_class()
    assert pc["a"]["support"] == 2 and pc["b"]["recall"] == 0.0
