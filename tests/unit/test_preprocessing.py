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
    assert len(ids[3]) == 7 + 8  # 7 characters + 8 character bigrams (with the two boundaries), not one token
    token_vocab = output.vocabulary_by_name(features.TOKEN_VOCAB_NAME)
    assert b"good movie" in token_vocab and "喜 欢".encode() in token_vocab


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
