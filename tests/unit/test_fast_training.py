"""The fast bow Trainer: in-memory batches, per-epoch metrics, the train step without AutoGraph,
the batch-size and learning-rate rules. Each compares against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import f1_score

from tests.support.data import read_csv
from textops.components import bare, model as model_lib, training


def _sparse_dataset(rows: list[list[int]], labels: list[int], batch: int) -> tf.data.Dataset:
    ragged = tf.ragged.constant(rows, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices(({"tokens": ragged}, tf.constant(labels, tf.int64))).batch(batch).map(
        lambda x, y: ({"tokens": x["tokens"].to_sparse()}, y)
    )


def test_in_memory_batches_hold_every_example_once_per_epoch_and_reshuffle():
    rows = [[i, i + 100] * (1 + i % 3) for i in range(50)]
    split = training.InMemorySplit.read(_sparse_dataset(rows, list(range(50)), batch=7))
    assert split.size == 50
    epochs = []
    shuffled = split.batches(16, shuffle=True, seed=1)
    for _ in range(2):  # as fit iterates it: the same dataset, once per epoch
        seen = []
        for inputs, labels in shuffled:
            dense = tf.sparse.to_dense(inputs["tokens"], default_value=-1).numpy()
            for row, label in zip(dense, labels.numpy()):
                assert [v for v in row if v != -1] == rows[label]  # ids stay with their example
                seen.append(int(label))
        assert sorted(seen) == list(range(50))
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    unshuffled = [int(y) for _, labels in split.batches(16, shuffle=False) for y in labels.numpy()]
    assert unshuffled == list(range(50))
    assert int(split.batches(16, shuffle=True).cardinality()) == 4


def test_graph_train_function_trains_as_keras_autograph_step_does():
    rows = [[i % 7, 7 + i % 5] for i in range(64)]
    labels = [i % 2 for i in range(64)]
    weights = []
    for graph in (False, True):
        keras.utils.set_random_seed(3)
        model = model_lib.build_bow_model(model_lib.BowConfig(vocab_size=20, num_classes=2, learning_rate=0.05))
        if graph:
            training.use_graph_train_function(model)
        model.fit(_sparse_dataset(rows, labels, batch=16), epochs=2, verbose=0)
        weights.append([w.numpy() for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def trained_with_eval(demo_dir):
    train_rows, eval_rows = read_csv(demo_dir / "train.csv"), read_csv(demo_dir / "test.csv")
    model = bare.train_bare(
        [r["text"] for r in train_rows], [r["label"] for r in train_rows],
        eval_texts=[r["text"] for r in eval_rows], eval_labels=[r["label"] for r in eval_rows],
        train_config=training.TrainConfig(epochs=2, batch_size=64),
    )
    return model, eval_rows


def test_per_epoch_metrics_are_the_evaluation_of_the_trained_model(trained_with_eval):
    model, rows = trained_with_eval
    probabilities = model.predict([r["text"] for r in rows])
    truth = [model.classes.index(r["label"]) for r in rows]
    predicted = probabilities.argmax(1)
    history = model.history
    assert len(history["val_accuracy"]) == 2 and "accuracy" in history and "loss" in history
    assert history["val_accuracy"][-1] == pytest.approx(float(np.mean(predicted == truth)), abs=1e-6)
    assert history["val_f1"][-1] == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-5)
    cross_entropy = -np.mean(np.log(np.clip(probabilities[np.arange(len(truth)), truth], 1e-7, 1.0)))
    assert history["val_loss"][-1] == pytest.approx(cross_entropy, rel=1e-4)
    assert 0.5 < history["val_auc"][-1] <= 1.0
    assert "f1" not in history and "auc" not in history  # not computed per training step


def test_batch_size_and_learning_rate_rules():
    from textops.components.trainer import DEFAULT_LEARNING_RATE, TrainerConfig

    config = TrainerConfig(text_column="text", oov_buckets=10)
    assert config.batch_size_for(100_000) == 256 and config.batch_size_for(None) == 256
    assert config.batch_size_for(2_400) == 2_400 // training.MIN_STEPS_PER_EPOCH
    assert config.batch_size_for(600) == 32  # never below the reference batch
    assert config.learning_rate_for(100_000) == pytest.approx(DEFAULT_LEARNING_RATE["bow"] * math.sqrt(8))
    assert config.learning_rate_for(600) == pytest.approx(DEFAULT_LEARNING_RATE["bow"])
    assert config.train_config(100_000).batch_size == 256
    fixed = TrainerConfig(text_column="text", oov_buckets=10, batch_size=48, learning_rate=0.002)
    assert fixed.batch_size_for(100_000) == 48 and fixed.learning_rate_for(100_000) == 0.002
    assert config.epochs_for(10_000) == 20 and config.epochs_for(25_000) == 20 and config.epochs_for(None) == 20
    assert config.epochs_for(50_000) == 10 and config.epochs_for(100_000) == 5 and config.epochs_for(10_000_000) == 5
    assert config.epochs_for(30_000) == math.ceil(training.EPOCH_BUDGET_EXAMPLES / 30_000) == 17
    assert config.train_config(100_000).epochs == 5 and config.train_config(100_000).lr_decay
    assert TrainerConfig(text_column="text", oov_buckets=10, epochs=30).train_config(100_000).epochs == 30  # set: kept
    transformer = TrainerConfig(text_column="text", oov_buckets=10, model_kind="transformer")
    assert transformer.batch_size_for(100_000) == 32
    assert transformer.learning_rate_for(100_000) == pytest.approx(DEFAULT_LEARNING_RATE["transformer"])


def test_same_seed_same_model_whatever_global_seed_the_process_had(demo_dir):
    """tf.data's shuffle combines its own seed with TensorFlow's global one: a process's first
    training (no global seed yet) used to shuffle, and so train, differently from its later ones."""
    rows = read_csv(demo_dir / "train.csv")[:600]
    weights = []
    for global_seed in (None, 5):  # a fresh process; one where something else set a seed first
        tf.random.set_seed(global_seed)
        model = bare.train_bare(
            [r["text"] for r in rows], [r["label"] for r in rows],
            train_config=training.TrainConfig(epochs=2, batch_size=32, early_stopping_patience=0),
        )
        weights.append([w.numpy() for w in model.model.weights])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
