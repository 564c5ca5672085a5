"""Infra validation in the serving runtime, and the warmup records it stamps into the model."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from tests.support.data import read_csv
from textops.components import bare, training
from textops.serving import infra_validator


@pytest.fixture(scope="module")
def model_dir(demo_dir, tmp_path_factory):
    rows = read_csv(demo_dir / "train.csv")
    m = bare.train_bare([r["text"] for r in rows], [r["label"] for r in rows], train_config=training.TrainConfig(epochs=1))
    root = tmp_path_factory.mktemp("trainer_model")
    m.export(str(root / "Format-Serving"))
    return root


def _examples(tmp_path, texts):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    split = tmp_path / "examples" / "Split-eval"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "data.gz"), options="GZIP") as w:
        for t in texts:
            feats = {"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()]))}
            w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    return examples


def _run(tmp_path, model_root):
    model = standard_artifacts.Model()
    model.uri = str(model_root)
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    infra_validator.Executor().Do(
        {"model": [model], "examples": [_examples(tmp_path, ["my package is late", "refund please"])]},
        {"blessing": [blessing]},
        {"text_column": "text", "model_name": "text_classifier", "num_requests": 16},
    )
    return blessing


def test_a_good_model_is_blessed_and_stamped_with_warmup_records(tmp_path, model_dir):
    blessing = _run(tmp_path, model_dir)
    assert blessing.get_int_custom_property("blessed") == 1 and blessing.get_int_custom_property("has_model") == 1
    stamped = os.path.join(blessing.uri, "stamped_model")
    warmup = os.path.join(stamped, infra_validator.WARMUP_FILE)
    from tensorflow_serving.apis import prediction_log_pb2

    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(warmup)]
    assert len(records) >= 4
    request = records[0].predict_log.request
    assert request.model_spec.signature_name == "serving_default" and "text" in request.inputs
    assert tf.make_ndarray(request.inputs["text"])[0] == b"my package is late"  # a real eval text first
    out = tf.saved_model.load(stamped).signatures["serving_default"](text=tf.constant(["hi"]))
    assert out["probabilities"].shape == (1, 4)


def test_a_model_that_cannot_load_is_not_blessed(tmp_path, model_dir):
    broken = tmp_path / "broken"
    serving = broken / "Format-Serving"
    serving.mkdir(parents=True)
    (serving / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    blessing = _run(tmp_path, broken)
    assert blessing.get_int_custom_property("blessed") == 0
    assert os.path.exists(os.path.join(blessing.uri, "INFRA_NOT_BLESSED"))
    assert blessing.get_string_custom_property("reason")
    assert not os.path.exists(os.path.join(blessing.uri, "stamped_model"))


def test_answers_are_checked():
    import numpy as np

    good = np.array([[0.2, 0.8]], dtype=np.float32)
    assert infra_validator.check_answers([b"x"], good, ["b"], ["a", "b"]) == []
    assert "do not sum to 1" in infra_validator.check_answers([b"x"], good * 2, ["b"], ["a", "b"])[0]
    assert "non-finite" in infra_validator.check_answers([b"x"], good * np.nan, ["b"], ["a", "b"])[0]
    assert "not among the classes" in infra_validator.check_answers([b"x"], good, ["z"], ["a", "b"])[0]
    assert "shape" in infra_validator.check_answers([b"x", b"y"], good, ["b"], ["a", "b"])[0]
