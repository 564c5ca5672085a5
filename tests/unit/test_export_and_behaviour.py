"""The exported SavedModel and the model's behaviour, on a model trained in seconds (no TFX)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.support.data import read_csv
from textops import features
from textops.components import bare, training


@pytest.fixture(scope="module")
def trained(demo_dir):
    rows = read_csv(demo_dir / "train.csv")
    return bare.train_bare(
        [r["text"] for r in rows], [r["label"] for r in rows], train_config=training.TrainConfig(epochs=4)
    )


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    return trained.export(str(tmp_path_factory.mktemp("export") / "model"))


def test_fresh_process_with_plain_tensorflow_gets_the_same_probabilities(trained, exported):
    texts = ["my package has not arrived yet", "I cannot reset my password", "我的包裹还没有到", ""]
    code = (
        "import json, sys, tensorflow as tf\n"
        f"m = tf.saved_model.load({exported!r})\n"
        "out = m.signatures['serving_default'](text=tf.constant(json.loads(sys.argv[1])))\n"
        "print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}, default=lambda b: b.decode()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(texts)], capture_output=True, text=True, timeout=300, check=True
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "textops" not in proc.stderr  # nothing of the project was needed
    np.testing.assert_allclose(out[features.OUTPUT_PROBABILITIES], trained.predict(texts), rtol=1e-5, atol=1e-6)
    assert out[features.OUTPUT_CLASSES][0] == trained.classes
    assert out[features.OUTPUT_LABEL][:3] == ["shipping", "account", "shipping"]


def test_example_signature_agrees_with_the_raw_text_signature(exported):
    model = tf.saved_model.load(exported)
    texts = ["the invoice shows the wrong amount", "the app crashes every time when I open the settings page on my phone"]
    examples = [
        tf.train.Example(
            features=tf.train.Features(feature={"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()]))})
        ).SerializeToString()
        for t in texts
    ]
    a = model.signatures[features.SERVING_SIGNATURE](text=tf.constant(texts))
    b = model.signatures[features.EXAMPLE_SIGNATURE](examples=tf.constant(examples))
    np.testing.assert_array_equal(a[features.OUTPUT_PROBABILITIES], b[features.OUTPUT_SCORES])
    np.testing.assert_array_equal(a[features.OUTPUT_LABEL], b[features.OUTPUT_LABEL])
    buckets = model.signatures[features.TRANSFORMED_FEATURES_SIGNATURE](examples=tf.constant(examples))
    assert buckets[features.TEXT_LENGTH_BUCKET].numpy().tolist() == [b"0-9", b"10-29"]


# Behavioural tests (minimum functionality, invariance, direction), as in Made-With-ML.
@pytest.mark.parametrize(
    "text, label",
    [
        ("please refund the extra payment", "billing"),
        ("the website is very slow since the update", "technical"),
        ("the box arrived damaged", "shipping"),
        ("please delete my account and my data", "account"),
    ],
)
def test_minimum_functionality(trained, text, label):
    assert trained.classes[int(trained.predict([text])[0].argmax())] == label


def test_invariance_to_case_punctuation_and_filler(trained):
    base = trained.predict(["the tracking number does not work"])[0]
    for variant in ("THE TRACKING NUMBER DOES NOT WORK!!!", "the tracking number... does not work?"):
        np.testing.assert_allclose(trained.predict([variant])[0], base, atol=1e-6)


def test_direction_adding_evidence_moves_probability(trained):
    billing = trained.classes.index("billing")
    before = trained.predict(["hello, I have a question"])[0][billing]
    after = trained.predict(["hello, I have a question. I was charged twice for my subscription"])[0][billing]
    assert after > before + 0.3
