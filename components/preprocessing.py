"""Transform's ``preprocessing_fn``: raw text and label -> the model's input and a label id.

Model ``bow``: word n-gram ids (``tokens``). Model ``transformer``: fixed-length piece ids
(``pieces``: whole words from a word vocabulary, other words spelled in character pieces; see
``components/text.py``), with both vocabularies computed from the data, or read from a
pre-trained encoder's ``vocab.txt`` so the ids match its embeddings.

Everything here becomes part of the TFT graph that the Trainer attaches to the exported
SavedModel, so serving tokenizes exactly as training did. The raw column names and the
tokenization parameters arrive through Transform's ``custom_config`` (built by
``TransformConfig.to_custom_config``), never from the environment.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft

from textops import features
from textops.config import dataclass_from_config
from textops.settings import Settings
from textops.components import text as text_ops
from textops.components import encoder_format


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    text_column: str = features.DEFAULT_TEXT_COLUMN
    label_column: str = features.DEFAULT_LABEL_COLUMN
    ngram_max: int = 2
    char_ngram_max: int = 3  # n-grams of no-space-script characters up to this width (text.ngrams)
    max_tokens: int = 400
    vocab_size: int = 1_000_000
    min_count: int = 1
    oov_buckets: int = 10_000
    boundaries: bool = True  # n-grams with the text's start/end markers ("<s> what")
    model_kind: str = "bow"  # bow: n-gram ids; transformer: piece ids
    sequence_length: int = 64
    word_vocab_size: int = 20_000
    char_vocab_size: int = 1_000
    pretrained_encoder: Optional[str] = None

    def to_custom_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_settings(cls, settings: Settings) -> "TransformConfig":
        t = settings.transform
        return cls(
            text_column=settings.data.text_column,
            label_column=settings.data.label_column,
            ngram_max=t.ngram_max,
            char_ngram_max=t.char_ngram_max,
            max_tokens=t.max_tokens,
            vocab_size=t.vocab_size,
            min_count=t.min_count,
            oov_buckets=t.oov_buckets,
            boundaries=t.boundaries,
            model_kind=settings.model.kind,
            sequence_length=settings.model.transformer.sequence_length,
            word_vocab_size=settings.model.transformer.word_vocab_size,
            char_vocab_size=settings.model.transformer.char_vocab_size,
            pretrained_encoder=settings.model.transformer.pretrained_encoder,
        )

    @classmethod
    def from_custom_config(cls, config: Mapping[str, Any] | None) -> "TransformConfig":
        return dataclass_from_config(cls, config, "transform")


def to_dense_strings(value: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """A ``[batch]`` string tensor from a raw feature of shape ``[batch]``, ``[batch, 1]`` or sparse.

    Integer columns (e.g. labels 0/1 read from CSV) become their decimal strings, so labels are
    always strings downstream. Missing values become "" (the ExampleValidator gate rejects data
    with missing text or labels before this runs in a pipeline).
    """
    if isinstance(value, tf.SparseTensor):
        if value.dtype != tf.string:
            value = tf.SparseTensor(value.indices, tf.strings.as_string(value.values), value.dense_shape)
        value = tf.sparse.to_dense(value, default_value="")
        # Keep the first value of each row; a text column holds one value per example.
        value = tf.cond(
            tf.shape(value)[1] > 0,
            lambda: value[:, 0],
            lambda: tf.fill(tf.shape(value)[:1], ""),
        )
        return value
    if value.dtype != tf.string:
        value = tf.strings.as_string(value)
    return tf.reshape(value, [-1])


def token_ids(text: tf.Tensor, config: TransformConfig) -> tf.SparseTensor:
    grams = text_ops.text_to_ngrams(text, config.ngram_max, config.max_tokens, config.boundaries, config.char_ngram_max)
    ids = tft.compute_and_apply_vocabulary(
        grams,
        top_k=config.vocab_size,
        frequency_threshold=config.min_count,
        num_oov_buckets=config.oov_buckets,
        vocab_filename=features.TOKEN_VOCAB_NAME,
    )
    return ids.to_sparse()


def piece_ids(text: tf.Tensor, config: TransformConfig) -> tf.Tensor:
    """``[batch, sequence_length]`` piece ids of the transformer (see ``text.pieces``)."""
    if config.pretrained_encoder:
        vocabulary, word_pieces = encoder_format.read_vocabulary(config.pretrained_encoder)
        lookups = text_ops.VocabularyLookups(vocabulary, word_pieces)
        return text_ops.pieces(
            text, lookups.word_lookup, lookups.char_lookup, word_pieces, config.sequence_length, config.max_tokens
        )
    words = text_ops.tokenize(text, config.max_tokens)
    chars = tf.RaggedTensor.from_row_splits(text_ops.char_pieces(words.flat_values), words.row_splits).merge_dims(1, 2)
    word_vocab = tft.vocabulary(
        words, top_k=config.word_vocab_size, frequency_threshold=config.min_count, vocab_filename=features.WORD_VOCAB_NAME
    )
    char_vocab = tft.vocabulary(chars, top_k=config.char_vocab_size, vocab_filename=features.CHAR_VOCAB_NAME)
    return text_ops.pieces(
        text,
        lambda w: tft.apply_vocabulary(w, word_vocab, default_value=-1),
        lambda c: tft.apply_vocabulary(c, char_vocab, default_value=-1),
        config.word_vocab_size,
        config.sequence_length,
        config.max_tokens,
    )


def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Mapping[str, Any] | None = None):
    """TFT preprocessing_fn (Transform passes ``custom_config`` when the signature accepts it)."""
    config = TransformConfig.from_custom_config(custom_config)
    outputs = {}
    text = to_dense_strings(inputs[config.text_column])
    if config.model_kind == "transformer":
        outputs[features.PIECES_KEY] = piece_ids(text, config)
    elif config.model_kind == "bow":
        outputs[features.TOKENS_KEY] = token_ids(text, config)
    else:
        raise ValueError(f"model kind must be bow or transformer, got {config.model_kind!r}")
    if config.label_column in inputs:
        label = to_dense_strings(inputs[config.label_column])
        # Label vocabulary from the data (most frequent first); no OOV bucket: an unseen label at
        # evaluation time maps to -1 and is reported by the ExampleValidator gate beforehand.
        outputs[features.LABEL_ID_KEY] = tft.compute_and_apply_vocabulary(
            label, vocab_filename=features.LABEL_VOCAB_NAME, num_oov_buckets=0, default_value=-1
        )
    return outputs
