"""Where the transformer's masked-LM pre-training time goes: cost per example of one MLM step, by variant.

Each row trains the same encoder (the pipeline's default transformer sizes, ag_news vocabulary)
with masked-LM steps on the same ag_news pieces for a fixed number of examples, after a warm-up
(tracing) that is not timed, and reports wall and process-CPU seconds per 1,000 examples and the
ratio to the first row (today's recipe), all measured in the same process, back to back:

- ``batch``: examples per step (the learning rate does not change the cost of a step);
- ``slots``: the head's logits for every one of the ``max_predictions`` slots of every text
  (``fixed``) or only for the pieces actually masked (``masked``);
- ``buckets``: batches of texts of similar length (``components/transformer.py: length_buckets``)
  so that dropping the batch's padding columns saves more;
- ``xla``: ``jit_compile`` of the train step;
- ``head``: an adaptive softmax (``model.pretraining.head_pieces``): a first softmax over the N
  most frequent pieces and "the rest", a second over the rest only for the masked pieces whose
  target is there, instead of one softmax over the 21k-piece vocabulary for every masked piece.

    .venv/bin/python bench/transformer_cost_bench.py
    .venv/bin/python bench/transformer_cost_bench.py --examples 4000 --dataset trec

Needs ../shared/datasets. Prints the load average beside the table: the rows are comparable with
each other, not with another run on a busier machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import textops  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import DATASETS, read  # noqa: E402

# (name, batch, slots, buckets, xla, head pieces); the first row is the recipe before #12's transformer work.
VARIANTS = (
    ("before: batch 32, every slot", 32, "fixed", False, False, None),
    ("batch 32, masked only", 32, "masked", False, False, None),
    ("batch 128, every slot", 128, "fixed", False, False, None),
    ("batch 128, masked only", 128, "masked", False, False, None),
    ("batch 128, masked only, buckets", 128, "masked", True, False, None),
    ("batch 128, every slot, xla", 128, "fixed", False, True, None),
    ("batch 32, masked only, buckets", 32, "masked", True, False, None),
    ("batch 32, masked only, buckets, adaptive head 8,192 pieces", 32, "masked", True, False, 8192),
    ("batch 32, masked only, buckets, adaptive head 4,096 pieces", 32, "masked", True, False, 4096),
    ("batch 32, masked only, buckets, adaptive head 2,048 pieces (default)", 32, "masked", True, False, 2048),
)


def measure(
    pieces, vocab_size: int, batch: int, slots: str, buckets: bool, xla: bool, head, examples: int, mask_rate: float
):
    import numpy as np
    import tensorflow as tf

    from textops.components import transformer as transformer_lib
    from textops.components.encoder_format import EncoderConfig

    import tf_keras as keras

    keras.utils.set_random_seed(0)
    encoder = transformer_lib.build_encoder(EncoderConfig(vocab_size=vocab_size))
    rows = tf.data.Dataset.from_tensor_slices(pieces).shuffle(len(pieces), seed=0)
    batches = transformer_lib.length_buckets(rows, batch) if buckets else rows.batch(batch)
    config = transformer_lib.PretrainConfig(
        epochs=1, mask_rate=mask_rate, masked_only=slots == "masked", length_buckets=buckets
    )
    steps, warmup = max(1, examples // batch), 4
    head_ids = transformer_lib.head_pieces_by_frequency(np.bincount(pieces.ravel(), minlength=vocab_size), head)
    model = transformer_lib.build_mlm_model(
        encoder, config, 0, steps + warmup, batch, jit_compile=xla, head_piece_ids=head_ids
    )
    data = transformer_lib.mlm_dataset(batches.repeat(), vocab_size, config, encoder.config.sequence_length)
    data = data.take(steps + warmup).cache()
    n = sum(int(tf.shape(x["pieces"])[0]) for x, _, _ in data.skip(warmup))  # fills the cache: input work untimed
    model.fit(data.take(warmup), verbose=0)  # tracing (and XLA compilation)
    wall, cpu = time.perf_counter(), time.process_time()
    history = model.fit(data.skip(warmup), verbose=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_per_1k": 1000 * wall / n, "cpu_per_1k": 1000 * cpu / n, "loss": float(history.history["loss"][-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--examples", type=int, default=3000, help="timed examples per variant")
    parser.add_argument("--mask-rate", type=float, default=0.3)
    parser.add_argument("--variants", nargs="+", type=int, help="row numbers (0-based) to run; default all")
    args = parser.parse_args()
    if not DATASETS.is_dir():
        sys.exit(f"{DATASETS} not found: the benchmark reads the public datasets from ../shared/datasets")
    import numpy as np
    import tensorflow as tf

    from textops.components import bare

    texts, _ = read(DATASETS / args.dataset / "train.csv")
    vocabulary = bare.build_piece_vocabulary(texts, 20_000, 1_000)
    tokenizer = bare.PieceTokenizer(vocabulary, 20_000, 64)
    pieces = np.concatenate([tokenizer(tf.constant(texts[i : i + 1024]))["pieces"].numpy() for i in range(0, len(texts), 1024)])
    real = (pieces != 0).sum(axis=1)
    print(f"{args.dataset}: {len(texts)} texts, pieces per text: median {np.median(real):.0f}, "
          f"p90 {np.percentile(real, 90):.0f}, at the 64 cap {100 * np.mean(real == 64):.0f}%", flush=True)
    rows = []
    chosen = args.variants if args.variants is not None else range(len(VARIANTS))
    for i in chosen:
        name, batch, slots, buckets, xla, head = VARIANTS[i]
        load = os.getloadavg()[0]
        result = measure(pieces, len(vocabulary), batch, slots, buckets, xla, head, args.examples, args.mask_rate)
        rows.append((name, result, load))
        print(f"{name}: {result} (load {load:.2f})", flush=True)
    base = rows[0][1]
    print(f"\nmasked-LM steps, {args.dataset}, {args.examples} examples each, mask rate {args.mask_rate}")
    print("| variant | wall s / 1k ex | CPU s / 1k ex | wall ÷ first row | load avg (1 min) |")
    print("|---|---:|---:|---:|---:|")
    for name, r, load in rows:
        print(f"| {name} | {r['wall_per_1k']:.2f} | {r['cpu_per_1k']:.2f} | {r['wall_per_1k'] / base['wall_per_1k']:.2f} | {load:.2f} |")


if __name__ == "__main__":
    main()
