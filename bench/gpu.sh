#!/usr/bin/env bash
# The Trainer's models on ag_news with the default strategy (auto: mirrored with 2+ GPUs, else one
# device) and mixed precision (training.mixed_precision: auto -> float16 compute on a GPU): prints
# training examples/s and test accuracy of `bow` and `transformer`, within 8 minutes.
#
#   bench/gpu.sh                  # on a machine with NVIDIA GPUs (nvidia-smi), ../shared/datasets
#   ROWS=2000 bench/gpu.sh        # fewer training rows (a quick check)
#
# Without a GPU it says "no GPU" and runs a small CPU smoke check (2,000 rows, 1 epoch) instead,
# so the first machine with a GPU only has to start it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/datasets/ag_news}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi -L
  ROWS=${ROWS:-0}; EPOCHS=${EPOCHS:-5}
else
  echo "no GPU (nvidia-smi finds none): CPU smoke check with ${ROWS:-2000} rows, 1 epoch"
  ROWS=${ROWS:-2000}; EPOCHS=${EPOCHS:-1}
fi
exec timeout 480 "$PY" - "$DATA" "$ROWS" "$EPOCHS" <<'EOF'
import sys, time
import textops  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
sys.path.insert(0, "bench")
from pathlib import Path
import tensorflow as tf
from pipeline_bench import read
from textops.components import bare
from textops.components.distribution import make_strategy
from textops.components.preprocessing import TransformConfig
from textops.components.trainer import TrainerConfig, configure_precision
from textops.settings import load_settings

data, rows, epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
texts, labels = read(data / "train.csv")
test_texts, test_labels = read(data / "test.csv")
if rows:
    texts, labels = texts[:rows], labels[:rows]
gpus = tf.config.list_physical_devices("GPU")
print(f"devices: {len(gpus)} GPU(s); {len(texts):,} training texts, {epochs} epoch(s)")
print("| model | strategy | precision | batch | train s | train ex/s | accuracy |")
print("|---|---|---|---:|---:|---:|---:|")
for kind in ("bow", "transformer"):
    settings = load_settings(None, [f"model.kind={kind}", f"training.epochs={epochs}"])
    config = TrainerConfig.from_settings(settings)
    policy = configure_precision(config.mixed_precision)
    strategy = make_strategy(config.strategy)
    train_config = config.train_config(len(texts))
    started = time.perf_counter()
    if kind == "bow":
        model = bare.train_bare(texts, labels, transform=TransformConfig.from_settings(settings),
                                learning_rate=config.learning_rate_for(len(texts)), train_config=train_config,
                                strategy=strategy)
    else:
        encoder = config.model_config(2, 10).encoder
        model = bare.train_bare_transformer(texts, labels, encoder=encoder, learning_rate=config.learning_rate_for(len(texts)),
                                            train_config=train_config, strategy=strategy)
    seconds = time.perf_counter() - started
    predicted = model.predict(test_texts).argmax(1)
    accuracy = sum(model.classes[p] == y for p, y in zip(predicted, test_labels)) / len(test_labels)
    print(f"| {kind} | {type(strategy).__name__} | {policy} | {train_config.batch_size} | {seconds:.1f} "
          f"| {len(texts) * epochs / seconds:,.0f} | {accuracy:.4f} |", flush=True)
    tf.keras.backend.clear_session()
print("(train s includes building the vocabulary in Python and tracing; no GPU: a smoke check, not a measurement)"
      if not gpus else "(train s includes building the vocabulary in Python and tracing)")
EOF
