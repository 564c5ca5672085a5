"""The model without the pipeline: vocabulary, training and export in one process.

Same tokenizer (``components/text.py``), same model and training code as the Trainer, with the
n-gram vocabulary built in Python instead of by Transform. Used by the benchmark as the
"bare training" baseline the pipeline is compared with, and by tests that need a real exported
model in seconds (serving, monitoring) without running TFX.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import tempfile
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from textops import features
from textops.components import model as model_lib
from textops.components import text as text_ops
from textops.components import training
from textops.components import transformer as transformer_lib
from textops.components.preprocessing import TransformConfig


def ngram_lists(texts: Sequence[str], config: TransformConfig) -> tf.RaggedTensor:
    return text_ops.text_to_ngrams(
        tf.constant(list(texts), dtype=tf.string), config.ngram_max, config.max_tokens, config.boundaries,
        config.char_ngram_max,
    )


def build_vocabulary(texts: Sequence[str], config: TransformConfig) -> list[bytes]:
    """Most frequent n-grams first (ties by value), like ``tft.vocabulary(top_k=...)``."""
    counts = collections.Counter(ng for row in ngram_lists(texts, config).to_list() for ng in row)
    ranked = sorted(
        ((g, c) for g, c in counts.items() if c >= config.min_count), key=lambda gc: (-gc[1], gc[0])
    )
    return [g for g, _ in ranked[: config.vocab_size]]


def class_order(labels: Sequence[str]) -> list[str]:
    counts = collections.Counter(labels)
    return sorted(counts, key=lambda c: (-counts[c], c))


class VocabularyTokenizer(tf.Module):
    """Raw text -> n-gram ids with a vocabulary file and hashed OOV buckets (core ops only)."""

    def __init__(self, vocabulary_file: str, config: TransformConfig):
        super().__init__(name="vocabulary_tokenizer")
        self.vocabulary_asset = tf.saved_model.Asset(vocabulary_file)
        self.table = tf.lookup.StaticVocabularyTable(
            tf.lookup.TextFileInitializer(
                self.vocabulary_asset,
                key_dtype=tf.string,
                key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                value_dtype=tf.int64,
                value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            ),
            num_oov_buckets=config.oov_buckets,
        )
        self.ngram_max = config.ngram_max
        self.max_tokens = config.max_tokens
        self.boundaries = config.boundaries
        self.char_ngram_max = config.char_ngram_max

    def __call__(self, text: tf.Tensor) -> dict:
        grams = text_ops.text_to_ngrams(text, self.ngram_max, self.max_tokens, self.boundaries, self.char_ngram_max)
        return {features.TOKENS_KEY: grams.with_flat_values(self.table.lookup(grams.flat_values)).to_sparse()}


@dataclasses.dataclass
class BareModel:
    model: object
    tokenizer: tf.Module
    classes: list[str]
    history: dict
    workdir: str

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.model(self.tokenizer(tf.constant(list(texts)))).numpy()

    def export(self, export_dir: str) -> str:
        training.export_serving_model(self.model, self.tokenizer, self.classes, export_dir)
        return export_dir


def _dataset(tokenizer: tf.Module, texts, labels, classes) -> tf.data.Dataset:
    """(model inputs, label id) batches; ``tokenizer`` returns the model's input dict."""
    index = {c: i for i, c in enumerate(classes)}
    inputs = tokenizer(tf.constant(list(texts)))
    y = np.array([index.get(label, -1) for label in labels], dtype=np.int64)
    return tf.data.Dataset.from_tensor_slices((inputs, y)).batch(1024)


def _train_eval_datasets(tokenizer, texts, labels, classes, train_config, eval_texts, eval_labels):
    """The shuffled training batches and the evaluation batches: of the eval data when given,
    else, under early stopping, of a hold-out of the training data (as the Trainer does without
    a validation split), else None."""
    training.seed_everything(train_config.seed)  # before the shuffle is built (InMemorySplit.batches)
    train = training.InMemorySplit.read(_dataset(tokenizer, texts, labels, classes))
    evaluation = None
    if eval_texts is not None and eval_labels is not None:
        evaluation = training.InMemorySplit.read(_dataset(tokenizer, eval_texts, eval_labels, classes))
    elif train_config.early_stopping_patience:
        train, evaluation = train.hold_out(training.HOLDOUT_FRACTION, train_config.seed)
    train_ds = train.batches(
        train_config.batch_size, shuffle=True, shuffle_buffer=train_config.shuffle_buffer, seed=train_config.seed
    )
    return train_ds, evaluation.batches(256, shuffle=False) if evaluation is not None else None


