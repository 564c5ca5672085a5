"""Pipeline cost and accuracy against bare training and fastText, measured in one run.

For each dataset (and a 10x copy of ag_news' training split, to show how cost grows):
- the whole local pipeline (`textops run`, fresh output directory: no cache), wall time per
  component and in total, test accuracy as the Evaluator scored it;
- bare training: the same tokenizer, model and training code in a plain in-process script
  (`components/bare.py`: vocabulary in Python, no TFX, no Beam), its time and test accuracy;
- fastText (fasttext-wheel, 2 threads, word bigrams, 5 epochs, lr 1.0) on the same split.

    .venv/bin/python bench/pipeline_bench.py                # ag_news, sms_spam, trec, ag_news x10
    .venv/bin/python bench/pipeline_bench.py --datasets trec --no-scale

Needs ../shared/datasets (the public datasets are not part of the repository) and the bench
extra (`scripts/setup.sh --bench`) for fastText. Prints two Markdown tables and writes JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import textops  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

REPO = Path(__file__).resolve().parents[1]
DATASETS = (REPO / ".." / "shared" / "datasets").resolve()
COMPONENTS = (
    "CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Evaluator",
    "InfraValidator", "Pusher",
)
SHORT = {
    "CsvExampleGen": "ExampleGen", "StatisticsGen": "Stats", "SchemaGen": "Schema", "ExampleValidator": "Validate",
    "InfraValidator": "InfraVal",
}


def read(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def scaled_copy(name: str, factor: int, workdir: Path) -> Path:
    """train.csv repeated `factor` times (the same rows), test.csv unchanged."""
    out = workdir / f"{name}_x{factor}"
    out.mkdir(parents=True, exist_ok=True)
    src = DATASETS / name
    lines = (src / "train.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    with open(out / "train.csv", "w", encoding="utf-8") as f:
        f.write(lines[0])
        for _ in range(factor):
            f.writelines(lines[1:])
    (out / "test.csv").write_bytes((src / "test.csv").read_bytes())
    return out


def run_pipeline(data: Path, workdir: Path) -> dict:
    out = workdir / f"run_{data.name}"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "textops.cli", "run", "--data", str(data), "--output", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    wall = time.perf_counter() - started
    summary_path = out / "run_summary.json"
    if not summary_path.exists():
        raise RuntimeError(f"pipeline on {data} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    s = json.loads(summary_path.read_text())
    return {
        "status": s["status"],
        "wall_s": wall,
        "components": {c["name"]: c["seconds"] for c in s["components"]},
        "accuracy": s["metrics"].get("accuracy", {}).get("value"),
        "f1": s["metrics"].get("f1", {}).get("value"),
    }


def train_default_bow(texts, labels, settings=None, strategy=None, callbacks=()):
    """The bow model with the pipeline's defaults (or ``settings``) through ``components/bare.py``:
    the Trainer's batch size and learning rate for this many rows. Returns (model, TrainerConfig)."""
    from textops.components import bare
    from textops.components.distribution import make_strategy
    from textops.components.preprocessing import TransformConfig
    from textops.components.trainer import TrainerConfig
    from textops.settings import Settings

    settings = settings or Settings()
    config = TrainerConfig.from_settings(settings)
    model = bare.train_bare(
        texts,
        labels,
        transform=TransformConfig.from_settings(settings),
        learning_rate=config.learning_rate_for(len(texts)),
        embedding_dim=config.embedding_dim,
        ngram_weighting=config.ngram_weighting,
        train_config=config.train_config(len(texts)),
        strategy=make_strategy(strategy or config.strategy),
        callbacks=callbacks,
    )
    return model, config


def run_bare(data: Path) -> dict:
    texts, labels = read(data / "train.csv")
    test_texts, test_labels = read(data / "test.csv")
    started = time.perf_counter()
    model, _ = train_default_bow(texts, labels)  # the pipeline's defaults: same model, same training settings
    seconds = time.perf_counter() - started
    predicted = model.predict(test_texts).argmax(1)
    accuracy = sum(model.classes[p] == y for p, y in zip(predicted, test_labels)) / len(test_labels)
    return {"seconds": seconds, "accuracy": accuracy}


FASTTEXT_EPOCHS = 5  # issue #16's reference setting


