import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from textops.components import distribution
from textops.components.classification import ClassificationStats, epoch_metrics
from textops.components.model import BowConfig, LazyAdam, build_bow_model


def _sparse(rows):
    indices = [[i, j] for i, r in enumerate(rows) for j in range(len(r))]
    values = [v for r in rows for v in r]
    return tf.SparseTensor(tf.constant(indices, tf.int64), tf.constant(values, tf.int64), [len(rows), max(map(len, rows))])


def test_lazy_adam_updates_only_the_rows_a_batch_touches():
    table = tf.Variable(tf.ones([6, 3]))
    opt = LazyAdam(learning_rate=0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.nn.embedding_lookup(table, [1, 1, 4]))
    grad = tape.gradient(loss, table)
    assert isinstance(grad, tf.IndexedSlices)
    opt.apply_gradients([(grad, table)])
    changed = np.where(np.any(table.numpy() != 1.0, axis=1))[0]
    assert changed.tolist() == [1, 4]
    # First Adam step moves each touched weight by lr (sign of the gradient), as dense Adam does.
    np.testing.assert_allclose(table.numpy()[[1, 4]], 0.9, atol=1e-5)


def test_lazy_adam_equals_adam_on_rows_touched_every_step_repeats_included():
    """Rows a sparse gradient names several times (an n-gram repeated in a text, or in a batch)
    get the sum of their slices, as dense Adam would: equal to Keras' Adam over steps that touch
    every row (lazy and dense then coincide)."""
    ids = tf.constant([0, 0, 1, 2, 2, 2, 0])
    scale = tf.constant([[1.0], [3.0], [0.5], [2.0], [-1.0], [0.25], [4.0]])
    lazy_table, dense_table = tf.Variable(tf.ones([3, 2])), tf.Variable(tf.ones([3, 2]))
    lazy, dense = LazyAdam(learning_rate=0.1), keras.optimizers.Adam(learning_rate=0.1)
    for step in range(3):
        for table, opt in ((lazy_table, lazy), (dense_table, dense)):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.gather(table, ids) * scale * (step + 1)))
            grad = tape.gradient(loss, table)
            if opt is lazy:
                assert isinstance(grad, tf.IndexedSlices) and grad.indices.shape[0] == 7  # one slice per occurrence
            else:
                grad = tf.convert_to_tensor(grad)
            opt.apply_gradients([(grad, table)])
        np.testing.assert_allclose(lazy_table.numpy(), dense_table.numpy(), rtol=1e-5)


def test_epoch_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4))
    logits[np.arange(300), y] += 1.5
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype("float32")
    y[y == 3] = 2  # class 3 is never a label (still predicted): in the macro set, AUC undefined for it
    values = epoch_metrics(y, probs)
    p, r, f, _ = precision_recall_fscore_support(y, probs.argmax(1), average="macro", zero_division=0)
    assert values["precision"] == pytest.approx(p, abs=1e-9)
    assert values["recall"] == pytest.approx(r, abs=1e-9)
    assert values["f1"] == pytest.approx(f, abs=1e-9)
    assert values["accuracy"] == pytest.approx(float((probs.argmax(1) == y).mean()))
    assert values["loss"] == pytest.approx(-np.log(probs[np.arange(300), y]).mean(), rel=1e-5)
    aucs = [roc_auc_score(y == c, probs[:, c]) for c in range(3)]
    assert values["auc"] == pytest.approx(np.mean(aucs), abs=1e-3)
    rowwise, vectorized = ClassificationStats(), ClassificationStats(("0", "1", "2", "3"))
    for row, label in zip(probs, y):
        rowwise.add(("0", "1", "2", "3"), row, str(label), 1.0)
    vectorized.add_rows(probs, y)  # the gate's accumulation, one row at a time, gives the same stats
    for field in ("confusion", "pos_hist", "neg_hist"):
        np.testing.assert_array_equal(getattr(vectorized, field), getattr(rowwise, field))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        epoch_metrics(np.array([0, 4]), probs[:2])


def test_model_learns_a_separable_task_under_mirrored_strategy():
    rows = [[0, 1], [0, 2], [1, 2], [3, 4], [4, 5], [3, 5]] * 20
    labels = np.array([0, 0, 0, 1, 1, 1] * 20)
    ds = tf.data.Dataset.from_tensor_slices(({"tokens": _sparse(rows)}, labels)).batch(12)
    with distribution.make_strategy("mirrored").scope():
        model = build_bow_model(BowConfig(vocab_size=6, num_classes=2, embedding_dim=8, learning_rate=0.05))
    keras.utils.set_random_seed(0)
    history = model.fit(ds, epochs=15, verbose=0)
    assert history.history["accuracy"][-1] == 1.0
    probs = model.predict({"tokens": _sparse([[0, 1], [4, 5], []])}, verbose=0)
    assert probs[0].argmax() == 0 and probs[1].argmax() == 1
    assert probs[2] == pytest.approx([0.5, 0.5], abs=0.2)  # no tokens: no evidence either way


def test_config_validation():
    with pytest.raises(ValueError, match="at least 2 classes"):
        BowConfig(vocab_size=10, num_classes=1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        BowConfig(vocab_size=10, num_classes=2, optimizer="rmsprop")


def test_strategy_factory():
    assert isinstance(distribution.make_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    assert isinstance(distribution.make_strategy("auto"), tf.distribute.OneDeviceStrategy)  # no GPUs here
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribution.make_strategy("multi_worker", tf_config="")
    with pytest.raises(ValueError, match="not valid JSON"):
        distribution.make_strategy("multi_worker", tf_config="{nope")
    with pytest.raises(ValueError, match="unknown strategy"):
        distribution.make_strategy("tpu")  # type: ignore[arg-type]


def test_mixed_precision_trains_with_float32_variables_and_output():
    from textops.components.trainer import configure_precision

    try:
        assert configure_precision("on") == "mixed_float16"
        rows = [[0, 1], [0, 2], [3, 4], [4, 5]] * 10
        ds = tf.data.Dataset.from_tensor_slices(({"tokens": _sparse(rows)}, np.array([0, 0, 1, 1] * 10))).batch(8)
        model = build_bow_model(BowConfig(vocab_size=6, num_classes=2, embedding_dim=8, learning_rate=0.05))
        model.fit(ds, epochs=5, verbose=0)
        assert model.layers[1].embeddings.dtype == tf.float32 and model.output.dtype == tf.float32
        assert model.evaluate(ds, verbose=0)[1] == 1.0
        assert configure_precision("auto") == "float32"  # no GPU here
    finally:
        configure_precision("off")
