"""Text descriptors: numbers per text whose distributions the monitor compares.

- ``length``: characters in the text.
- ``oov_share``: share of the text's word tokens that are not in the training vocabulary
  (unigrams of the model's own vocabulary, tokenized by the model's own tokenizer,
  ``components/text.py``, so "out of vocabulary" means what the model sees).
- ``non_letter_share``: share of non-blank characters that are not letters (digits, punctuation,
  symbols, emoji).

A text without tokens has ``oov_share`` 0 (nothing unknown was seen); an empty text has
``non_letter_share`` 0.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

DESCRIPTORS = ("length", "oov_share", "non_letter_share")
_BATCH = 20_000


def unigram_vocabulary(entries: Iterable[bytes | str]) -> frozenset[str]:
    """The single-word entries of an n-gram vocabulary (n-grams are joined by a space)."""
    out = set()
    for entry in entries:
        word = entry.decode("utf-8", errors="replace") if isinstance(entry, bytes) else entry
        word = word.rstrip("\n")
        if word and " " not in word:
            out.add(word)
    return frozenset(out)


def oov_share(texts: Sequence[str], vocabulary: frozenset[str]) -> np.ndarray:
    """Per text, the share of its tokens missing from ``vocabulary`` (the model's tokenizer)."""
    import tensorflow as tf

    from textops.components import text as text_ops

    if not vocabulary:
        raise ValueError("the training vocabulary is empty; OOV share cannot be computed")
    words = sorted(vocabulary)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(words), tf.ones([len(words)], tf.float32)),
        default_value=0.0,
    )
    shares = np.zeros(len(texts), dtype=np.float64)
    for start in range(0, len(texts), _BATCH):
        batch = tf.constant([t if isinstance(t, str) else "" for t in texts[start : start + _BATCH]])
        tokens = text_ops.tokenize(batch)
        known = tf.ragged.map_flat_values(table.lookup, tokens)
        counts = tf.cast(tokens.row_lengths(), tf.float64).numpy()
        in_vocab = tf.reduce_sum(tf.cast(known, tf.float64), axis=1).numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(counts > 0, 1.0 - in_vocab / np.maximum(counts, 1.0), 0.0)
        shares[start : start + len(share)] = share
    return shares


def non_letter_share(texts: pd.Series) -> np.ndarray:
    texts = texts.fillna("").astype(str)
    visible = texts.str.count(r"\S").to_numpy(dtype=np.float64)
    letters = texts.str.count(r"[^\W\d_]").to_numpy(dtype=np.float64)
    return np.where(visible > 0, 1.0 - letters / np.maximum(visible, 1.0), 0.0)


def add_descriptors(frame: pd.DataFrame, vocabulary: frozenset[str], text_column: str = "text") -> pd.DataFrame:
    """Adds the descriptor columns to ``frame`` (in place) and returns it."""
    texts = frame[text_column].fillna("").astype(str)
    frame["length"] = texts.str.len().astype(np.float64)
    frame["oov_share"] = oov_share(texts.tolist(), vocabulary)
    frame["non_letter_share"] = non_letter_share(texts)
    return frame
