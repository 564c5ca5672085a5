"""Training speed of the default model against fastText, in one run, on every shared dataset.

Per dataset (``../shared/datasets``: ag_news, sms_spam, trec, banking77, twenty_newsgroups,
wisesight_sentiment) and on a 100k-row copy of ag_news:
- ``bow``: the bag-of-n-grams model with the pipeline's defaults (batch size, learning rate,
  epochs, strategy ``auto``), trained by ``components/bare.py`` (the Trainer's tokenizer, model,
  input pipeline and training code; vocabulary built in Python), timed from the first to the
  last training step (``fit``), the same span as fastText's ``train_supervised``;
- fastText (fasttext-wheel, 2 threads, word bigrams, 5 epochs, lr 1.0) on the same split.
Training examples/s = train rows x epochs / training seconds; accuracy on the test split; the
bow model's first epoch against the median of its later epochs.

The 100k copy (``--scale``): 100,000 rows drawn with replacement from ag_news' 10k training rows
(seeded), each drawn text perturbed by dropping every word with probability 0.1 (at least one
word kept), so the copies are not identical rows; ag_news' test split unchanged.

    .venv/bin/python bench/train_bench.py
    .venv/bin/python bench/train_bench.py --datasets ag_news --repeat 3

Needs ../shared/datasets and the bench extra (``scripts/setup.sh --bench``) for fastText.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import textops  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import DATASETS, FASTTEXT_EPOCHS, read, run_fasttext, train_default_bow  # noqa: E402

SHARED = ("ag_news", "sms_spam", "trec", "banking77", "twenty_newsgroups", "wisesight_sentiment")
TARGET_RATIO = 3.0  # training time <= 3 x fastText's (issue #12)


def noisy_copy(name: str, rows: int, workdir: Path, drop: float = 0.1, seed: int = 7) -> Path:
    """``rows`` training rows resampled from ``name`` with word dropout; test split unchanged."""
    texts, labels = read(DATASETS / name / "train.csv")
    rng = random.Random(seed)
    out = workdir / f"{name}_{rows // 1000}k"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            i = rng.randrange(len(texts))
            words = texts[i].split()
            kept = [w for w in words if rng.random() >= drop] or words[:1]
            writer.writerow([" ".join(kept), labels[i]])
    (out / "test.csv").write_bytes((DATASETS / name / "test.csv").read_bytes())
    return out


class EpochTimer:
    """A Keras callback timing training (first step to last) and each epoch."""

    def __new__(cls):
        import tf_keras as keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epochs: list[float] = []
                self.train_seconds = 0.0

            def on_train_begin(self, logs=None):
                self._train_start = time.perf_counter()

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.epochs.append(time.perf_counter() - self._start)

            def on_train_end(self, logs=None):
                self.train_seconds = time.perf_counter() - self._train_start

        return _Timer()


def run_bow(data: Path) -> dict:
    texts, labels = read(data / "train.csv")
    test_texts, test_labels = read(data / "test.csv")
    timer = EpochTimer()
    started = time.perf_counter()
    model, config = train_default_bow(texts, labels, callbacks=[timer])
    total = time.perf_counter() - started
    predicted = model.predict(test_texts).argmax(1)
    accuracy = sum(model.classes[p] == y for p, y in zip(predicted, test_labels)) / len(test_labels)
    return {
        "train_rows": len(texts),
        "epochs": config.epochs_for(len(texts)),  # the most (training.epochs auto); early stopping trains fewer
        "epochs_run": len(timer.epochs),
        "batch_size": config.batch_size_for(len(texts)),
        "learning_rate": config.learning_rate_for(len(texts)),
        "seconds": timer.train_seconds,
        "with_vocabulary_s": total,
        "first_epoch_s": timer.epochs[0],
        "later_epoch_s": statistics.median(timer.epochs[1:]) if len(timer.epochs) > 1 else None,
        "accuracy": accuracy,
    }


def fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"


def print_tables(results: dict) -> None:
    print("\nTraining speed and accuracy, default bow model vs fastText (same split, same run)\n")
    print("| dataset | train rows | bow epochs | bow train s | fastText s | bow ÷ fastText time | bow ex/s | fastText ex/s "
          "| bow acc | fastText acc | acc − fastText | first ÷ later epoch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        b = {k: statistics.median(r["bow"][k] for r in runs) for k in ("seconds", "accuracy", "first_epoch_s")}
        later = [r["bow"]["later_epoch_s"] for r in runs if r["bow"]["later_epoch_s"]]
        f = {k: statistics.median(r["fasttext"][k] for r in runs) for k in ("seconds", "accuracy")}
        rows = runs[0]["bow"]["train_rows"]
        # examples/s over the epochs trained (early stopping trains fewer than the bow's most);
        # results saved before the epochs run were recorded show "-"
        run_counts = [r["bow"].get("epochs_run") for r in runs]
        bow_epochs = statistics.median(run_counts) if None not in run_counts else None
        ft_epochs = runs[0]["fasttext"].get("epochs", FASTTEXT_EPOCHS)
        ratio = b["seconds"] / f["seconds"]
        first_later = b["first_epoch_s"] / statistics.median(later) if later else None
        print(
            f"| {name} | {rows:,} | {fmt(bow_epochs, 0)} | {fmt(b['seconds'], 2)} | {fmt(f['seconds'], 2)} | {ratio:.2f} "
            f"| {fmt(bow_epochs and rows * bow_epochs / b['seconds'], 0)} | {fmt(rows * ft_epochs / f['seconds'], 0)} "
            f"| {b['accuracy']:.4f} | {f['accuracy']:.4f} | {100 * (b['accuracy'] - f['accuracy']):+.2f} pts "
            f"| {fmt(first_later, 2)} |"
        )
    print(f"\n(medians over {len(next(iter(results.values())))} repeat(s); target: bow ÷ fastText time ≤ {TARGET_RATIO}, "
          "accuracy ≥ fastText's, first ÷ later epoch ≤ 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(SHARED))
    parser.add_argument("--scale", type=int, default=100_000, help="rows of the noisy ag_news copy (0: none)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per dataset (medians are printed)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "train_bench.json")
    parser.add_argument("--tables-only", action="store_true", help="print the tables of a saved --json and exit")
    args = parser.parse_args()
    if args.tables_only:
        print_tables(json.loads(args.json.read_text()))
        return
    if not DATASETS.is_dir():
        sys.exit(f"{DATASETS} not found: the benchmark reads the public datasets from ../shared/datasets")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        targets = [(name, DATASETS / name) for name in args.datasets]
        if args.scale:
            targets.append((f"ag_news {args.scale // 1000}k (noisy copy)", noisy_copy("ag_news", args.scale, Path(tmp))))
        for name, data in targets:
            results[name] = []
            for i in range(args.repeat):
                print(f"== {name} ({i + 1}/{args.repeat})", file=sys.stderr, flush=True)
                run = {"fasttext": run_fasttext(data, Path(tmp)), "bow": run_bow(data)}
                if run["fasttext"]["seconds"] is None:
                    sys.exit("fastText is not installed: scripts/setup.sh --bench")
                print(json.dumps(run), file=sys.stderr, flush=True)
                results[name].append(run)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print_tables(results)
    print(f"\nraw results: {args.json}")


if __name__ == "__main__":
    main()
