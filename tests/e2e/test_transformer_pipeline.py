"""The transformer through the whole pipeline on tiny data: pre-trained (masked LM) and fine-tuned
in one Trainer run, gated, pushed, served by the project's endpoint over TF Serving REST and
KServe v2; then a second run starts from the first run's encoder (the documented format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import summary, textops_cli
from tests.support.server import ServerProcess
from textops import model_repository

pytestmark = pytest.mark.e2e

SMALL = [
    "--set", "model.kind=transformer",
    "--set", "model.transformer.sequence_length=32",
    "--set", "model.transformer.hidden_size=32",
    "--set", "model.transformer.num_heads=2",
    "--set", "model.transformer.ffn_size=64",
    "--set", "model.transformer.num_layers=1",
    "--set", "model.transformer.word_vocab_size=500",
    "--set", "model.transformer.char_vocab_size=300",
    "--set", "training.learning_rate=0.003",
    "--set", "training.strategy=auto",
    "--set", "training.epochs=6",
    "--set", "training.early_stopping_patience=0",  # exactly 6 epochs: the history's length is checked
]


def _only(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


@pytest.fixture(scope="module")
def transformer_run(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("transformer")
    proc = textops_cli("run", "--data", str(demo_dir), "--output", str(out), *SMALL,
                       "--set", "model.pretraining.epochs=3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_pretrained_transformer_is_blessed_pushed_and_served(transformer_run, tmp_path):
    out = transformer_run
    s = summary(out)
    assert s["status"] == "pushed" and s["blessed"] is True
    assert s["metrics"]["accuracy"]["value"] > 0.8
    run_dir = out / "pipeline_root" / "Trainer" / "model_run"
    history = json.loads(_only(run_dir, "*/history.json").read_text())["history"]
    assert len(history["mlm_loss"]) == 3 and len(history["loss"]) == 6  # pre-training, then fine-tuning
    assert history["mlm_accuracy"][-1] > history["mlm_accuracy"][0]
    # Transform built both piece vocabularies; the encoder was written in the documented format.
    assets = _only(out / "pipeline_root" / "Transform" / "transform_graph", "*/transform_fn/assets")
    assert {p.name for p in assets.iterdir()} >= {"piece_words", "piece_chars", "label_vocab"}
    encoder = _only(run_dir, "*/encoder")
    assert {"encoder.json", "vocab.txt", "checkpoint"} <= {p.name for p in encoder.iterdir()}

    server = ServerProcess(out / "model_repository", tmp_path)
    try:
        texts = ["my card was charged twice this month", "the parcel never arrived", "我的包裹还没有到"]
        status, body, _ = server.post(
            "/v1/models/text_classifier:predict", json.dumps({"instances": texts}).encode()
        )
        assert status == 200, body
        predictions = body["predictions"]
        assert [p["label"] for p in predictions][:2] == ["billing", "shipping"]
        assert all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in predictions)
        v2 = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
        status, body, _ = server.post("/v2/models/text_classifier/infer", json.dumps(v2).encode())
        assert status == 200, body
        labels = next(o for o in body["outputs"] if o["name"] == "label")["data"]
        assert labels == [p["label"] for p in predictions]
    finally:
        assert server.stop() == 0


def test_a_run_starts_from_a_pretrained_encoder(transformer_run, demo_dir, tmp_path):
    encoder = _only(transformer_run / "pipeline_root" / "Trainer" / "model_run", "*/encoder")
    out = tmp_path / "out"
    proc = textops_cli("run", "--data", str(demo_dir), "--output", str(out), *SMALL,
                       "--set", f"model.transformer.pretrained_encoder={encoder}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = summary(out)
    assert s["status"] == "pushed" and s["metrics"]["accuracy"]["value"] > 0.8
    # Transform tokenized with the encoder's vocabulary instead of computing its own.
    assets = _only(out / "pipeline_root" / "Transform" / "transform_graph", "*/transform_fn/assets")
    assert "piece_words" not in {p.name for p in assets.iterdir()}
    history = json.loads(_only(out / "pipeline_root" / "Trainer" / "model_run", "*/history.json").read_text())
    assert "mlm_loss" not in history["history"]  # no pre-training asked for: the encoder was loaded
    # Sizes that do not match the encoder are refused with the field named.
    bad = textops_cli("run", "--data", str(demo_dir), "--output", str(tmp_path / "bad"), *SMALL,
                      "--set", "model.transformer.hidden_size=64",
                      "--set", f"model.transformer.pretrained_encoder={encoder}")
    assert bad.returncode != 0
    assert "hidden_size: encoder 32 vs settings 64" in bad.stdout + bad.stderr
    version = model_repository.latest_version(str(out / "model_repository"), "text_classifier")
    assert version is not None
