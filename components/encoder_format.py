"""The pre-trained encoder's directory format, readable without Keras (Transform reads the
vocabulary; the Trainer checks the sizes before building anything):

    <dir>/encoder.json     {"format": "textops-encoder", "version": 1, "config": {...EncoderConfig}}
    <dir>/vocab.txt        one piece per line, line number = id ([PAD], [CLS], [MASK], [UNK],
                           words, then character pieces, "##" marking a continuation)
    <dir>/checkpoint, <dir>/encoder-*.{index,data-*}   a tf.train.Checkpoint(encoder=...)

``components/transformer.py`` writes it (``save_encoder``) and restores the weights
(``load_encoder``). Paths may be local or remote (``tf.io.gfile``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf

from textops.components import text as text_ops

ENCODER_FORMAT = "textops-encoder"
ENCODER_FORMAT_VERSION = 1
ENCODER_CONFIG_FILE = "encoder.json"
ENCODER_VOCAB_FILE = "vocab.txt"


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int  # piece ids, special pieces included
    sequence_length: int = 64
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    ffn_size: int = 256
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.vocab_size <= text_ops.NUM_SPECIAL:
            raise ValueError(f"vocab_size must exceed the {text_ops.NUM_SPECIAL} special pieces, got {self.vocab_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})"
            )
        if self.sequence_length < 2:
            raise ValueError(f"sequence_length must be >= 2 ([CLS] and one piece), got {self.sequence_length}")
        for name in ("num_layers", "num_heads", "ffn_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")



class EncoderFormatError(ValueError):
    """A pre-trained encoder directory is missing a file or does not match what it is used for."""


def _read_meta(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, ENCODER_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise EncoderFormatError(
            f"{directory} is not a pre-trained encoder: {ENCODER_CONFIG_FILE} is missing "
            f"(expected {ENCODER_CONFIG_FILE}, {ENCODER_VOCAB_FILE} and a checkpoint; see docs/models.md)"
        )
    try:
        with tf.io.gfile.GFile(path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as exc:
        raise EncoderFormatError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != ENCODER_FORMAT or meta.get("version") != ENCODER_FORMAT_VERSION:
        got = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else meta
        raise EncoderFormatError(f"{path}: {got!r} is not format {ENCODER_FORMAT!r} version {ENCODER_FORMAT_VERSION}")
    return meta


def read_encoder_config(directory: str) -> EncoderConfig:
    path = os.path.join(directory, ENCODER_CONFIG_FILE)
    try:
        return EncoderConfig(**_read_meta(directory)["config"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, EncoderFormatError):
            raise
        raise EncoderFormatError(f"{path}: invalid encoder config: {exc}") from None


def read_vocabulary(directory: str) -> tuple[list[str], int]:
    """The pieces of a pre-trained encoder in id order, and how many of them are words."""
    meta = _read_meta(directory)
    path = os.path.join(directory, ENCODER_VOCAB_FILE)
    if not tf.io.gfile.exists(path) or "word_pieces" not in meta:
        raise EncoderFormatError(
            f"{directory}: the encoder was saved without its vocabulary ({ENCODER_VOCAB_FILE} and "
            f"word_pieces in {ENCODER_CONFIG_FILE}); Transform needs it to tokenize with this encoder's ids"
        )
    with tf.io.gfile.GFile(path) as f:
        vocabulary = f.read().split("\n")
    if vocabulary and vocabulary[-1] == "":
        vocabulary.pop()
    if tuple(vocabulary[: text_ops.NUM_SPECIAL]) != text_ops.SPECIAL_PIECES:
        raise EncoderFormatError(
            f"{path}: the first lines must be {list(text_ops.SPECIAL_PIECES)}, got {vocabulary[: text_ops.NUM_SPECIAL]}"
        )
    config = read_encoder_config(directory)
    if len(vocabulary) != config.vocab_size:
        raise EncoderFormatError(f"{path} has {len(vocabulary)} pieces but the encoder embeds {config.vocab_size}")
    return vocabulary, int(meta["word_pieces"])