def run_fasttext(data: Path, workdir: Path, with_predictions: bool = False) -> dict:
    try:
        import fasttext
    except ImportError:
        return {"seconds": None, "accuracy": None, "note": "fasttext-wheel not installed (scripts/setup.sh --bench)"}

    def ft_label(y: str) -> str:
        return f"__label__{y.replace(' ', '_')}"

    def to_ft(texts, labels, path):
        with open(path, "w", encoding="utf-8") as f:
            for t, y in zip(texts, labels):
                f.write(f"{ft_label(y)} {' '.join(t.lower().split())}\n")

    texts, labels = read(data / "train.csv")
    test_texts, test_labels = read(data / "test.csv")
    train_file = workdir / f"{data.name}.ft.txt"
    to_ft(texts, labels, train_file)
    started = time.perf_counter()
    # lr 1.0: fastText's own tutorial value for supervised training with few epochs (its default
    # 0.1 reaches only 0.62 on ag_news in 5 epochs here).
    model = fasttext.train_supervised(str(train_file), wordNgrams=2, epoch=FASTTEXT_EPOCHS, thread=2, lr=1.0, verbose=0)
    seconds = time.perf_counter() - started
    predicted, _ = model.predict([" ".join(t.lower().split()) for t in test_texts])
    by_label = {ft_label(y): y for y in set(labels) | set(test_labels)}
    predicted = [by_label.get(p[0], p[0]) for p in predicted]
    accuracy = sum(p == y for p, y in zip(predicted, test_labels)) / len(test_labels)
    result = {"seconds": seconds, "accuracy": accuracy, "epochs": FASTTEXT_EPOCHS}
    if with_predictions:
        result.update(predictions=predicted, labels=test_labels)
    return result


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ag_news,sms_spam,trec")
    parser.add_argument("--scale", type=int, default=10, help="also run ag_news' train split repeated N times")
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "pipeline_bench.json"))
    parser.add_argument("--tables-only", action="store_true", help="print the tables of a saved --json and exit")
    args = parser.parse_args()
    if args.tables_only:
        print_tables(json.loads(Path(args.json).read_text()))
        return
    if not DATASETS.is_dir():
        sys.exit(f"needs the public datasets in {DATASETS} (not part of the repository)")
    workdir = Path(tempfile.mkdtemp(prefix="textops-bench-"))
    targets = [(n, DATASETS / n) for n in args.datasets.split(",") if n]
    if not args.no_scale:
        targets.append((f"ag_news x{args.scale}", scaled_copy("ag_news", args.scale, workdir)))
    results = {}
    for name, data in targets:
        print(f"== {name}", file=sys.stderr, flush=True)
        results[name] = {
            "train_rows": sum(1 for _ in open(data / "train.csv", encoding="utf-8")) - 1,
            "pipeline": run_pipeline(data, workdir),
            "bare": run_bare(data),
            "fasttext": run_fasttext(data, workdir),
        }
        print(json.dumps(results[name]), file=sys.stderr, flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print_tables(results)
    print(f"\nraw results: {args.json}")


def print_tables(results: dict) -> None:
    header = "| dataset | train rows | " + " | ".join(SHORT.get(c, c) for c in COMPONENTS) + " | pipeline wall |"
    print("\nWall time per component (seconds; fresh output directory, no cache)\n")
    print(header)
    print("|" + "---|" * (len(COMPONENTS) + 3))
    for name, r in results.items():
        comps = r["pipeline"]["components"]
        print(
            f"| {name} | {r['train_rows']:,} | "
            + " | ".join(fmt(comps.get(c)) for c in COMPONENTS)
            + f" | {fmt(r['pipeline']['wall_s'])} |"
        )
    print("\nAccuracy and training cost (same test split; pipeline ÷ bare = pipeline wall ÷ bare training)\n")
    print(
        "| dataset | pipeline acc | bare acc | fastText acc | acc − fastText | bare training s | pipeline ÷ bare | fastText s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        p, b, f = r["pipeline"], r["bare"], r["fasttext"]
        delta = None if p["accuracy"] is None or f["accuracy"] is None else p["accuracy"] - f["accuracy"]
        print(
            f"| {name} | {fmt(p['accuracy'], 4)} | {fmt(b['accuracy'], 4)} | {fmt(f['accuracy'], 4)} | "
            f"{'-' if delta is None else f'{delta:+.4f}'} | {fmt(b['seconds'])} | {fmt(p['wall_s'] / b['seconds'], 2)} | "
            f"{fmt(f['seconds'], 2)} |"
        )


if __name__ == "__main__":
    main()
