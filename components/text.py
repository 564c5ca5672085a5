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
# One such character (a token of its own), and an n-gram made only of them ("ข อ บ", "机 器 学").
_CHAR = rf"[{_NO_SPACE_SCRIPTS}]\p{{M}}*"
_CHAR_RUN = rf"{_CHAR}( {_CHAR})+"


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


def char_ngrams(tokens: tf.RaggedTensor, min_n: int, max_n: int) -> tf.RaggedTensor:
    """The n-grams of widths min_n..max_n made only of no-space-script characters (each its own
    token, see ``normalize``), per example; none for text in other scripts (a batch without such
    characters skips the n-grams: about 1.8x the tokenizer's time on English text otherwise)."""

    def runs():
        grams = tf.strings.ngrams(tokens, ngram_width=tuple(range(min_n, max_n + 1)), separator=" ")
        return tf.ragged.boolean_mask(grams, grams.with_flat_values(tf.strings.regex_full_match(grams.flat_values, _CHAR_RUN)))

    def none():
        return tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.string), tf.zeros_like(tokens.row_lengths()), validate=False)

    return tf.cond(tf.reduce_any(tf.strings.regex_full_match(tokens.flat_values, _CHAR)), runs, none)


def ngrams(tokens: tf.RaggedTensor, max_n: int, boundaries: bool = True, char_max_n: int = 0) -> tf.RaggedTensor:
    """Word n-grams of widths 1..max_n, joined by a space, per example.

    With ``boundaries`` the n-grams of width >= 2 include the text's start and end ("<s> what",
    "how many", "today </s>"): where a word stands carries meaning (the first word of a question,
    a sign-off), which a bag of n-grams otherwise loses.

    ``char_max_n`` > ``max_n``: also the wider n-grams (up to ``char_max_n``) of runs of
    characters in scripts written without spaces. A Thai or Chinese character is closer to a
    syllable than to a word, so the word bigrams of other scripts are character trigrams there.
    """
    if char_max_n > max_n:
        return tf.concat([ngrams(tokens, max_n, boundaries), char_ngrams(tokens, max(2, max_n + 1), char_max_n)], axis=1)
    if max_n <= 1:
        return tokens
    plain = tf.strings.ngrams(tokens, ngram_width=1, separator=" ")
    if not boundaries:
        return tf.concat([plain, tf.strings.ngrams(tokens, tuple(range(2, max_n + 1)), separator=" ")], axis=1)
    wider = tf.strings.ngrams(
        tokens, ngram_width=tuple(range(2, max_n + 1)), separator=" ", pad_values=(BOS, EOS), padding_width=1
    )
    return tf.concat([plain, wider], axis=1)


def text_to_ngrams(
    text: tf.Tensor, max_n: int, max_tokens: int | None = None, boundaries: bool = True, char_max_n: int = 0
) -> tf.RaggedTensor:
    return ngrams(tokenize(text, max_tokens), max_n, boundaries, char_max_n)


# -- pieces: the transformer's tokenization -------------------------------------------------------
#
# A word in the word vocabulary is one piece; any other word is spelled in character pieces, the
# first character as itself and the rest with a "##" continuation mark (WordPiece's notation), so
# an unseen word, a misspelling or a name still reaches the model, and a text in a script without
# spaces (one token per character, see ``normalize``) becomes one piece per character. Ids:
#   0 [PAD], 1 [CLS], 2 [MASK], 3 [UNK] (a character outside the character vocabulary),
#   4 .. 4+W-1   words       (W = the configured word vocabulary size)
#   4+W .. 4+W+C-1 characters (C = the configured character vocabulary size)
# Vocabulary slots a small corpus leaves unused are simply never looked up.

PAD_ID, CLS_ID, MASK_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_PIECES = ("[PAD]", "[CLS]", "[MASK]", "[UNK]")
NUM_SPECIAL = len(SPECIAL_PIECES)
CONTINUATION = "##"


def piece_vocab_size(word_vocab_size: int, char_vocab_size: int) -> int:
    return NUM_SPECIAL + word_vocab_size + char_vocab_size


