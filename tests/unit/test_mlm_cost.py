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


HEAD = np.arange(text_ops.NUM_SPECIAL, 20)  # the head's first softmax: ids 4-19; ids 20-39 are the tail


def _model(masked_only: bool, vocab_size=40, head_ids=None):
    keras.utils.set_random_seed(3)
    encoder = T.build_encoder(T.EncoderConfig(vocab_size=vocab_size, **TINY))
    return T.build_mlm_model(encoder, T.PretrainConfig(epochs=1, masked_only=masked_only), 0, 10, head_piece_ids=head_ids)


def test_the_head_is_applied_to_the_masked_pieces_only():
    inputs, targets, weights = _batch()
    masked = int(tf.reduce_sum(tf.cast(weights > 0, tf.int32)))
    assert 0 < masked < weights.shape[0] * weights.shape[1]  # the batch has padding slots to skip
    gathered, picked, kept = _model(masked_only=True)._pieces(inputs, targets, weights, training=False)
    assert gathered.shape == (masked, TINY["hidden_size"])
    assert kept.numpy().tolist() == [1.0] * masked
    every, all_targets, all_weights = _model(masked_only=False)._pieces(inputs, targets, weights, training=False)
    assert every.shape == (weights.shape[0] * weights.shape[1], TINY["hidden_size"])
    # The same vectors and targets for the same masked pieces (same weights: same seed).
    chosen = all_weights.numpy() > 0
    np.testing.assert_allclose(gathered.numpy(), every.numpy()[chosen], atol=1e-5)
    np.testing.assert_array_equal(picked.numpy(), all_targets.numpy()[chosen])


@pytest.mark.parametrize("head_ids", [None, HEAD], ids=["one softmax", "adaptive"])
def test_masked_only_and_every_slot_give_the_same_loss_and_gradients(head_ids):
    inputs, targets, weights = _batch()
    results = []
    for masked_only in (True, False):
        model = _model(masked_only, head_ids=head_ids)
        with tf.GradientTape() as tape:
            loss = model._loss(*model._pieces(inputs, targets, weights, training=False))
        grads = tape.gradient(loss, model.trainable_variables)
        results.append((float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    # The mean over the masked pieces, not over every slot (padding slots would dilute it): near
    # a uniform model's, log(40), or with the adaptive head log(17) for a head piece and
    # log(17) + log(20) for a tail piece.
    picked = tf.boolean_mask(targets, weights > 0).numpy()
    uniform = np.log(40) if head_ids is None else np.mean(np.log(17) + np.log(20) * (picked >= 20))
    assert loss_a == pytest.approx(uniform, rel=0.1)
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


def test_the_head_pieces_are_the_most_frequent_real_pieces():
    counts = np.array([90, 80, 70, 60, 5, 0, 9, 9, 1, 7])  # ids 0-3 are the special pieces
    assert T.head_pieces_by_frequency(counts, 3).tolist() == [6, 7, 9]  # 9, 9 (ties by id), 7
    assert T.head_pieces_by_frequency(counts, 2).tolist() == [6, 7]
    # As many as the pieces seen, or more, or unset: the head predicts every piece.
    assert T.head_pieces_by_frequency(counts, 5) is None
    assert T.head_pieces_by_frequency(counts, 50) is None
    assert T.head_pieces_by_frequency(counts, None) is None


@pytest.mark.parametrize("dense", [False, True], ids=["tail for its pieces", "tail for every piece"])
def test_the_adaptive_head_is_the_exact_likelihood_of_a_distribution_over_every_piece(dense):
    inputs, targets, weights = _batch()
    model = _model(masked_only=True, head_ids=HEAD)
    gathered, picked, _ = model._pieces(inputs, targets, weights, training=False)
    assert 0 < int(tf.reduce_sum(tf.cast(picked >= 20, tf.int32))) < len(picked)  # both kinds of target
    log_p = model.head(gathered).numpy()  # [n, vocab]
    assert log_p.shape == (len(picked), 40)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(np.isneginf(log_p[:, : text_ops.NUM_SPECIAL]))  # never a target
    nll, right = model.head.nll(gathered, picked, dense=dense)
    rows = np.arange(len(picked))
    np.testing.assert_allclose(nll.numpy(), -log_p[rows, picked.numpy()], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(right.numpy(), log_p.argmax(axis=1) == picked.numpy())
    # The first softmax's classes: the head pieces and one for the rest.
    assert model.head.head_classes == len(HEAD) + 1


def test_the_adaptive_head_does_not_compute_the_tail_for_head_targets():
    inputs, targets, weights = _batch()
    model = _model(masked_only=True, head_ids=np.arange(text_ops.NUM_SPECIAL, 40))  # no tail: one softmax
    assert model.head.head_ids is None and model.head.head_classes == 40
    model = _model(masked_only=True, head_ids=HEAD)
    gathered, picked, _ = model._pieces(inputs, targets, weights, training=False)
    head_only = picked < 20
    calls = []
    original = model.head._tail_logits
    model.head._tail_logits = lambda hidden: calls.append(int(hidden.shape[0])) or original(hidden)
    model.head.nll(tf.boolean_mask(gathered, head_only), tf.boolean_mask(picked, head_only))
    assert calls == [0]  # traced eagerly: the tail's product ran on no rows
    with pytest.raises(ValueError, match="head pieces"):
        T.MaskedLMHead(model.encoder.token_embedding, TINY["hidden_size"], [1, 5])


def test_pretraining_with_the_adaptive_head_learns():
    rng = np.random.default_rng(0)
    # A learnable language: every text is a run of consecutive ids, so a masked piece follows from its neighbours.
    rows = np.zeros((256, 16), np.int64)
    for i in range(256):
        start = rng.integers(text_ops.NUM_SPECIAL, 24)
        rows[i, 0] = text_ops.CLS_ID
        rows[i, 1:] = np.arange(start, start + 15)
    split = tf.data.Dataset.from_tensor_slices(({features.PIECES_KEY: rows}, np.zeros(256, np.int64))).batch(32)
    keras.utils.set_random_seed(0)
    encoder = T.build_encoder(T.EncoderConfig(vocab_size=40, **TINY))
    config = T.PretrainConfig(epochs=30, learning_rate=5e-3, mask_rate=0.2, head_pieces=20)
    history = T.pretrain_mlm(encoder, split, config, steps_per_epoch=8, verbose=0)
    assert history["mlm_loss"][-1] < 0.6 * history["mlm_loss"][0]
    assert history["mlm_accuracy"][-1] > 0.4  # always the commonest piece would score under 0.1


def test_the_head_pieces_setting_reaches_the_trainer():
    settings = load_settings(
        None, ["model.kind=transformer", "model.pretraining.epochs=2", "model.pretraining.head_pieces=4096"]
    )
    assert TrainerConfig.from_settings(settings).pretrain_config().head_pieces == 4096
    default = load_settings(None, ["model.kind=transformer", "model.pretraining.epochs=2"])
    assert TrainerConfig.from_settings(default).pretrain_config().head_pieces == T.PretrainConfig().head_pieces == 2048
    one_softmax = load_settings(None, ["model.kind=transformer", "model.pretraining.epochs=2", "model.pretraining.head_pieces=null"])
    assert TrainerConfig.from_settings(one_softmax).pretrain_config().head_pieces is None
    with pytest.raises(Exception, match="head_pieces"):
        load_settings(None, ["model.pretraining.head_pieces=0"])
