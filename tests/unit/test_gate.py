"""The TFMA gate: config resolution and a real TFMA evaluation of an exported binary model."""

import random

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from tensorflow_model_analysis.metrics import metric_specs

from textops.components import bare, metrics as metrics_lib, training
from textops.components.evaluator import build_eval_config

THRESHOLDS = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "auc": 0.7}


def test_every_metric_resolves_to_our_classes_not_tfma_builtins():
    config = build_eval_config("label", THRESHOLDS, 0.01)
    resolved = [metric_specs.metric_instance(m) for m in config.metrics_specs[0].metrics]
    ours = [m for m in resolved if type(m).__module__ == metrics_lib.__name__]
    assert sorted(m.name for m in ours) == ["accuracy", "auc", "f1", "per_class", "precision", "recall"]


def test_thresholds_gate_the_overall_slice_only_with_a_change_threshold():
    config = build_eval_config("label", {"f1": 0.6}, 0.02, positive_label="spam")
    gated = [m for m in config.metrics_specs[0].metrics if m.per_slice_thresholds]
    assert [m.class_name for m in gated] == ["TextF1"]
    (pst,) = gated[0].per_slice_thresholds
    assert list(pst.slicing_specs) == [tfma.SlicingSpec()]
    assert pst.threshold.value_threshold.lower_bound.value == 0.6
    assert pst.threshold.change_threshold.absolute.value == pytest.approx(-0.02)
    assert '"positive_label": "spam"' in gated[0].config
    with pytest.raises(ValueError, match="no such gate metric"):
        build_eval_config("label", {"mcc": 0.5}, None)


def _spam_data(n, seed):
    rng = random.Random(seed)
    spam = ["win a free prize now", "call now to claim your cash", "free entry txt win", "urgent you won a reward"]
    ham = ["see you at lunch", "are we still on for tonight", "call me when you get home", "thanks for the book"]
    rows = []
    for _ in range(n):
        is_spam = rng.random() < 0.2
        text = rng.choice(spam if is_spam else ham) + " " + rng.choice(["ok", "lol", "now", "today", ""])
        if rng.random() < 0.05:
            is_spam = not is_spam
        rows.append((text, "spam" if is_spam else "ham"))
    return rows


def test_tfma_evaluation_of_a_binary_model_matches_scikit_learn(tmp_path):
    train, test = _spam_data(400, 0), _spam_data(300, 1)
    model = bare.train_bare([t for t, _ in train], [y for _, y in train], train_config=training.TrainConfig(epochs=3))
    path = model.export(str(tmp_path / "model"))
    data = str(tmp_path / "eval.tfrecord")
    with tf.io.TFRecordWriter(data) as w:
        for text, label in test:
            feats = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()])) for k, v in (("text", text), ("label", label))}
            w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    config = build_eval_config("label", THRESHOLDS, None)  # no baseline outside a pipeline
    result = tfma.run_model_analysis(
        eval_shared_model=tfma.default_eval_shared_model(path, eval_config=config),
        eval_config=config,
        data_location=data,
        output_path=str(tmp_path / "eval"),
    )
    overall = dict(result.slicing_metrics)[()][""][""]
    probs = model.predict([t for t, _ in test])
    spam = model.classes.index("spam")
    y = np.array([label == "spam" for _, label in test])
    pred = probs.argmax(1) == spam
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    assert overall["precision"]["doubleValue"] == pytest.approx(p)
    assert overall["recall"]["doubleValue"] == pytest.approx(r)
    assert overall["f1"]["doubleValue"] == pytest.approx(f)
    assert overall["auc"]["doubleValue"] == pytest.approx(roc_auc_score(y, probs[:, spam]), abs=2e-3)
    assert overall["per_class/support/spam"]["doubleValue"] == y.sum()
    # Class and length slices are reported but not gated: a good model validates.
    assert tfma.load_validation_result(str(tmp_path / "eval")).validation_ok


def test_the_blessing_names_no_baseline_id_that_mlmd_does_not_have():
    """TFX's Kubeflow v2 entrypoint (Vertex and open-source KFP alike) maps the blessing's model
    ids back to artifact names; the staged baseline has none (id 0): KeyError 0 on the second push."""
    from tfx.components.evaluator import constants
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_utils
    from tfx.types import standard_artifacts

    from textops.components.evaluator import forget_unrecorded_baseline_id

    name_from_id = {42: "projects/p/locations/l/metadataStores/default/artifacts/42"}
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, 42)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, 0)
    with pytest.raises(KeyError, match="0"):
        tfx_utils.refactor_model_blessing(blessing, name_from_id)
    forget_unrecorded_baseline_id(blessing)
    tfx_utils.refactor_model_blessing(blessing, name_from_id)
    assert blessing.get_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY) == name_from_id[42]
    assert not blessing.has_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY)
    # A baseline that MLMD does know (a Resolver's, elsewhere) keeps its id.
    recorded = standard_artifacts.ModelBlessing()
    recorded.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, 42)
    forget_unrecorded_baseline_id(recorded)
    assert recorded.get_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY) == 42
