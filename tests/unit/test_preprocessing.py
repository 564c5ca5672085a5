"""The Transform graph run by TFT's own Beam implementation (no TFX), on tiny data."""

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from textops import features
from textops.components.preprocessing import TransformConfig, preprocessing_fn, to_dense_strings


def _run(rows, config: TransformConfig):
    spec = {
        "text": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.string),
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, config.to_custom_config())
        )
    out = tempfile.mkdtemp()
    _ = transform_fn | tft_beam.WriteTransformFn(out)
    return transformed, tft.TFTransformOutput(out)


def test_ngram_ids_label_vocabulary_and_no_space_scripts():
    rows = [
        {"text": "good movie", "label": "pos"},
        {"text": "good film", "label": "pos"},
        {"text": "bad movie", "label": "neg"},
        {"text": "我喜欢这部电影", "label": "pos"},
    ]
    transformed, output = _run(rows, TransformConfig(ngram_max=2, oov_buckets=3))
    labels = [r[features.LABEL_ID_KEY] for r in transformed]
    vocab = [v.decode() for v in output.vocabulary_by_name(features.LABEL_VOCAB_NAME)]
    assert vocab == ["pos", "neg"]  # most frequent first
    assert labels == [0, 0, 1, 0]
    ids = [np.asarray(r[features.TOKENS_KEY]) for r in transformed]
    assert len(ids[0]) == 2 + 3  # good, movie; "<s> good", "good movie", "movie </s>"
    # 7 characters + 8 character bigrams (with the two boundaries) + 5 character trigrams
    # (transform.char_ngram_max), not one token
    assert len(ids[3]) == 7 + 8 + 5
    token_vocab = output.vocabulary_by_name(features.TOKEN_VOCAB_NAME)
    assert b"good movie" in token_vocab and "喜 欢".encode() in token_vocab and "喜 欢 这".encode() in token_vocab
    assert not any(len(g.split()) == 3 for g in token_vocab if g.isascii())  # words: bigrams at most


def test_vocabulary_size_and_min_count_are_honoured():
    rows = [{"text": "a b c", "label": "x"}, {"text": "a b", "label": "y"}, {"text": "a", "label": "x"}]
    _, output = _run(rows, TransformConfig(ngram_max=1, min_count=2, oov_buckets=1))
    assert sorted(output.vocabulary_by_name(features.TOKEN_VOCAB_NAME)) == [b"a", b"b"]


def test_dense_strings_from_every_raw_shape():
    assert to_dense_strings(tf.constant([["a"], ["b"]])).numpy().tolist() == [b"a", b"b"]
    assert to_dense_strings(tf.constant([3, 4], tf.int64)).numpy().tolist() == [b"3", b"4"]
    sparse = tf.SparseTensor([[0, 0], [2, 0]], tf.constant(["x", "z"]), [3, 1])
    assert to_dense_strings(sparse).numpy().tolist() == [b"x", b"", b"z"]


def test_unknown_transform_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown transform settings"):
        TransformConfig.from_custom_config({"ngrams": 2})


# -- the transformer's pieces -------------------------------------------------------------------

from textops.components import text as text_ops  # noqa: E402
from textops.components import transformer as transformer_lib  # noqa: E402


def _pieces_config(**kw) -> TransformConfig:
    return TransformConfig(model_kind="transformer", sequence_length=12, word_vocab_size=4, char_vocab_size=40, **kw)


def test_transformer_pieces_whole_words_spelled_words_and_chinese_characters():
    rows = [
        {"text": "good movie", "label": "pos"},
        {"text": "good film", "label": "pos"},
        {"text": "bad movie good", "label": "neg"},
        {"text": "我喜欢这部电影", "label": "pos"},
    ]
    transformed, output = _run(rows, _pieces_config())
    words = [w.decode() for w in output.vocabulary_by_name(features.WORD_VOCAB_NAME)]
    assert words[:2] == ["good", "movie"]  # most frequent first; top 4 kept
    ids = [np.asarray(r[features.PIECES_KEY]).tolist() for r in transformed]
    assert all(len(row) == 12 for row in ids)  # fixed length, [CLS] first, 0-padded
    good, movie = text_ops.NUM_SPECIAL + 0, text_ops.NUM_SPECIAL + 1
    assert ids[0][:4] == [text_ops.CLS_ID, good, movie, text_ops.PAD_ID]
    # "film" is outside the 4-word vocabulary: spelled f ##i ##l ##m, ids after the word slots.
    chars = [c.decode() for c in output.vocabulary_by_name(features.CHAR_VOCAB_NAME)]
    spelled = [text_ops.NUM_SPECIAL + 4 + chars.index(c) for c in ("f", "##i", "##l", "##m")]
    if "film" not in words:
        assert ids[1][:7] == [text_ops.CLS_ID, good, *spelled, text_ops.PAD_ID]
    # The Chinese text (no spaces) is one piece per character, not one token.
    assert sum(1 for i in ids[3] if i >= text_ops.NUM_SPECIAL) == 7


def test_transformer_pieces_from_a_pretrained_encoder_vocabulary(tmp_path):
    vocabulary = text_ops.assemble_vocabulary(["movie", "good"], ["b", "##a", "##d"], 3, 3)
    encoder = transformer_lib.build_encoder(
        transformer_lib.EncoderConfig(vocab_size=len(vocabulary), sequence_length=12, hidden_size=8, num_heads=2, ffn_size=8, num_layers=1)
    )
    transformer_lib.save_encoder(encoder, str(tmp_path / "enc"), vocabulary, word_pieces=3)
    rows = [{"text": "good bad movie", "label": "pos"}, {"text": "zzz", "label": "neg"}]
    transformed, output = _run(rows, _pieces_config(pretrained_encoder=str(tmp_path / "enc")))
    ids = [np.asarray(r[features.PIECES_KEY]).tolist() for r in transformed]
    # good = word line 1, movie = word line 0; "bad" spelled b ##a ##d with the encoder's ids.
    S = text_ops.NUM_SPECIAL
    assert ids[0][:6] == [text_ops.CLS_ID, S + 1, S + 3 + 0, S + 3 + 1, S + 3 + 2, S + 0]
    assert ids[1][:5] == [text_ops.CLS_ID, text_ops.UNK_ID, text_ops.UNK_ID, text_ops.UNK_ID, text_ops.PAD_ID]
