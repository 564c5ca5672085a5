"""The cheaper masked-LM pre-training (#12): logits only for the masked pieces, batches of similar
length, the pre-training batch size and its learning-rate rule. Same losses, fewer operations."""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from textops import features
from textops.components import text as text_ops
from textops.components import transformer as T
from textops.components.trainer import TrainerConfig
from textops.settings import load_settings

TINY = dict(sequence_length=16, hidden_size=16, num_layers=1, num_heads=2, ffn_size=32, dropout=0.0)


def _batch(vocab_size=40, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((6, 16), np.int64)
    for row, length in enumerate([15, 9, 4, 1, 12, 0]):  # real pieces after [CLS]; row 5: none
        ids[row, 0] = text_ops.CLS_ID
        ids[row, 1 : 1 + length] = rng.integers(text_ops.NUM_SPECIAL, vocab_size, length)
    corrupted, positions, targets, weights = T.mask_pieces(tf.constant(ids), vocab_size, 0.3, max_predictions=5, seed=1)
    return {features.PIECES_KEY: corrupted, T.MLM_POSITIONS: positions}, targets, weights


def _model(masked_only: bool, vocab_size=40):
    keras.utils.set_random_seed(3)
    encoder = T.build_encoder(T.EncoderConfig(vocab_size=vocab_size, **TINY))
    return T.build_mlm_model(encoder, T.PretrainConfig(epochs=1, masked_only=masked_only), 0, 10)


def test_the_head_computes_logits_for_the_masked_pieces_only():
    inputs, targets, weights = _batch()
    masked = int(tf.reduce_sum(tf.cast(weights > 0, tf.int32)))
    assert 0 < masked < weights.shape[0] * weights.shape[1]  # the batch has padding slots to skip
    model = _model(masked_only=True)
    picked, logits, kept = model._targets_and_logits(inputs, targets, weights, training=False)
    assert logits.shape == (masked, 40)
    assert kept.numpy().tolist() == [1.0] * masked
    every = _model(masked_only=False)
    _, all_logits, _ = every._targets_and_logits(inputs, targets, weights, training=False)
    assert all_logits.shape == (weights.shape[0] * weights.shape[1], 40)
    # The same logits for the same masked piece (same weights: same seed).
    flat = tf.boolean_mask(all_logits, tf.reshape(weights, [-1]) > 0)
    np.testing.assert_allclose(logits.numpy(), flat.numpy(), atol=1e-5)
    np.testing.assert_array_equal(picked.numpy(), tf.boolean_mask(targets, weights > 0).numpy())


def test_masked_only_and_every_slot_give_the_same_loss_and_gradients():
    inputs, targets, weights = _batch()
    results = []
    for masked_only in (True, False):
        model = _model(masked_only)
        with tf.GradientTape() as tape:
            loss = model._loss(*model._targets_and_logits(inputs, targets, weights, training=False))
        grads = tape.gradient(loss, model.trainable_variables)
        results.append((float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    # The mean over the masked pieces, not over every slot (padding slots would dilute it).
    assert loss_a == pytest.approx(np.log(40), rel=0.2)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_length_buckets_keep_every_text_once_and_group_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 64, 500)
    rows = np.zeros((500, 64), np.int64)
    for i, n in enumerate(lengths):
        rows[i, :n] = np.arange(n) + 4 + i  # row i is recognisable by its first id
    batches = list(T.length_buckets(tf.data.Dataset.from_tensor_slices(rows), 32))
    seen = collections.Counter(int(b[0]) for batch in batches for b in batch.numpy())
    assert seen == collections.Counter(int(4 + i) for i in range(500))
    bounds = (0, *T.LENGTH_BOUNDARIES, 65)
    for batch in batches:
        real = (batch.numpy() != text_ops.PAD_ID).sum(axis=1)
        band = max(i for i, b in enumerate(bounds) if b <= real.min())
        assert real.max() < bounds[band + 1], (real.min(), real.max())  # one band per batch
        assert len(real) <= 32
    # The padding columns the encoder drops: a random batch carries far more.
    bucketed = sum(len(b) * (b.numpy() != 0).sum(axis=1).max() for b in batches)
    random_batches = sum(len(b) * (b != 0).sum(axis=1).max() for b in np.array_split(rows, len(rows) // 32))
    assert bucketed < 0.75 * random_batches


def test_pretraining_batches_rebatch_the_training_split_to_the_pretraining_batch_size():
    ids = tf.constant(np.tile(np.arange(4, 20), (100, 1)), tf.int64)
    split = tf.data.Dataset.from_tensor_slices(({features.PIECES_KEY: ids}, tf.zeros([100], tf.int64))).batch(16)
    config = T.PretrainConfig(epochs=1, batch_size=40, length_buckets=False)
    sizes = [int(b.shape[0]) for b in T.pretraining_batches(split, config)]
    assert sizes == [40, 40, 20]
    bucketed = [int(b.shape[0]) for b in T.pretraining_batches(split, T.PretrainConfig(epochs=1, batch_size=40))]
    assert sum(bucketed) == 100 and max(bucketed) == 40


def test_the_pretraining_learning_rate_follows_the_batch_size_unless_set():
    assert T.PretrainConfig(epochs=1).learning_rate_for(32) == pytest.approx(1e-3)
    assert T.PretrainConfig(epochs=1).learning_rate_for(128) == pytest.approx(2e-3)
    assert T.PretrainConfig(epochs=1, learning_rate=5e-4).learning_rate_for(128) == 5e-4


def test_the_pretraining_settings_reach_the_trainer():
    settings = load_settings(
        None, ["model.kind=transformer", "model.pretraining.epochs=2", "model.pretraining.batch_size=64"]
    )
    pretrain = TrainerConfig.from_settings(settings).pretrain_config()
    assert pretrain.batch_size == 64 and pretrain.learning_rate is None and pretrain.masked_only
    assert TrainerConfig.from_settings(load_settings(None, ["model.kind=transformer", "model.pretraining.epochs=2"])
                                       ).pretrain_config().batch_size == 32
    with pytest.raises(Exception, match="batch_size"):
        load_settings(None, ["model.pretraining.batch_size=0"])
