"""The transformer model: masking, the encoder format, pre-training, and learning real signals."""

import json
import random

import numpy as np
import pytest
import tensorflow as tf

from textops import features
from textops.components import bare, text as text_ops, training
from textops.components import transformer as T

TINY = dict(sequence_length=16, hidden_size=16, num_layers=1, num_heads=2, ffn_size=32, dropout=0.0)


def _encoder(vocab_size=40, **kw):
    return T.build_encoder(T.EncoderConfig(vocab_size=vocab_size, **{**TINY, **kw}))


def test_masking_picks_real_pieces_only_and_keeps_the_originals_as_targets():
    ids = tf.constant(
        [[1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 0, 0, 0, 0], [1, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
         [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
        tf.int64,
    )
    corrupted, positions, targets, weights = (t.numpy() for t in T.mask_pieces(ids, 40, 0.25, max_predictions=5, seed=1))
    assert positions.shape == (3, 5)
    # 25% of 11 real pieces -> 3; one real piece -> 1 (at least one); no real piece -> none.
    assert weights.sum(axis=1).tolist() == [3, 1, 0]
    original = ids.numpy()
    for row in range(3):
        for slot in range(5):
            if weights[row, slot]:
                pos = positions[row, slot]
                assert original[row, pos] >= text_ops.NUM_SPECIAL  # never [CLS] or padding
                assert targets[row, slot] == original[row, pos]
    # Only picked positions changed; [CLS] and padding untouched.
    changed = np.argwhere(corrupted != original)
    picked = {(r, positions[r, s]) for r in range(3) for s in range(5) if weights[r, s]}
    assert {tuple(x) for x in changed} <= picked


def test_masking_replaces_about_80_percent_by_mask():
    ids = tf.constant(np.tile(np.arange(4, 68), (200, 1)), tf.int64)  # 64 real pieces per row
    corrupted, positions, targets, weights = T.mask_pieces(ids, 100, 0.15, max_predictions=10, seed=3)
    picked = tf.gather(corrupted, positions, batch_dims=1).numpy()[weights.numpy() > 0]
    share = np.mean(picked == text_ops.MASK_ID)
    assert 0.74 < share < 0.86


def test_encoder_save_and_load_round_trip(tmp_path):
    encoder = _encoder()
    vocabulary = text_ops.assemble_vocabulary([f"w{i}" for i in range(20)], [f"c{i}" for i in range(16)], 20, 16)
    T.save_encoder(encoder, str(tmp_path), vocabulary, word_pieces=20)
    loaded = T.load_encoder(str(tmp_path), T.EncoderConfig(vocab_size=40, **TINY))
    for a, b in zip(encoder.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    ids = tf.constant([[1, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], tf.int64)
    np.testing.assert_allclose(encoder(ids)[0].numpy(), loaded(ids)[0].numpy(), atol=1e-6)
    assert T.read_vocabulary(str(tmp_path)) == (vocabulary, 20)


def test_encoder_format_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(T.EncoderFormatError, match="encoder.json is missing"):
        T.load_encoder(str(tmp_path))
    T.save_encoder(_encoder(), str(tmp_path))
    with pytest.raises(T.EncoderFormatError, match="hidden_size: encoder 16 vs settings 32"):
        T.load_encoder(str(tmp_path), T.EncoderConfig(vocab_size=40, **{**TINY, "hidden_size": 32}))
    with pytest.raises(T.EncoderFormatError, match="without its vocabulary"):
        T.read_vocabulary(str(tmp_path))
    (tmp_path / "encoder.json").write_text(json.dumps({"format": "bert", "version": 1}))
    with pytest.raises(T.EncoderFormatError, match="is not format 'textops-encoder'"):
        T.load_encoder(str(tmp_path))


def _chinese_sample(n=240, seed=0):
    """Sport vs. weather sentences in Chinese (no spaces), each from its own words."""
    rng = random.Random(seed)
    sport = ["足球", "比赛", "球队", "进球", "冠军", "教练", "球员"]
    weather = ["下雨", "天气", "温度", "晴天", "刮风", "预报", "下雪"]
    filler = ["今天", "我们", "觉得", "非常", "明天", "可能"]
    texts, labels = [], []
    for i in range(n):
        label = "sport" if i % 2 else "weather"
        words = rng.sample(sport if i % 2 else weather, 2) + rng.sample(filler, 2)
        rng.shuffle(words)
        texts.append("".join(words))
        labels.append(label)
    return texts, labels


def test_a_chinese_text_gets_one_piece_per_character_and_the_model_learns_chinese():
    texts, labels = _chinese_sample()
    vocabulary = bare.build_piece_vocabulary(texts, 100, 100)
    tokenizer = bare.PieceTokenizer(vocabulary, 100, 16)
    ids = tokenizer(tf.constant(["今天足球比赛"]))[features.PIECES_KEY].numpy()[0]
    assert sum(i >= text_ops.NUM_SPECIAL for i in ids) == 6  # six characters, six pieces
    # An unseen character is spelled, not dropped: [UNK] only for characters never seen.
    unseen = tokenizer(tf.constant(["鼎"]))[features.PIECES_KEY].numpy()[0]
    assert unseen[1] == text_ops.UNK_ID

    test_texts, test_labels = _chinese_sample(80, seed=1)
    model = bare.train_bare_transformer(
        texts,
        labels,
        encoder=T.EncoderConfig(vocab_size=10, **TINY),
        word_vocab_size=100,
        char_vocab_size=100,
        learning_rate=3e-3,
        train_config=training.TrainConfig(epochs=8, batch_size=16),
    )
    predicted = [model.classes[i] for i in model.predict(test_texts).argmax(axis=1)]
    accuracy = np.mean([p == y for p, y in zip(predicted, test_labels)])
    assert accuracy >= 0.95, accuracy


def test_pretraining_learns_to_fill_in_masked_pieces():
    # Six fixed sentences: a masked word is given by the rest of its sentence and its position.
    # Seeded here, so the masks and the initial weights do not depend on which tests ran before.
    tf.keras.utils.set_random_seed(0)
    rng = random.Random(0)
    sentences = [[f"s{j}w{k}" for k in range(8)] for j in range(6)]
    texts = [" ".join(sentences[rng.randrange(6)]) for _ in range(320)]
    labels = [t[1] for t in texts]
    model = bare.train_bare_transformer(
        texts,
        labels,
        encoder=T.EncoderConfig(vocab_size=10, **TINY),
        word_vocab_size=60,
        char_vocab_size=20,
        pretrain=T.PretrainConfig(epochs=30, learning_rate=5e-3, max_predictions=3),
        train_config=training.TrainConfig(epochs=1, batch_size=16),
    )
    mlm_accuracy = model.history["mlm_accuracy"]
    assert len(mlm_accuracy) == 30
    # From guessing (1 in 48 words) to filling in most masked words.
    assert mlm_accuracy[0] < 0.3 and mlm_accuracy[-1] > 0.6, mlm_accuracy
    assert model.history["mlm_loss"][-1] < model.history["mlm_loss"][0] / 2


def test_a_finished_pretraining_stage_is_not_repeated_after_a_restart(tmp_path):
    texts = [f"a{i % 7} b{i % 5} c{i % 3}" for i in range(64)]
    labels = [str(i % 2) for i in range(64)]
    vocabulary = bare.build_piece_vocabulary(texts, 20, 10)
    tokenizer = bare.PieceTokenizer(vocabulary, 20, 16)
    dataset = training.prepare_dataset(bare._dataset(tokenizer, texts, labels, ["0", "1"]), 16, shuffle=False)
    config = T.ClassifierConfig(encoder=T.EncoderConfig(vocab_size=len(vocabulary), **TINY), num_classes=2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    # The pre-trained stage a killed job left behind.
    stage = tmp_path / "pretrained"
    saved = _encoder(vocab_size=len(vocabulary))
    T.save_encoder(saved, str(stage))
    model, history = training.train(
        config, dataset, None, training.TrainConfig(epochs=1, batch_size=16),
        strategy=strategy, backup_dir=str(tmp_path), pretrain=T.PretrainConfig(epochs=3), verbose=0, steps_per_epoch=4,
    )
    assert not any(k.startswith("mlm_") for k in history)  # not pre-trained again
    assert len(history["loss"]) == 1


def test_exported_transformer_serves_what_it_predicts_in_process(tmp_path):
    texts, labels = _chinese_sample(64)
    texts = texts + ["good movie", "bad film, unseen-word"]
    labels = labels + ["sport", "weather"]
    model = bare.train_bare_transformer(
        texts, labels, encoder=T.EncoderConfig(vocab_size=10, **TINY), word_vocab_size=50, char_vocab_size=50,
        train_config=training.TrainConfig(epochs=1, batch_size=16),
    )
    export = model.export(str(tmp_path / "1"))
    loaded = tf.saved_model.load(export)
    probe = ["今天足球比赛", "good movie", "", "completely unseen words ünïcödé"]
    served = loaded.signatures[features.SERVING_SIGNATURE](text=tf.constant(probe))
    np.testing.assert_allclose(served[features.OUTPUT_PROBABILITIES].numpy(), model.predict(probe), atol=1e-5)
    assert [v.decode() for v in served[features.OUTPUT_LABEL].numpy()] == [
        model.classes[i] for i in model.predict(probe).argmax(axis=1)
    ]
