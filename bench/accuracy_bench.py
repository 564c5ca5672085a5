"""Accuracy of the default model against fastText and TF-IDF + linear SVM, in one run, on every shared corpus.

Per corpus (``../shared/datasets``: ag_news, sms_spam, trec, banking77, twenty_newsgroups,
wisesight_sentiment), on the same train/test files, in the same process:
- ``default``: the bag-of-n-grams model with every setting as ``textops run`` configures it
  (``Settings()``: n-grams, vocabulary, epochs, early stopping, batch size, learning rate),
  trained by ``components/bare.py`` (the Trainer's tokenizer, model and training code; vocabulary
  built in Python); the validation split it stops on is the Trainer's own hold-out from train;
- fastText (fasttext-wheel, 2 threads, word bigrams, lr 1.0, 5 epochs: issue #16's reference),
  on the text lower-cased and split on white space; in scripts written without spaces (Thai,
  Chinese, Japanese) each character becomes a token, so its bigrams are character bigrams;
- TF-IDF + linear SVM: scikit-learn's ``TfidfVectorizer()`` and ``LinearSVC()``, defaults.
Accuracy and macro-F1 (scikit-learn's ``f1_score(average="macro")``) on the test split; seconds of
training (fit only: vocabulary/vectorizing included for all three).

``--pipeline``: also run the real pipeline (``textops run``, fresh output directory) on the named
corpora and report the Evaluator's accuracy and macro-F1 on the same test split.

    .venv/bin/python bench/accuracy_bench.py                          # six corpora, three models
    .venv/bin/python bench/accuracy_bench.py --pipeline trec sms_spam  # + textops run on two
    .venv/bin/python bench/accuracy_bench.py --tables-only             # the saved table again

Needs ../shared/datasets and the bench extra (``scripts/setup.sh --bench``) for fastText.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import textops  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline_bench  # noqa: E402
from pipeline_bench import DATASETS, train_default_bow  # noqa: E402
from train_bench import SHARED  # noqa: E402

# The scripts components/text.py splits into one token per character (Thai, Lao, Khmer, Myanmar,
# Tibetan, CJK, kana), each with its combining marks.
_NO_SPACE = re.compile(
    r"([\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u0f00-\u0fff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
    r"[\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd]*)"
)


def read(path: Path, limit: int = 0, seed: int = 13) -> tuple[list[str], list[str]]:
    csv.field_size_limit(sys.maxsize)  # twenty_newsgroups has posts longer than csv's 128 KiB default
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(f)]
    if limit and len(rows) > limit:
        rows = random.Random(seed).sample(rows, limit)
    return [t for t, _ in rows], [y for _, y in rows]


def scores(predicted, labels) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(labels, predicted)), "macro_f1": float(f1_score(labels, predicted, average="macro"))}


def run_default(train, test) -> dict:
    from textops.components import training

    started = time.perf_counter()
    model, config = train_default_bow(*train)
    seconds = time.perf_counter() - started
    predicted = [model.classes[i] for i in model.predict(test[0]).argmax(1)]
    epochs = len(model.history.get("loss", []))
    kept = training.kept_epoch(model.history, config.train_config(len(train[0])))
    return {"seconds": seconds, "epochs": epochs, "kept_epoch": None if kept is None else kept + 1, **scores(predicted, test[1])}


def fasttext_text(text: str) -> str:
    return " ".join(_NO_SPACE.sub(r" \1 ", text.lower()).split())


def run_fasttext(train, test, workdir: Path) -> dict:
    import fasttext

    def label(y: str) -> str:
        return f"__label__{y.replace(' ', '_')}"

    train_file = workdir / "train.ft.txt"
    with open(train_file, "w", encoding="utf-8") as f:
        f.writelines(f"{label(y)} {fasttext_text(t)}\n" for t, y in zip(*train))
    started = time.perf_counter()
    model = fasttext.train_supervised(
        str(train_file), wordNgrams=2, epoch=pipeline_bench.FASTTEXT_EPOCHS, thread=2, lr=1.0, verbose=0
    )
    seconds = time.perf_counter() - started
    by_label = {label(y): y for y in set(train[1])}
    predicted, _ = model.predict([fasttext_text(t) for t in test[0]])
    return {"seconds": seconds, **scores([by_label[p[0]] for p in predicted], test[1])}


def run_tfidf_svm(train, test) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    started = time.perf_counter()
    model = make_pipeline(TfidfVectorizer(), LinearSVC()).fit(*train)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, **scores(model.predict(test[0]), test[1])}


def run_pipeline(data: Path, workdir: Path) -> dict:
    """``textops run`` on ``data`` (``pipeline_bench.run_pipeline``: fresh output directory): the
    Evaluator's test-split metrics, the Trainer's seconds and epochs."""
    result = pipeline_bench.run_pipeline(data, workdir)
    summary = json.loads((workdir / f"run_{data.name}" / "run_summary.json").read_text())
    training = summary.get("training") or {}
    return {
        "status": result["status"], "wall_s": result["wall_s"], "trainer_s": result["components"].get("Trainer"),
        "epochs": training.get("epochs"), "kept_epoch": training.get("kept_epoch"),
        "accuracy": result["accuracy"], "macro_f1": result["f1"],
    }


def fmt(v, digits=4):
    return pipeline_bench.fmt(v, digits)


def print_tables(results: dict) -> None:
    print("\nDefault model vs fastText and TF-IDF + linear SVM (same train/test files, same run)\n")
    print("| corpus | train / test rows | default acc | fastText acc | TF-IDF+SVM acc | default F1 | fastText F1 "
          "| TF-IDF+SVM F1 | default − stronger peer (acc / F1) | epoch kept of run | default s | fastText s | TF-IDF+SVM s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for name, r in results.items():
        d, f, s = r["default"], r["fasttext"], r["tfidf_svm"]
        gap_acc = d["accuracy"] - max(f["accuracy"], s["accuracy"])
        gap_f1 = d["macro_f1"] - max(f["macro_f1"], s["macro_f1"])
        rows = f"{r['train_rows']:,} / {r['test_rows']:,}" + (" (subsampled)" if r.get("subsampled") else "")
        print(
            f"| {name} | {rows} | {fmt(d['accuracy'])} | {fmt(f['accuracy'])} | {fmt(s['accuracy'])} "
            f"| {fmt(d['macro_f1'])} | {fmt(f['macro_f1'])} | {fmt(s['macro_f1'])} "
            f"| {100 * gap_acc:+.2f} / {100 * gap_f1:+.2f} pts | {d.get('kept_epoch') or '-'} of {d.get('epochs', '-')} "
            f"| {fmt(d['seconds'], 1)} | {fmt(f['seconds'], 1)} | {fmt(s['seconds'], 1)} |"
        )
    piped = {n: r["pipeline"] for n, r in results.items() if r.get("pipeline")}
    if piped:
        print("\nThe same default model through the pipeline (`textops run`; Evaluator on the test split)\n")
        print("| corpus | status | pipeline acc | pipeline F1 (the gate's) | bare default acc | epoch kept of run | Trainer s | wall s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for name, p in piped.items():
            print(
                f"| {name} | {p['status']} | {fmt(p['accuracy'])} | {fmt(p['macro_f1'])} "
                f"| {fmt(results[name]['default']['accuracy'])} | {p.get('kept_epoch') or '-'} of {p.get('epochs') or '-'} "
                f"| {fmt(p['trainer_s'], 1)} | {fmt(p['wall_s'], 1)} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(SHARED))
    parser.add_argument("--pipeline", nargs="*", default=[], help="also run `textops run` on these corpora")
    parser.add_argument("--max-train", type=int, default=0, help="subsample larger training splits to this many rows")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "accuracy_bench.json")
    parser.add_argument("--tables-only", action="store_true", help="print the tables of a saved --json and exit")
    args = parser.parse_args()
    if args.tables_only:
        print_tables(json.loads(args.json.read_text()))
        return
    if not DATASETS.is_dir():
        sys.exit(f"{DATASETS} not found: the benchmark reads the public datasets from ../shared/datasets")
    try:
        import fasttext  # noqa: F401
    except ImportError:
        sys.exit("fastText is not installed: scripts/setup.sh --bench")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            print(f"== {name}", file=sys.stderr, flush=True)
            train, test = read(DATASETS / name / "train.csv", args.max_train), read(DATASETS / name / "test.csv")
            full = sum(1 for _ in read(DATASETS / name / "train.csv")[0])
            result = {
                "train_rows": len(train[0]), "test_rows": len(test[0]), "subsampled": len(train[0]) < full,
                "fasttext": run_fasttext(train, test, Path(tmp)),
                "tfidf_svm": run_tfidf_svm(train, test),
                "default": run_default(train, test),
            }
            if name in args.pipeline:
                if result["subsampled"]:
                    sys.exit("--pipeline runs on the whole files: leave out --max-train")
                result["pipeline"] = run_pipeline(DATASETS / name, Path(tmp))
            print(json.dumps(result), file=sys.stderr, flush=True)
            results[name] = result
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print_tables(results)
    print(f"\nraw results: {args.json}")


if __name__ == "__main__":
    main()
