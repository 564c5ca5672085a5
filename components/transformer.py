"""The language model: a small BERT-style Transformer encoder with a pooled classifier head.

Token + position embeddings -> N post-LayerNorm encoder blocks (multi-head self-attention,
GELU feed-forward) -> pooled ([CLS] or mean over the real pieces) -> dropout -> softmax, as in
Devlin et al., "BERT" (2019), at sizes a CPU can train. It reads the fixed-length piece ids that
Transform writes (``components/text.py: pieces``).

Masked-language-model pre-training (``pretrain_mlm``) trains the same encoder to predict 15% of
the pieces from their context (80% replaced by [MASK], 10% by a random piece, 10% unchanged)
before fine-tuning, in the same Trainer run. A pre-trained encoder is saved and loaded in a
documented directory format (``save_encoder`` / ``load_encoder``):

    <dir>/encoder.json     {"format": "textops-encoder", "version": 1, "config": {...EncoderConfig}}
    <dir>/vocab.txt        one piece per line, line number = id ([PAD], [CLS], [MASK], [UNK],
                           words, then character pieces, "##" marking a continuation)
    <dir>/checkpoint, <dir>/encoder-*.{index,data-*}   a tf.train.Checkpoint(encoder=...)

Transform reads ``vocab.txt`` instead of building vocabularies from the data when a pre-trained
encoder is configured, so the ids mean what they meant during pre-training.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from textops import features
from textops.components import model as model_lib
from textops.components import text as text_ops
from textops.components.encoder_format import (  # noqa: F401 - the format is part of this module's API
    ENCODER_CONFIG_FILE,
    ENCODER_FORMAT,
    ENCODER_FORMAT_VERSION,
    ENCODER_VOCAB_FILE,
    EncoderConfig,
    EncoderFormatError,
    read_encoder_config,
    read_vocabulary,
)

log = logging.getLogger(__name__)

_CHECKPOINT_PREFIX = "encoder"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    encoder: EncoderConfig
    num_classes: int
    pooling: str = "mean"  # mean | cls
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    decay_steps: int = 0  # linear decay to 0 after warm-up; 0: constant
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be mean or cls, got {self.pooling!r}")
        if self.num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, the label vocabulary has {self.num_classes}")


def _init(stddev: float = 0.02):
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.utils.register_keras_serializable(package="textops")
class EncoderBlock(keras.layers.Layer):
    """Self-attention + feed-forward, each with a residual connection and LayerNorm (post-LN)."""

    def __init__(self, hidden_size: int, num_heads: int, ffn_size: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.num_heads, self.ffn_size, self.dropout_rate = hidden_size, num_heads, ffn_size, dropout
        self.attention = keras.layers.MultiHeadAttention(
            num_heads, hidden_size // num_heads, dropout=dropout, kernel_initializer=_init(), name="attention"
        )
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="attention_norm")
        self.ffn_in = keras.layers.Dense(ffn_size, activation="gelu", kernel_initializer=_init(), name="ffn_in")
        self.ffn_out = keras.layers.Dense(hidden_size, kernel_initializer=_init(), name="ffn_out")
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="ffn_norm")
        self.dropout = keras.layers.Dropout(dropout)

    def call(self, x, attention_mask, training=None):
        attended = self.attention(x, x, attention_mask=attention_mask, training=training)
        x = self.attention_norm(x + self.dropout(attended, training=training))
        hidden = self.ffn_out(self.ffn_in(x))
        return self.ffn_norm(x + self.dropout(hidden, training=training))

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "ffn_size": self.ffn_size,
            "dropout": self.dropout_rate,
        }


@keras.utils.register_keras_serializable(package="textops")
class Encoder(keras.layers.Layer):
    """Piece ids ``[batch, length]`` -> contextual vectors ``[batch, length, hidden]`` and the mask."""

    def __init__(self, config: EncoderConfig | Mapping[str, Any], **kwargs):
        super().__init__(**kwargs)
        self.config = config if isinstance(config, EncoderConfig) else EncoderConfig(**config)
        c = self.config
        self.token_embedding = keras.layers.Embedding(
            c.vocab_size, c.hidden_size, embeddings_initializer=_init(), name="token_embedding"
        )
        self.position_embedding = keras.layers.Embedding(
            c.sequence_length, c.hidden_size, embeddings_initializer=_init(), name="position_embedding"
        )
        self.embedding_norm = keras.layers.LayerNormalization(epsilon=1e-12, name="embedding_norm")
        self.embedding_dropout = keras.layers.Dropout(c.dropout)
        self.blocks = [
            EncoderBlock(c.hidden_size, c.num_heads, c.ffn_size, c.dropout, name=f"block_{i}")
            for i in range(c.num_layers)
        ]

    def call(self, ids, training=None):
        ids = tf.cast(ids, tf.int32)
        # Pieces are left-aligned ([CLS] first, padding last): drop the padding columns no text in
        # the batch reaches, so a batch of short texts (questions, SMS) costs what its longest
        # text needs, not sequence_length. Padding is masked out anyway: the result is the same.
        real = tf.reduce_sum(tf.cast(tf.not_equal(ids, text_ops.PAD_ID), tf.int32), axis=1)
        length = tf.maximum(tf.reduce_max(real), 1)
        ids = ids[:, :length]
        mask = tf.not_equal(ids, text_ops.PAD_ID)
        x = self.token_embedding(ids) + self.position_embedding(tf.range(length))[tf.newaxis]
        x = self.embedding_dropout(self.embedding_norm(x), training=training)
        attention_mask = mask[:, tf.newaxis, :]  # every position attends to the real pieces
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask, training=training)
        return x, mask

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}


@keras.utils.register_keras_serializable(package="textops")
class Pooler(keras.layers.Layer):
    """``mean``: average of the vectors of the real pieces; ``cls``: the [CLS] vector."""

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, sequence, mask):
        if self.mode == "cls":
            return sequence[:, 0]
        weights = tf.cast(mask, sequence.dtype)[:, :, tf.newaxis]
        return tf.reduce_sum(sequence * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = tf.cast(max(self.warmup_steps, 1), tf.float32)
        rise = self.peak * tf.minimum(1.0, (step + 1.0) / warm)
        if not self.total_steps:
            return rise
        span = tf.cast(max(self.total_steps - self.warmup_steps, 1), tf.float32)
        fall = self.peak * tf.maximum(0.0, 1.0 - (step - float(self.warmup_steps)) / span)
        return tf.where(step < float(self.warmup_steps), rise, fall)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def _optimizer(learning_rate: float, warmup_steps: int, total_steps: int, weight_decay: float):
    schedule = WarmupLinearDecay(learning_rate, warmup_steps, total_steps) if (warmup_steps or total_steps) else learning_rate
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay, epsilon=1e-6)
    # No weight decay on LayerNorm parameters and biases, as in BERT.
    optimizer.exclude_from_weight_decay(var_names=["norm", "bias"])
    return optimizer


def build_encoder(config: EncoderConfig) -> Encoder:
    encoder = Encoder(config, name="encoder")
    encoder(tf.zeros([1, config.sequence_length], tf.int64))  # creates the variables
    return encoder


def build_classifier(config: ClassifierConfig, encoder: Optional[Encoder] = None) -> keras.Model:
    """Compiled Keras model: ``{pieces: int64[batch, length]}`` -> class probabilities."""
    encoder = encoder or build_encoder(config.encoder)
    ids = keras.Input(shape=(config.encoder.sequence_length,), dtype=tf.int64, name=features.PIECES_KEY)
    sequence, mask = encoder(ids)
    pooled = Pooler(config.pooling, name="pooler")(sequence, mask)
    pooled = keras.layers.Dropout(config.encoder.dropout)(pooled)
    probabilities = keras.layers.Dense(
        config.num_classes, activation="softmax", kernel_initializer=_init(), name="probabilities", dtype="float32"
    )(pooled)
    model = keras.Model(inputs={features.PIECES_KEY: ids}, outputs=probabilities, name="transformer")
    model.compile(
        optimizer=_optimizer(config.learning_rate, config.warmup_steps, config.decay_steps, config.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=model_lib.training_metrics(),
    )
    return model


# -- masked-language-model pre-training -------------------------------------------------------------

MLM_POSITIONS = "mlm_positions"  # the MLM model's second input: which positions to predict


def mask_pieces(
    ids: tf.Tensor, vocab_size: int, mask_rate: float = 0.15, max_predictions: int = 20, seed: Optional[int] = None
):
    """BERT's masking for a batch ``[batch, length]`` of piece ids.

    Picks ``mask_rate`` of the real pieces (at least one, at most ``max_predictions``) per text;
    of those 80% become [MASK], 10% a random piece, 10% stay. Returns the corrupted ids and the
    ``max_predictions`` picked positions, their original ids and weights (0 for padding slots).
    """
    ids = tf.cast(ids, tf.int64)
    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    real = ids >= text_ops.NUM_SPECIAL
    n_real = tf.reduce_sum(tf.cast(real, tf.int32), axis=1)
    n_pick = tf.minimum(
        tf.maximum(tf.cast(tf.round(tf.cast(n_real, tf.float32) * mask_rate), tf.int32), tf.minimum(n_real, 1)),
        max_predictions,
    )
    # A random score per position; non-real positions rank last. The top n_pick are predicted.
    score = tf.random.uniform(tf.shape(ids), seed=seed)
    score = tf.where(real, score, -1.0)
    k = tf.minimum(max_predictions, length)
    top_score, positions = tf.math.top_k(score, k=k)
    slot = tf.range(k)[tf.newaxis, :]
    chosen = (slot < n_pick[:, tf.newaxis]) & (top_score >= 0.0)
    positions = tf.where(chosen, positions, 0)
    targets = tf.where(chosen, tf.gather(ids, positions, batch_dims=1), 0)
    weights = tf.cast(chosen, tf.float32)
    # What replaces each chosen piece.
    action = tf.random.uniform(tf.shape(positions), seed=None if seed is None else seed + 1)
    random_ids = tf.random.uniform(
        tf.shape(positions), text_ops.NUM_SPECIAL, vocab_size, dtype=tf.int64, seed=None if seed is None else seed + 2
    )
    replacement = tf.where(action < 0.8, tf.constant(text_ops.MASK_ID, tf.int64), tf.where(action < 0.9, random_ids, targets))
    replacement = tf.where(chosen, replacement, tf.gather(ids, positions, batch_dims=1))
    rows = tf.tile(tf.range(batch)[:, tf.newaxis], [1, k])
    scatter_index = tf.stack([tf.reshape(rows, [-1]), tf.reshape(positions, [-1])], axis=1)
    # Unchosen slots point at position 0 ([CLS]) and write back its own id: a no-op.
    corrupted = tf.tensor_scatter_nd_update(ids, scatter_index, tf.reshape(replacement, [-1]))
    pad = tf.maximum(max_predictions - k, 0)
    positions, targets, weights = (tf.pad(t, [[0, 0], [0, pad]]) for t in (positions, targets, weights))
    return corrupted, positions, targets, weights


@keras.utils.register_keras_serializable(package="textops")
class MaskedLMHead(keras.layers.Layer):
    """Transform -> LayerNorm -> a softmax over the pieces whose output matrix is the token embedding.

    ``piece_ids``: the pieces the first softmax predicts directly; every other piece is one more
    class of it ("the rest") and then a second softmax over those pieces, computed only for the
    masked pieces that are among them (an adaptive softmax, Grave et al., "Efficient softmax
    approximation for GPUs", 2017, with one tail cluster). ``p(piece) = p_head(piece)`` or
    ``p_head(rest) * p_tail(piece)``: a distribution over the whole vocabulary and its exact
    likelihood, at the cost of the frequent pieces for most masked pieces (the rare pieces are
    few of them). None: one softmax over every piece.
    """

    def __init__(self, embedding: keras.layers.Embedding, hidden_size: int, piece_ids=None, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding
        self.transform = keras.layers.Dense(hidden_size, activation="gelu", kernel_initializer=_init(), name="transform")
        self.norm = keras.layers.LayerNormalization(epsilon=1e-12, name="norm")
        self.head_ids = self.tail_ids = None
        if piece_ids is not None:
            vocab = embedding.input_dim
            head = np.unique(np.asarray(piece_ids, np.int64))
            if head.size and not (text_ops.NUM_SPECIAL <= head[0] and head[-1] < vocab):
                raise ValueError(f"head pieces must be ids in [{text_ops.NUM_SPECIAL}, {vocab}), got {head[0]}..{head[-1]}")
            rest = np.ones(vocab, bool)
            rest[head] = False
            rest[: text_ops.NUM_SPECIAL] = False  # never a target
            tail = np.flatnonzero(rest)
            if head.size and tail.size:
                cluster = np.full(vocab, head.size, np.int64)  # piece id -> head class ("the rest": head.size)
                cluster[head] = np.arange(head.size)
                within = np.zeros(vocab, np.int64)  # piece id -> its class in the tail softmax
                within[tail] = np.arange(tail.size)
                self.head_ids, self.tail_ids = tf.constant(head), tf.constant(tail)
                self.cluster, self.within_tail = tf.constant(cluster), tf.constant(within)

    @property
    def head_classes(self) -> int:
        return self.embedding.input_dim if self.head_ids is None else int(self.head_ids.shape[0]) + 1

    def build(self, input_shape):
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.head_classes,), initializer="zeros", trainable=True
        )
        if self.head_ids is not None:
            self.rest = self.add_weight(
                name="rest", shape=(1, self.embedding.output_dim), initializer=_init(), trainable=True
            )
            self.tail_bias = self.add_weight(
                name="tail_bias", shape=(int(self.tail_ids.shape[0]),), initializer="zeros", trainable=True
            )
        super().build(input_shape)

    def _logits(self, hidden, outputs, bias):
        logits = tf.matmul(hidden, tf.cast(outputs, hidden.dtype), transpose_b=True)
        return tf.cast(logits + tf.cast(bias, logits.dtype), tf.float32)

    def _head_logits(self, hidden):
        if self.head_ids is None:
            return self._logits(hidden, self.embedding.embeddings, self.output_bias)
        outputs = tf.concat([tf.gather(self.embedding.embeddings, self.head_ids), self.rest], 0)
        return self._logits(hidden, outputs, self.output_bias)

    def _tail_logits(self, hidden):
        return self._logits(hidden, tf.gather(self.embedding.embeddings, self.tail_ids), self.tail_bias)

    def _hidden(self, gathered):
        return self.norm(self.transform(gathered))

    def call(self, gathered):
        """Log-probabilities of every piece ``[n, vocab]`` (inference, tests; training uses ``nll``)."""
        hidden = self._hidden(gathered)
        head = tf.nn.log_softmax(self._head_logits(hidden))
        if self.head_ids is None:
            return head
        tail = tf.nn.log_softmax(self._tail_logits(hidden)) + head[:, -1:]
        order = tf.concat([self.head_ids, self.tail_ids], 0)[:, tf.newaxis]
        n, vocab = tf.shape(hidden)[0], self.embedding.input_dim
        by_piece = tf.tensor_scatter_nd_update(  # special pieces: probability 0
            tf.fill([vocab, n], float("-inf")), order, tf.transpose(tf.concat([head[:, :-1], tail], 1))
        )
        return tf.transpose(by_piece)

    def nll(self, gathered, targets, dense: bool = False):
        """Per piece ``-log p(target)`` and whether the most probable piece is the target.

        ``dense``: the tail softmax for every piece (static shapes, for XLA) instead of only for
        those whose target is in it; the same values."""
        hidden = self._hidden(gathered)
        targets = tf.cast(targets, tf.int64)
        logits = self._head_logits(hidden)
        guess = tf.argmax(logits, axis=-1)
        if self.head_ids is None:
            return keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True), tf.equal(guess, targets)
        cluster = tf.gather(self.cluster, targets)
        nll = keras.losses.sparse_categorical_crossentropy(cluster, logits, from_logits=True)
        in_tail = tf.equal(cluster, self.head_classes - 1)
        within = tf.gather(self.within_tail, targets)
        if dense:
            tail_logits = self._tail_logits(hidden)
            tail_nll = tf.where(in_tail, keras.losses.sparse_categorical_crossentropy(within, tail_logits, from_logits=True), 0.0)
            tail_right = in_tail & tf.equal(tf.argmax(tail_logits, axis=-1), within)
        else:
            rows = tf.where(in_tail)  # [m, 1]
            tail_logits = self._tail_logits(tf.gather_nd(hidden, rows))
            wanted = tf.gather_nd(within, rows)
            shape = tf.shape(targets, out_type=tf.int64)
            tail_nll = tf.scatter_nd(rows, keras.losses.sparse_categorical_crossentropy(wanted, tail_logits, from_logits=True), shape)
            tail_right = tf.scatter_nd(rows, tf.cast(tf.equal(tf.argmax(tail_logits, axis=-1), wanted), tf.int32), shape) > 0
        return nll + tail_nll, tf.equal(guess, cluster) & (tail_right | ~in_tail)


def head_pieces_by_frequency(counts, size: Optional[int]):
    """The ``size`` most frequent pieces of ``counts`` (occurrences per piece id in the training
    split; ties by id, special pieces never), or None when they would be every piece seen."""
    counts = np.asarray(counts, np.int64).copy()
    counts[: text_ops.NUM_SPECIAL] = 0
    seen = int(np.count_nonzero(counts))
    if not size or size >= seen:
        return None
    order = np.lexsort((np.arange(len(counts)), -counts))  # by count, descending; then by id
    return np.sort(order[:size]).astype(np.int64)


class MaskedLM(keras.Model):
    """The encoder with the masked-LM head, trained on ``mlm_dataset``'s batches.

    The head (hidden x vocabulary, the largest matrix product of a step) is applied only to the
    pieces actually masked (``masked_only``: gathered by their weights before the projection)
    instead of to every one of the ``max_predictions`` slots of every text, most of which are
    padding for short texts. The loss is the mean cross-entropy over the masked pieces (BERT's);
    ``masked_only=False`` computes every slot and weights the padding slots 0, the same loss at
    the cost of the padding slots (kept for XLA, which needs static shapes). ``head_piece_ids``:
    see ``MaskedLMHead``.
    """

    def __init__(self, encoder: Encoder, masked_only: bool = True, head_piece_ids=None, **kwargs):
        super().__init__(name="mlm", **kwargs)
        self.encoder = encoder
        self.head = MaskedLMHead(encoder.token_embedding, encoder.config.hidden_size, head_piece_ids, name="mlm_head")
        self.head(tf.zeros([1, encoder.config.hidden_size]))  # its variables now, not inside the first traced step
        self.masked_only = masked_only
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")  # of the masked pieces

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def call(self, inputs, training=None):
        """Log-probabilities ``[batch, max_predictions, vocab]`` of every slot (inference, tests)."""
        sequence, _ = self.encoder(inputs[features.PIECES_KEY], training=training)
        positions = inputs[MLM_POSITIONS]
        scores = self.head(self._slot_vectors(sequence, positions))
        return tf.reshape(scores, [tf.shape(positions)[0], tf.shape(positions)[1], -1])

    def _slot_vectors(self, sequence, positions):
        """The encoder's vectors at every prediction slot, ``[batch * max_predictions, hidden]``
        (the head works on ``[n, hidden]``)."""
        return tf.reshape(tf.gather(sequence, positions, batch_dims=1), [-1, self.encoder.config.hidden_size])

    def _pieces(self, inputs, targets, weights, training: bool):
        """The encoder's vectors ``[n, hidden]`` at the predicted slots, their targets and weights:
        every slot, or (``masked_only``) the masked pieces only."""
        sequence, _ = self.encoder(inputs[features.PIECES_KEY], training=training)
        positions = tf.cast(inputs[MLM_POSITIONS], tf.int64)
        if not self.masked_only:
            return self._slot_vectors(sequence, positions), tf.reshape(targets, [-1]), tf.reshape(weights, [-1])
        slots = tf.where(weights > 0)  # [n, 2]: (text, slot) of each masked piece
        at = tf.stack([slots[:, 0], tf.gather_nd(positions, slots)], axis=1)
        return tf.gather_nd(sequence, at), tf.gather_nd(targets, slots), tf.gather_nd(weights, slots)

    def _loss(self, gathered, targets, weights):
        per_piece, right = self.head.nll(gathered, targets, dense=not self.masked_only)
        mean = tf.reduce_sum(per_piece * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
        self.loss_tracker.update_state(mean)
        self.accuracy_tracker.update_state(tf.cast(right, tf.float32), sample_weight=weights)
        # Gradients are summed over replicas: each contributes its share of the mean.
        return mean / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, mean.dtype)

    def train_step(self, data):
        inputs, targets, weights = data
        with tf.GradientTape() as tape:
            loss = self._loss(*self._pieces(inputs, targets, weights, training=True))
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        inputs, targets, weights = data
        self._loss(*self._pieces(inputs, targets, weights, training=False))
        return {m.name: m.result() for m in self.metrics}


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    epochs: int = 0  # 0: no pre-training
    learning_rate: Optional[float] = None  # None: 1e-3 at batch 32, x sqrt(batch_size / 32)
    mask_rate: float = 0.15
    max_predictions: Optional[int] = None  # per text; None: mask_rate x sequence_length, rounded up
    warmup_fraction: float = 0.1
    # Examples per pre-training step; None: the fine-tuning batches as they come.
    batch_size: Optional[int] = None
    masked_only: bool = True  # the head's logits only for the masked pieces (MaskedLM)
    length_buckets: bool = True  # batches of texts of similar length (length_buckets)
    # The head's first softmax: the training split's head_pieces most frequent pieces and "the
    # rest", a second softmax over the others (MaskedLMHead); None: one softmax over every piece.
    head_pieces: Optional[int] = 2048

    def learning_rate_for(self, batch_size: int) -> float:
        return self.learning_rate or 1e-3 * math.sqrt(batch_size / 32)


def build_mlm_model(
    encoder: Encoder,
    config: PretrainConfig,
    warmup_steps: int,
    total_steps: int,
    batch_size: int = 32,
    weight_decay: float = 0.01,
    jit_compile: bool = False,
    head_piece_ids=None,
) -> MaskedLM:
    """``jit_compile``: XLA, static shapes only (``masked_only`` and ``length_buckets`` off); on
    this CPU it was several times slower (``bench/transformer_cost_bench.py``), so nothing sets it."""
    model = MaskedLM(encoder, masked_only=config.masked_only, head_piece_ids=head_piece_ids)
    model.compile(
        optimizer=_optimizer(config.learning_rate_for(batch_size), warmup_steps, total_steps, weight_decay),
        jit_compile=jit_compile,
    )
    # The optimizer's slots now rather than inside the first traced step (which would retrace).
    model.optimizer.build(model.trainable_variables)
    return model


LENGTH_BOUNDARIES = (8, 16, 24, 32, 40, 48, 56)  # pieces; a batch holds texts of one band


def length_buckets(pieces: tf.data.Dataset, batch_size: int, boundaries: Sequence[int] = LENGTH_BOUNDARIES) -> tf.data.Dataset:
    """Piece-id rows ``[length]`` -> batches ``[batch, length]`` of texts of similar length.

    The encoder drops the padding columns no text of a batch reaches, so a batch costs what its
    longest text needs: grouping texts by length (``tf.data``'s ``bucket_by_sequence_length``, in
    the order they come, so a shuffled input stays shuffled) removes most of the padding a random
    batch carries. A band's last partial batch is kept.
    """

    def real_length(ids):
        return tf.reduce_sum(tf.cast(tf.not_equal(ids, text_ops.PAD_ID), tf.int32))

    return pieces.bucket_by_sequence_length(
        real_length, list(boundaries), [batch_size] * (len(boundaries) + 1), pad_to_bucket_boundary=False
    )


def mlm_dataset(
    dataset: tf.data.Dataset, vocab_size: int, config: PretrainConfig, sequence_length: int, seed: int = 42
) -> tf.data.Dataset:
    """Batches of piece ids ``[batch, length]`` -> ((pieces, positions), targets, weights).

    Masking runs in the input pipeline, a fresh draw every epoch (dynamic masking, as RoBERTa).
    """
    # Slots per text: without masked_only every slot gets logits, so size them to the rate.
    max_predictions = config.max_predictions or max(1, math.ceil(config.mask_rate * sequence_length))

    def corrupt(ids):
        corrupted, positions, targets, weights = mask_pieces(ids, vocab_size, config.mask_rate, max_predictions, seed=seed)
        return {features.PIECES_KEY: corrupted, MLM_POSITIONS: positions}, targets, weights

    return dataset.map(corrupt, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def pretraining_batches(train_dataset: tf.data.Dataset, config: PretrainConfig) -> tf.data.Dataset:
    """The training split's (features, label) batches -> piece-id batches for pre-training:
    labels dropped, re-batched to ``config.batch_size`` and grouped by length as configured."""
    pieces = train_dataset.map(lambda inputs, _label: inputs[features.PIECES_KEY])
    if not config.batch_size and not config.length_buckets:
        return pieces
    batch_size = config.batch_size or int(tf.shape(next(iter(pieces)))[0])
    rows = pieces.unbatch()
    return length_buckets(rows, batch_size) if config.length_buckets else rows.batch(batch_size)


def pretrain_mlm(
    encoder: Encoder,
    train_dataset: tf.data.Dataset,
    config: PretrainConfig,
    steps_per_epoch: int,
    log_dir: Optional[str] = None,
    verbose: int = 2,
    seed: int = 42,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, list[float]]:
    """Masked-LM training of ``encoder`` in place (call under the training strategy's scope).

    ``steps_per_epoch``: of ``train_dataset`` as given; the pre-training batches are counted here."""
    batches = pretraining_batches(train_dataset, config)
    vocab_size = encoder.config.vocab_size
    # One pass: the steps and examples of an epoch and how often each piece occurs.
    steps, examples, counts = batches.reduce(
        (tf.constant(0, tf.int64), tf.constant(0, tf.int64), tf.zeros([vocab_size], tf.int64)),
        lambda acc, ids: (
            acc[0] + 1,
            acc[1] + tf.cast(tf.shape(ids)[0], tf.int64),
            acc[2] + tf.math.bincount(tf.cast(ids, tf.int32), minlength=vocab_size, maxlength=vocab_size, dtype=tf.int64),
        ),
    )
    steps, examples = int(steps), int(examples)
    head_piece_ids = head_pieces_by_frequency(counts.numpy(), config.head_pieces)
    batch_size = max(1, round(examples / max(steps, 1))) if config.batch_size is None else config.batch_size
    total = max(1, (steps or steps_per_epoch) * config.epochs)
    model = build_mlm_model(
        encoder, config, int(total * config.warmup_fraction), total, batch_size, head_piece_ids=head_piece_ids
    )
    model_lib.use_graph_train_function(model)
    callbacks = list(callbacks)
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    history = model.fit(
        mlm_dataset(batches, encoder.config.vocab_size, config, encoder.config.sequence_length, seed),
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    return {f"mlm_{k}": [float(v) for v in vals] for k, vals in history.history.items()}


# -- the pre-trained encoder format ------------------------------------------------------------------


def save_encoder(
    encoder: Encoder, directory: str, vocabulary: Optional[Sequence[str]] = None, word_pieces: Optional[int] = None
) -> str:
    """Writes ``encoder`` (and its piece vocabulary) in the format ``load_encoder`` reads.

    ``vocabulary``: every piece in id order; ``word_pieces``: how many of the lines after the
    special pieces are words (the rest are character pieces). Both are needed for Transform to
    tokenize with this encoder's ids; a directory without them can still be loaded as weights.
    """
    meta: dict[str, Any] = {
        "format": ENCODER_FORMAT,
        "version": ENCODER_FORMAT_VERSION,
        "config": dataclasses.asdict(encoder.config),
    }
    tf.io.gfile.makedirs(directory)
    if vocabulary is not None:
        if len(vocabulary) != encoder.config.vocab_size:
            raise EncoderFormatError(
                f"the vocabulary has {len(vocabulary)} pieces but the encoder embeds {encoder.config.vocab_size}"
            )
        if word_pieces is None or not 0 <= word_pieces <= len(vocabulary) - text_ops.NUM_SPECIAL:
            raise EncoderFormatError(f"word_pieces must be in [0, {len(vocabulary) - text_ops.NUM_SPECIAL}], got {word_pieces}")
        with tf.io.gfile.GFile(os.path.join(directory, ENCODER_VOCAB_FILE), "w") as f:
            f.write("".join(f"{p}\n" for p in vocabulary))
        meta["word_pieces"] = word_pieces
    tf.train.Checkpoint(encoder=encoder).save(os.path.join(directory, _CHECKPOINT_PREFIX))
    with tf.io.gfile.GFile(os.path.join(directory, ENCODER_CONFIG_FILE), "w") as f:
        json.dump(meta, f, indent=2)
    return directory


def load_encoder(directory: str, expected: Optional[EncoderConfig] = None) -> Encoder:
    """Builds the encoder ``directory`` describes and restores its weights.

    ``expected``: the configuration the run asks for; a mismatch in any size is an error that
    names the fields (a silently reshaped encoder would not be the pre-trained one).
    """
    config = read_encoder_config(directory)
    if expected is not None:
        diff = {
            k: (getattr(config, k), getattr(expected, k))
            for k in ("vocab_size", "sequence_length", "hidden_size", "num_layers", "num_heads", "ffn_size")
            if getattr(config, k) != getattr(expected, k)
        }
        if diff:
            details = ", ".join(f"{k}: encoder {a} vs settings {b}" for k, (a, b) in diff.items())
            raise EncoderFormatError(f"the pre-trained encoder in {directory} does not match the settings ({details})")
        config = dataclasses.replace(config, dropout=expected.dropout)
    prefix = tf.train.latest_checkpoint(directory)
    if prefix is None:
        raise EncoderFormatError(f"{directory}: no checkpoint found (expected {_CHECKPOINT_PREFIX}-*.index)")
    encoder = build_encoder(config)
    tf.train.Checkpoint(encoder=encoder).read(prefix).assert_existing_objects_matched().expect_partial()
    log.info("loaded pre-trained encoder %s from %s", config, directory)
    return encoder