def char_pieces(words: tf.Tensor) -> tf.RaggedTensor:
    """``[n]`` words -> ``[n, (chars)]`` character pieces ("w", "##o", "##r", "##d")."""
    chars = tf.strings.unicode_split(words, "UTF-8")
    positions = tf.ragged.range(chars.row_lengths())
    marked = tf.where(positions.flat_values > 0, CONTINUATION + chars.flat_values, chars.flat_values)
    return chars.with_flat_values(marked)


def pieces(
    text: tf.Tensor,
    word_lookup,
    char_lookup,
    word_vocab_size: int,
    sequence_length: int,
    max_tokens: int | None = None,
) -> tf.Tensor:
    """``[batch]`` strings -> ``[batch, sequence_length]`` int64 piece ids: [CLS] pieces... [PAD]...

    ``word_lookup``: ``[n]`` words -> ids in ``[0, word_vocab_size)``, or -1 when not in the
    vocabulary. ``char_lookup``: ``[m]`` character pieces -> ids in ``[0, char_vocab_size)``, or -1.
    Both are vocabulary lookups (``tft.apply_vocabulary`` in Transform, a lookup table otherwise).
    """
    words = tokenize(text, max_tokens)
    flat = words.flat_values
    word_ids = tf.cast(word_lookup(flat), tf.int64)
    known = word_ids >= 0
    chars = char_pieces(flat)
    char_ids = tf.cast(char_lookup(chars.flat_values), tf.int64)
    char_ids = tf.where(char_ids >= 0, char_ids + NUM_SPECIAL + word_vocab_size, UNK_ID)
    # Per word: [word id] when known, its character pieces otherwise.
    whole = tf.RaggedTensor.from_tensor(tf.expand_dims(word_ids + NUM_SPECIAL, 1))
    spelled = chars.with_flat_values(char_ids)
    candidates = tf.concat([whole, spelled], axis=1)
    keep = tf.concat(
        [
            tf.RaggedTensor.from_tensor(tf.expand_dims(known, 1)),
            chars.with_flat_values(tf.repeat(tf.logical_not(known), chars.row_lengths())),
        ],
        axis=1,
    )
    per_word = tf.ragged.boolean_mask(candidates, keep)
    per_text = tf.RaggedTensor.from_row_splits(per_word, words.row_splits).merge_dims(1, 2)
    batch = tf.shape(text, out_type=tf.int64)[0]
    cls = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(CLS_ID, tf.int64)))
    sequence = tf.concat([cls, per_text[:, : sequence_length - 1]], axis=1)
    return sequence.to_tensor(default_value=PAD_ID, shape=[None, sequence_length])


def assemble_vocabulary(words, chars, word_vocab_size: int, char_vocab_size: int) -> list[str]:
    """Every piece in id order: the special pieces, ``word_vocab_size`` word slots (unfilled
    slots as "[unused-N]"), then the character pieces. The layout ``pieces`` assigns ids by."""
    def text(v):
        return v.decode("utf-8") if isinstance(v, bytes) else str(v)

    words = [text(w) for w in words][:word_vocab_size]
    chars = [text(c) for c in chars][:char_vocab_size]
    filler = [f"[unused-{i}]" for i in range(word_vocab_size - len(words))]
    return [*SPECIAL_PIECES, *words, *filler, *chars]


class VocabularyLookups(tf.Module):
    """``word_lookup`` / ``char_lookup`` for ``pieces`` from a fixed vocabulary (lookup tables
    built from constants, so they travel inside any graph or SavedModel that uses them)."""

    def __init__(self, vocabulary, word_pieces: int, name: str = "piece_vocabulary"):
        super().__init__(name=name)
        vocabulary = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in vocabulary]
        words = vocabulary[NUM_SPECIAL : NUM_SPECIAL + word_pieces]
        chars = vocabulary[NUM_SPECIAL + word_pieces :]
        self.word_pieces = word_pieces
        self.word_table = self._table(words)
        self.char_table = self._table(chars)

    @staticmethod
    def _table(keys):
        keys = keys or [""]  # an empty table still needs one key; "" is never looked up
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.string), tf.range(len(keys), dtype=tf.int64)
            ),
            default_value=-1,
        )

    def word_lookup(self, words: tf.Tensor) -> tf.Tensor:
        return self.word_table.lookup(words)

    def char_lookup(self, chars: tf.Tensor) -> tf.Tensor:
        return self.char_table.lookup(chars)
