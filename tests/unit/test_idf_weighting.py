"""The bow model's idf-weighted pooling: document frequencies, the weighted mean, and training setting them."""

import math

import numpy as np
import pytest
import tensorflow as tf

from textops.components import model as model_lib
from textops.components import training
from textops.components.trainer import TrainerConfig
from textops.settings import Settings


def _sparse(rows):
    indices = [[i, j] for i, r in enumerate(rows) for j in range(len(r))]
    values = [v for r in rows for v in r]
    return tf.SparseTensor(tf.constant(indices, tf.int64), tf.constant(values, tf.int64), [len(rows), max(map(len, rows))])


def _dataset(rows, labels, batch):
    return tf.data.Dataset.from_tensor_slices(({"tokens": _sparse(rows)}, np.array(labels))).batch(batch)


def test_document_frequency_counts_each_example_once_per_ngram_across_batches():
    rows = [[0, 0, 1], [1, 2], [2, 2, 2], [4]]
    counts, examples = training.document_frequency(_dataset(rows, [0, 1, 0, 1], batch=3), vocab_size=5)
    # id 0 twice in one text: one document; id 2 in two texts, one of them in the second batch.
    assert counts.numpy().tolist() == [1, 2, 2, 0, 1]
    assert examples == 4


def test_idf_weighted_mean_weighs_rare_ngrams_more_than_the_plain_mean():
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], np.float32)
    layers = {}
    for weighting in ("none", "idf"):
        layer = model_lib.EmbeddingBag(3, 2, weighting=weighting)
        layer.build(None)
        layer.embeddings.assign(embeddings)
        layers[weighting] = layer
    # 10 documents: id 0 in all of them ("the"), id 1 in one.
    layers["idf"].set_document_frequency([10, 1, 0], documents=10)
    idf = np.log(11 / (1 + np.array([10, 1, 0]))) + 1  # scikit-learn's smoothed idf
    np.testing.assert_allclose(layers["idf"].idf.numpy(), idf, rtol=1e-6)
    ids = _sparse([[0, 0, 1], [2]])
    plain, weighted = layers["none"](ids).numpy(), layers["idf"](ids).numpy()
    np.testing.assert_allclose(plain[0], [2 / 3, 1 / 3], rtol=1e-6)
    expected = (2 * idf[0] * embeddings[0] + idf[1] * embeddings[1]) / (2 * idf[0] + idf[1])
    np.testing.assert_allclose(weighted[0], expected, rtol=1e-5)
    assert weighted[0][1] > plain[0][1]  # the rare n-gram's direction counts more
    np.testing.assert_allclose(weighted[1], embeddings[2], rtol=1e-6)  # one n-gram: its own embedding


def test_document_frequencies_of_the_wrong_size_are_refused():
    layer = model_lib.EmbeddingBag(4, 2, weighting="idf")
    layer.build(None)
    with pytest.raises(ValueError, match="document frequencies for 4 ids expected"):
        layer.set_document_frequency([1, 2, 3], documents=3)


def test_unknown_weighting_is_refused_in_settings_and_model_config():
    with pytest.raises(ValueError, match="ngram_weighting"):
        model_lib.BowConfig(vocab_size=4, num_classes=2, ngram_weighting="tfidf")
    with pytest.raises(ValueError, match="ngram_weighting"):
        Settings.model_validate({"model": {"ngram_weighting": "tfidf"}})
    config = TrainerConfig.from_settings(Settings.model_validate({"model": {"ngram_weighting": "none"}}))
    assert config.model_config(num_classes=2, vocab_size=4).ngram_weighting == "none"
    assert TrainerConfig.from_settings(Settings()).model_config(num_classes=2, vocab_size=4).ngram_weighting == "idf"


@pytest.mark.parametrize("weighting", ["idf", "none"])
def test_training_sets_the_idf_of_the_training_split(weighting):
    rows = [[0, 1], [0, 2], [0, 3], [0, 4]] * 5
    ds = _dataset(rows, [0, 0, 1, 1] * 5, batch=8)
    config = model_lib.BowConfig(vocab_size=6, num_classes=2, embedding_dim=4, learning_rate=0.05, ngram_weighting=weighting)
    model, _ = training.train(config, ds, None, training.TrainConfig(epochs=1, batch_size=8, lr_decay=False), verbose=0)
    layer = model.get_layer(model_lib.EMBEDDINGS_LAYER)
    if weighting == "none":
        assert not hasattr(layer, "idf")
        return
    df = np.array([20, 5, 5, 5, 5, 0])
    np.testing.assert_allclose(layer.idf.numpy(), np.log(21 / (1 + df)) + 1, rtol=1e-6)
    assert layer.idf.numpy()[0] == pytest.approx(1.0) and not layer.idf.trainable
    assert layer.idf.numpy()[5] == pytest.approx(math.log(21) + 1)  # in no training text


