"""The model zoo against fastText: accuracy, macro-F1, training time and throughput, in one run.

Per dataset (ag_news, sms_spam, trec), all on the same train/test split in the same process:
- ``bow``: the bag-of-n-grams model with the pipeline's default settings;
- ``transformer``: the encoder with the pipeline's default transformer settings, no pre-training;
- ``transformer+mlm``: the same after masked-LM pre-training on the training texts;
- fastText (fasttext-wheel, 2 threads, word bigrams, 5 epochs, lr 1.0).
Models run through ``components/bare.py`` (the Trainer's tokenization, model and training code,
vocabularies built in Python instead of by Transform) so the comparison is of models, not of
pipeline overhead (``bench/pipeline_bench.py`` measures that).

Throughput of the transformer's fine-tuning on this machine's CPU, three ways:
- ``input ex/s``: the tf.data input pipeline alone (cached, shuffled, batched, prefetched);
- ``training epochs ex/s``: the fine-tuning epochs after the first (which fills the cache);
- ``fed steps`` vs ``in-memory steps``: the same ``fit`` loop for the same number of steps, fed by
  that pipeline or by one batch held in memory (no input work at all), measured back to back.
fed / in-memory near 1 means the input pipeline overlaps compute and does not starve it.

    .venv/bin/python bench/model_bench.py
    .venv/bin/python bench/model_bench.py --datasets trec --pretrain-epochs 3

Needs ../shared/datasets and the bench extra (``scripts/setup.sh --bench``) for fastText.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import textops  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import DATASETS, read, run_fasttext, train_default_bow  # noqa: E402

MODELS = ("bow", "transformer", "transformer+mlm", "fasttext")


class EpochTimer:
    """Keras callback: wall time of each training epoch (validation excluded: none is passed)."""

    def __new__(cls):
        import tf_keras as keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return _Timer()


def macro_f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro"))


def settings_for(kind: str, pretrain_epochs: int, overrides: list[str]):
    """The pipeline's defaults for ``kind``, plus the benchmark's ``--set`` overrides for the
    transformer (the bow model always runs with its defaults)."""
    from textops.settings import load_settings

    extra = overrides if kind == "transformer" else []
    return load_settings(None, [f"model.kind={kind}", f"model.pretraining.epochs={pretrain_epochs}", *extra])


def run_model(name: str, data: Path, pretrain_epochs: int, strategy_name: str, overrides: list[str]) -> dict:
    from textops.components import bare
    from textops.components.distribution import make_strategy
    from textops.components.trainer import TrainerConfig

    kind = "bow" if name == "bow" else "transformer"
    settings = settings_for(kind, pretrain_epochs if name == "transformer+mlm" else 0, overrides)
    config = TrainerConfig.from_settings(settings)
    texts, labels = read(data / "train.csv")
    test_texts, test_labels = read(data / "test.csv")
    train_config = config.train_config(len(texts))
    timer = EpochTimer()
    started, cpu_started, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    if kind == "bow":
        model, _ = train_default_bow(texts, labels, settings, strategy_name)
    else:
        model_config = config.model_config(2, 10)
        model = bare.train_bare_transformer(
            texts,
            labels,
            encoder=model_config.encoder,
            word_vocab_size=config.word_vocab_size,
            char_vocab_size=config.char_vocab_size,
            pooling=config.pooling,
            learning_rate=config.learning_rate_for(len(texts)),
            pretrain=config.pretrain_config(),
            train_config=train_config,
            strategy=make_strategy(strategy_name),
            callbacks=[timer],
        )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    predicted = [model.classes[i] for i in model.predict(test_texts).argmax(1)]
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # the process's CPU time, every thread: under load, wall time inflates, this less
        "load_avg": [load, os.getloadavg()[0]],  # 1-minute load average at the start and the end
        "accuracy": sum(p == y for p, y in zip(predicted, test_labels)) / len(test_labels),
        "macro_f1": macro_f1(test_labels, predicted),
        "train_examples": len(texts),
    }
    if kind == "transformer" and len(timer.seconds) > 1:
        # The last `epochs` entries are fine-tuning (pre-training epochs are not timed).
        result["train_ex_s"] = len(texts) / statistics.median(timer.seconds[1:])
    if name == "transformer":
        result.update(throughput(model, texts, labels, train_config.batch_size))
    return result


def throughput(model, texts, labels, batch_size: int, steps: int = 60) -> dict:
    """Three rates, measured back to back with the same Keras ``fit`` loop (see the docstring):
    the input pipeline alone, training fed by it, training on one batch held in memory."""
    import tensorflow as tf

    from textops.components import bare, training

    dataset = training.prepare_dataset(
        bare._dataset(model.tokenizer, texts, labels, model.classes), batch_size, shuffle=True
    )
    for _ in dataset:  # fill the cache, as the first training epoch does
        pass
    started = time.perf_counter()
    n = sum(int(tf.shape(y)[0]) for _, y in dataset)
    input_rate = n / (time.perf_counter() - started)
    steps = min(steps, n // batch_size)
    x, y = next(iter(dataset))
    in_memory = tf.data.Dataset.from_tensors((x, y)).repeat()
    fed = dataset.repeat()
    keras_model = model.model
    rates = {}
    for name, source in (("fed", fed), ("compute", in_memory)):
        keras_model.fit(source, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up (tracing)
        started = time.perf_counter()
        keras_model.fit(source, steps_per_epoch=steps, epochs=1, verbose=0)
        rates[name] = steps * batch_size / (time.perf_counter() - started)
    return {"input_ex_s": input_rate, "fed_ex_s": rates["fed"], "compute_ex_s": rates["compute"]}


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def print_tables(results: dict) -> None:
    print("\n| dataset | model | accuracy | macro-F1 | train s | process CPU s | load avg (start, end) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for ds, r in results.items():
        for name in MODELS:
            m = r.get(name)
            if m:
                load = ", ".join(f"{v:.1f}" for v in m.get("load_avg", [])) or "-"
                print(f"| {ds} | {name} | {fmt(m.get('accuracy'))} | {fmt(m.get('macro_f1'))} | {fmt(m.get('seconds'), 1)} "
                      f"| {fmt(m.get('cpu_seconds'), 1)} | {load} |")
    print("\n| dataset | input pipeline ex/s | training epochs ex/s | fed steps ex/s | in-memory steps ex/s | fed ÷ in-memory |")
    print("|---|---:|---:|---:|---:|---:|")
    for ds, r in results.items():
        t = r.get("transformer") or {}
        if "compute_ex_s" in t and "fed_ex_s" in t:
            print(
                f"| {ds} | {fmt(t['input_ex_s'], 0)} | {fmt(t.get('train_ex_s'), 0)} | {fmt(t['fed_ex_s'], 0)} "
                f"| {fmt(t['compute_ex_s'], 0)} | {t['fed_ex_s'] / t['compute_ex_s']:.2f} |"
            )
    for ds, r in results.items():
        ft, tm = r.get("fasttext", {}).get("accuracy"), r.get("transformer+mlm", {}).get("accuracy")
        if ft is not None and tm is not None:
            print(f"{ds}: transformer+mlm − fastText accuracy = {100 * (tm - ft):+.2f} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ag_news", "sms_spam", "trec"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--pretrain-epochs", type=int, default=5, help="masked-LM epochs of transformer+mlm")
    parser.add_argument("--strategy", default="auto", help="tf.distribute strategy for every model")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for both transformer runs, e.g. model.pretraining.mask_rate=0.3")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "model_bench.json")
    args = parser.parse_args()
    if not DATASETS.is_dir():
        sys.exit(f"{DATASETS} not found: the benchmark reads the public datasets from ../shared/datasets")
    import tempfile

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ds in args.datasets:
            data = DATASETS / ds
            results[ds] = {}
            for name in args.models:
                print(f"== {ds} / {name}", flush=True)
                if name == "fasttext":
                    out = run_fasttext(data, Path(tmp), with_predictions=True)
                    if out.get("predictions") is not None:
                        out["macro_f1"] = macro_f1(out.pop("labels"), out.pop("predictions"))
                    results[ds][name] = out
                else:
                    results[ds][name] = run_model(name, data, args.pretrain_epochs, args.strategy, args.overrides)
                print(json.dumps(results[ds][name]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": platform.platform(), "pretrain_epochs": args.pretrain_epochs,
                                     "overrides": args.overrides, "results": results}, indent=2))
    print(f"\ntransformer settings: defaults + {args.overrides or 'nothing'}; pre-training epochs {args.pretrain_epochs}")
    print_tables(results)


if __name__ == "__main__":
    main()
