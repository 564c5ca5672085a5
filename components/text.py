"""Tokenization built from core TensorFlow ops only.

It runs inside the Transform graph, and therefore inside the exported SavedModel, so stock
TF Serving and KServe can serve the model without a Python sidecar and training and serving
tokenize identically. No tensorflow_text ops are used.
"""

from __future__ import annotations

import tensorflow as tf

# Scripts written without spaces between words. Each character becomes its own token so a
# Chinese or Thai sentence does not collapse into one "word"; word n-grams over these character
# tokens then give character bigrams, the usual strong baseline for such languages.
_NO_SPACE_SCRIPTS = (
    r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}"
)
# A base character keeps the combining marks that follow it (Thai vowels and tone marks).
_SPLIT_NO_SPACE = rf"([{_NO_SPACE_SCRIPTS}]\p{{M}}*)"
# Anything that is not a letter, a combining mark or a digit separates tokens (punctuation,
# symbols, HTML remnants such as "&lt;").
_SEPARATORS = r"[^\p{L}\p{M}\p{N}]+"


def normalize(text: tf.Tensor) -> tf.Tensor:
    """Lower-cases (Unicode-aware), isolates no-space-script characters, drops punctuation."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, _SPLIT_NO_SPACE, r" \1 ")
    return tf.strings.regex_replace(text, _SEPARATORS, " ")


def tokenize(text: tf.Tensor, max_tokens: int | None = None) -> tf.RaggedTensor:
    """Splits a batch of strings ``[batch]`` into word tokens ``[batch, (tokens)]``."""
    tokens = tf.strings.split(normalize(text))
    if max_tokens:
        tokens = tokens[:, :max_tokens]
    return tokens


BOS, EOS = "<s>", "</s>"


def ngrams(tokens: tf.RaggedTensor, max_n: int, boundaries: bool = True) -> tf.RaggedTensor:
    """Word n-grams of widths 1..max_n, joined by a space, per example.

    With ``boundaries`` the n-grams of width >= 2 include the text's start and end ("<s> what",
    "how many", "today </s>"): where a word stands carries meaning (the first word of a question,
    a sign-off), which a bag of n-grams otherwise loses.
    """
    if max_n <= 1:
        return tokens
    plain = tf.strings.ngrams(tokens, ngram_width=1, separator=" ")
    if not boundaries:
        return tf.concat([plain, tf.strings.ngrams(tokens, tuple(range(2, max_n + 1)), separator=" ")], axis=1)
    wider = tf.strings.ngrams(
        tokens, ngram_width=tuple(range(2, max_n + 1)), separator=" ", pad_values=(BOS, EOS), padding_width=1
    )
    return tf.concat([plain, wider], axis=1)


def text_to_ngrams(text: tf.Tensor, max_n: int, max_tokens: int | None = None, boundaries: bool = True) -> tf.RaggedTensor:
    return ngrams(tokenize(text, max_tokens), max_n, boundaries)