def test_idf_survives_a_keras_weights_round_trip(tmp_path):
    config = model_lib.BowConfig(vocab_size=3, num_classes=2, embedding_dim=2)
    model = model_lib.build_bow_model(config)
    model.get_layer(model_lib.EMBEDDINGS_LAYER).set_document_frequency([3, 1, 0], documents=3)
    path = str(tmp_path / "weights.h5")
    model.save_weights(path)
    again = model_lib.build_bow_model(config)
    again.load_weights(path)
    np.testing.assert_allclose(
        again.get_layer(model_lib.EMBEDDINGS_LAYER).idf.numpy(), model.get_layer(model_lib.EMBEDDINGS_LAYER).idf.numpy()
    )
    ids = {"tokens": _sparse([[0, 1], [2]])}
    np.testing.assert_allclose(again(ids).numpy(), model(ids).numpy(), rtol=1e-6)


@pytest.mark.parametrize("combiner", model_lib.COMBINERS)
@pytest.mark.parametrize("weighting", ["idf", "none"])
def test_bag_equals_tensorflows_safe_embedding_lookup_sparse_values_and_gradients(weighting, combiner):
    """The bag computes its weighted mean directly (fewer ops than TensorFlow's function); it must
    give that function's numbers and gradients, an empty row (an empty text) and repeats included."""
    rng = np.random.default_rng(3)
    layer = model_lib.EmbeddingBag(50, 8, combiner=combiner, weighting=weighting)
    layer.build(None)
    if weighting == "idf":
        layer.set_document_frequency(rng.integers(0, 30, size=50), documents=30)
    rows = [list(rng.integers(0, 50, size=n)) for n in (5, 1, 12)] + [[7, 7, 7, 3]]
    indices = [[i, j] for i, r in enumerate(rows) for j in range(len(r))]
    values = [v for r in rows for v in r]
    # rows 2 and 5 of 6 have no ids (empty texts; the last one as a batch's trailing text can be)
    ids = tf.SparseTensor(
        tf.constant([[i if i < 2 else i + 1, j] for i, j in indices], tf.int64), tf.constant(values, tf.int64), [6, 12]
    )
    weights = None
    if weighting == "idf":
        weights = tf.SparseTensor(ids.indices, tf.gather(layer.idf, ids.values), ids.dense_shape)
    upstream = tf.constant(rng.normal(size=(6, 8)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        ours = layer(ids)
        reference = tf.nn.safe_embedding_lookup_sparse(layer.embeddings, ids, weights, combiner=combiner)
        ours_loss, reference_loss = tf.reduce_sum(ours * upstream), tf.reduce_sum(reference * upstream)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-7)
    assert not ours.numpy()[[2, 5]].any() and ours.numpy()[[0, 1, 3, 4]].any()  # empty texts embed to zeros
    ours_grad = tf.convert_to_tensor(tape.gradient(ours_loss, layer.embeddings))
    reference_grad = tf.convert_to_tensor(tape.gradient(reference_loss, layer.embeddings))
    np.testing.assert_allclose(ours_grad.numpy(), reference_grad.numpy(), rtol=1e-5, atol=1e-7)
    assert np.abs(ours_grad.numpy()).sum() > 0


def test_unknown_combiner_is_refused():
    with pytest.raises(ValueError, match="combiner must be one of"):
        model_lib.EmbeddingBag(4, 2, combiner="max")


def test_bag_sums_in_float32_under_mixed_precision():
    import tf_keras as keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = model_lib.EmbeddingBag(4, 2, weighting="idf")
        layer.build(None)
        layer.embeddings.assign(tf.fill([4, 2], 300.0))
        # 300 occurrences of 300.0: a float16 sum overflows (its largest value is 65,504), the mean does not
        out = layer(_sparse([[0] * 300, [3]]))
        assert out.dtype == tf.float16 and layer.embeddings.dtype == tf.float32
        np.testing.assert_allclose(out.numpy(), 300.0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