def train_bare(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    transform: TransformConfig = TransformConfig(),
    embedding_dim: int = 64,
    dropout: float = 0.0,
    ngram_weighting: str = "idf",
    learning_rate: Optional[float] = None,
    train_config: training.TrainConfig = training.TrainConfig(),
    eval_texts: Optional[Sequence[str]] = None,
    eval_labels: Optional[Sequence[str]] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    workdir: Optional[str] = None,
    verbose: int = 0,
    callbacks: Sequence = (),
) -> BareModel:
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    workdir = workdir or tempfile.mkdtemp(prefix="textops-bare-")
    os.makedirs(workdir, exist_ok=True)
    vocabulary = build_vocabulary(texts, transform)
    vocab_file = os.path.join(workdir, "token_vocab.txt")
    with open(vocab_file, "wb") as f:
        f.write(b"".join(g + b"\n" for g in vocabulary))
    tokenizer = VocabularyTokenizer(vocab_file, transform)
    classes = class_order(labels)
    train_ds, eval_ds = _train_eval_datasets(tokenizer, texts, labels, classes, train_config, eval_texts, eval_labels)
    model, history = training.train(
        model_lib.BowConfig(
            vocab_size=len(vocabulary) + transform.oov_buckets,
            num_classes=len(classes),
            embedding_dim=embedding_dim,
            dropout=dropout,
            ngram_weighting=ngram_weighting,
            # unset: the bow default (0.01 at batch 32) scaled to the batch size, as the Trainer
            learning_rate=learning_rate or training.scaled_learning_rate(0.01, train_config.batch_size),
        ),
        train_ds,
        eval_ds,
        train_config,
        strategy=strategy,
        verbose=verbose,
        callbacks=callbacks,
    )
    return BareModel(model, tokenizer, classes, history, workdir)


# -- the transformer without the pipeline ---------------------------------------------------------


def build_piece_vocabulary(texts: Sequence[str], word_vocab_size: int, char_vocab_size: int, max_tokens=None) -> list[str]:
    """Most frequent words and character pieces (ties by value), like Transform's two
    ``tft.vocabulary`` analyzers, laid out by ``text.assemble_vocabulary``."""
    words = text_ops.tokenize(tf.constant(list(texts), dtype=tf.string), max_tokens)
    word_counts = collections.Counter(words.flat_values.numpy().tolist())
    char_counts = collections.Counter(text_ops.char_pieces(words.flat_values).flat_values.numpy().tolist())

    def ranked(counts, k):
        return [v for v, _ in sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))[:k]]

    return text_ops.assemble_vocabulary(
        ranked(word_counts, word_vocab_size), ranked(char_counts, char_vocab_size), word_vocab_size, char_vocab_size
    )


class PieceTokenizer(tf.Module):
    """Raw text -> ``{pieces: int64[batch, sequence_length]}`` with a fixed piece vocabulary."""

    def __init__(self, vocabulary: Sequence[str], word_pieces: int, sequence_length: int, max_tokens=None):
        super().__init__(name="piece_tokenizer")
        self.lookups = text_ops.VocabularyLookups(vocabulary, word_pieces)
        self.word_pieces = word_pieces
        self.sequence_length = sequence_length
        self.max_tokens = max_tokens

    def __call__(self, text: tf.Tensor) -> dict:
        return {
            features.PIECES_KEY: text_ops.pieces(
                text,
                self.lookups.word_lookup,
                self.lookups.char_lookup,
                self.word_pieces,
                self.sequence_length,
                self.max_tokens,
            )
        }


def train_bare_transformer(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    encoder: transformer_lib.EncoderConfig | None = None,
    word_vocab_size: int = 20_000,
    char_vocab_size: int = 1_000,
    pooling: str = "mean",
    learning_rate: float = 1e-3,
    pretrain: Optional[transformer_lib.PretrainConfig] = None,
    pretrained_encoder: Optional[str] = None,
    train_config: training.TrainConfig = training.TrainConfig(),
    eval_texts: Optional[Sequence[str]] = None,
    eval_labels: Optional[Sequence[str]] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    workdir: Optional[str] = None,
    verbose: int = 0,
    callbacks: Sequence = (),
) -> "BareModel":
    """Same tokenization (``text.pieces``), encoder, pre-training and training code as the
    Trainer's ``transformer`` model, with the piece vocabulary built in Python."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    workdir = workdir or tempfile.mkdtemp(prefix="textops-bare-")
    os.makedirs(workdir, exist_ok=True)
    if pretrained_encoder:
        vocabulary, word_pieces = transformer_lib.read_vocabulary(pretrained_encoder)
        encoder = transformer_lib.read_encoder_config(pretrained_encoder)
    else:
        vocabulary = build_piece_vocabulary(texts, word_vocab_size, char_vocab_size)
        word_pieces = word_vocab_size
        encoder = dataclasses.replace(
            encoder or transformer_lib.EncoderConfig(vocab_size=len(vocabulary)), vocab_size=len(vocabulary)
        )
    tokenizer = PieceTokenizer(vocabulary, word_pieces, encoder.sequence_length)
    classes = class_order(labels)
    train_ds, eval_ds = _train_eval_datasets(tokenizer, texts, labels, classes, train_config, eval_texts, eval_labels)
    model, history = training.train(
        transformer_lib.ClassifierConfig(
            encoder=encoder, num_classes=len(classes), pooling=pooling, learning_rate=learning_rate
        ),
        train_ds,
        eval_ds,
        train_config,
        strategy=strategy,
        verbose=verbose,
        pretrain=pretrain,
        pretrained_encoder=pretrained_encoder,
        callbacks=callbacks,
    )
    return BareModel(model, tokenizer, classes, history, workdir)
