"""Early stopping (``training.BestEpoch``): stops when the validation metric stops improving, puts
the best epoch's weights back, and without a validation split holds out part of train (never
the test split). Real models on small in-memory data; no timings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.support.data import read_csv
from textops.components import bare, model as model_lib, training


def _split(rows, labels) -> training.InMemorySplit:
    ragged = tf.ragged.constant(rows, dtype=tf.int64)
    return training.InMemorySplit({"tokens": ragged}, tf.constant(labels, tf.int64))


class _Weights(keras.callbacks.Callback):
    """The model's weights at the end of every epoch (after BestEpoch saw them, before any restore)."""

    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append([w.numpy().copy() for w in self.model.weights])


# Two classes, each told by its own ids; the validation data says the opposite, so the more the
# model learns the training data, the worse its validation loss: the first epoch is the best.
ROWS = [[i % 5, 10 + i % 3] if i % 2 else [5 + i % 5, 13 + i % 3] for i in range(128)]
LABELS = [i % 2 for i in range(128)]
CONFIG = model_lib.BowConfig(vocab_size=20, num_classes=2, learning_rate=0.05)


def _train(val_labels, patience, epochs=10, metric="loss"):
    recorder = _Weights()
    train_ds = _split(ROWS, LABELS).batches(16, shuffle=True, seed=1)
    eval_ds = _split(ROWS, val_labels).batches(64, shuffle=False)
    config = training.TrainConfig(epochs=epochs, batch_size=16, early_stopping_patience=patience, early_stopping_metric=metric)
    model, history = training.train(CONFIG, train_ds, eval_ds, config, verbose=0, callbacks=[recorder])
    return model, history, recorder.per_epoch, config


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best_weights():
    model, history, per_epoch, config = _train([1 - y for y in LABELS], patience=2)
    losses = history["val_loss"]
    assert losses[1] > losses[0] and losses[2] > losses[0]  # it got worse from the first epoch on
    assert len(history["loss"]) == 3 == len(per_epoch)  # the best epoch, then 2 without improvement
    assert training.kept_epoch(history, config) == 0
    for kept, now, last in zip(per_epoch[0], [w.numpy() for w in model.weights], per_epoch[-1]):
        np.testing.assert_array_equal(now, kept)
    assert any(not np.array_equal(a, b) for a, b in zip(per_epoch[0], per_epoch[-1]))  # training did move them


def test_runs_every_epoch_while_the_validation_metric_improves():
    model, history, per_epoch, config = _train(LABELS, patience=2, epochs=4)
    assert len(history["loss"]) == 4
    assert all(b < a for a, b in zip(history["val_loss"], history["val_loss"][1:]))
    assert training.kept_epoch(history, config) == 3
    for now, last in zip([w.numpy() for w in model.weights], per_epoch[-1]):
        np.testing.assert_array_equal(now, last)


def test_a_score_is_watched_for_a_rise():
    history = {"val_f1": [0.5, 0.7, 0.7, 0.6], "val_loss": [1.0, 0.9, 0.8, 0.7]}
    config = training.TrainConfig(early_stopping_patience=2, early_stopping_metric="f1")
    assert training.kept_epoch(history, config) == 1  # the first best: a tie is no improvement


def test_without_patience_every_epoch_runs_and_the_last_weights_are_kept():
    model, history, per_epoch, config = _train([1 - y for y in LABELS], patience=0, epochs=4)
    assert len(history["loss"]) == 4 and training.kept_epoch(history, config) == 3
    for now, last in zip([w.numpy() for w in model.weights], per_epoch[-1]):
        np.testing.assert_array_equal(now, last)


def test_early_stopping_without_evaluation_data_is_a_clear_error():
    stopper = training.BestEpoch(2)
    with pytest.raises(ValueError, match="early stopping needs 'val_loss' each epoch"):
        stopper.on_epoch_end(0, {"loss": 0.3})
    with pytest.raises(ValueError, match="patience must be >= 1"):
        training.BestEpoch(0)


def test_hold_out_is_a_seeded_disjoint_share_of_the_split():
    split = _split([[i] for i in range(50)], list(range(50)))
    rest, held = split.hold_out(0.1, seed=42)
    assert (rest.size, held.size) == (45, 5)
    ids = sorted(int(y) for y in tf.concat([rest.labels, held.labels], 0).numpy())
    assert ids == list(range(50))  # every example exactly once
    for part in (rest, held):  # inputs stay with their labels
        assert [r[0] for r in part.inputs["tokens"].to_list()] == part.labels.numpy().tolist()
    again, held_again = split.hold_out(0.1, seed=42)
    assert held_again.labels.numpy().tolist() == held.labels.numpy().tolist()
    _, other = split.hold_out(0.1, seed=7)
    assert other.labels.numpy().tolist() != held.labels.numpy().tolist()
    with pytest.raises(ValueError, match="between 0 and 1"):
        split.hold_out(1.0, seed=1)


def test_bare_training_stops_on_a_hold_out_of_train_when_no_eval_data_is_given(demo_dir):
    rows = read_csv(demo_dir / "train.csv")
    config = training.TrainConfig(epochs=3, batch_size=64, early_stopping_patience=2, early_stopping_metric="f1")
    model = bare.train_bare([r["text"] for r in rows], [r["label"] for r in rows], train_config=config)
    assert "val_f1" in model.history and len(model.history["val_f1"]) <= 3
    plain = bare.train_bare(
        [r["text"] for r in rows], [r["label"] for r in rows], train_config=dataclasses.replace(config, early_stopping_patience=0)
    )
    assert "val_f1" not in plain.history  # no early stopping, no eval data: nothing evaluated per epoch
