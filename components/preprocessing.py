"""Transform's ``preprocessing_fn``: raw text and label -> n-gram ids and a label id.

Everything here becomes part of the TFT graph that the Trainer attaches to the exported
SavedModel, so serving tokenizes exactly as training did. The raw column names and the
tokenization parameters arrive through Transform's ``custom_config`` (built by
``TransformConfig.to_custom_config``), never from the environment.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from textops import features
from textops.settings import Settings
from textops.components import text as text_ops


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    text_column: str = features.DEFAULT_TEXT_COLUMN
    label_column: str = features.DEFAULT_LABEL_COLUMN
    ngram_max: int = 2
    max_tokens: int = 400
    vocab_size: int = 1_000_000
    min_count: int = 1
    oov_buckets: int = 10_000
    boundaries: bool = True  # n-grams with the text's start/end markers ("<s> what")

    def to_custom_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_settings(cls, settings: Settings) -> "TransformConfig":
        t = settings.transform
        return cls(
            text_column=settings.data.text_column,
            label_column=settings.data.label_column,
            ngram_max=t.ngram_max,
            max_tokens=t.max_tokens,
            vocab_size=t.vocab_size,
            min_count=t.min_count,
            oov_buckets=t.oov_buckets,
            boundaries=t.boundaries,
        )

    @classmethod
    def from_custom_config(cls, config: Mapping[str, Any] | None) -> "TransformConfig":
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown transform settings {unknown}; expected some of {sorted(known)}")
        return cls(**config)


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
    grams = text_ops.text_to_ngrams(text, config.ngram_max, config.max_tokens, config.boundaries)
    ids = tft.compute_and_apply_vocabulary(
        grams,
        top_k=config.vocab_size,
        frequency_threshold=config.min_count,
        num_oov_buckets=config.oov_buckets,
        vocab_filename=features.TOKEN_VOCAB_NAME,
    )
    return ids.to_sparse()


def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Mapping[str, Any] | None = None):
    """TFT preprocessing_fn (Transform passes ``custom_config`` when the signature accepts it)."""
    config = TransformConfig.from_custom_config(custom_config)
    outputs = {}
    text = to_dense_strings(inputs[config.text_column])
    outputs[features.TOKENS_KEY] = token_ids(text, config)
    if config.label_column in inputs:
        label = to_dense_strings(inputs[config.label_column])
        # Label vocabulary from the data (most frequent first); no OOV bucket: an unseen label at
        # evaluation time maps to -1 and is reported by the ExampleValidator gate beforehand.
        outputs[features.LABEL_ID_KEY] = tft.compute_and_apply_vocabulary(
            label, vocab_filename=features.LABEL_VOCAB_NAME, num_oov_buckets=0, default_value=-1
        )
    return outputs
