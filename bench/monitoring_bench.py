"""Monitoring benchmark: cost (time, peak memory) and shift detection (acceptance figures).

    .venv/bin/python bench/monitoring_bench.py cost   [--sizes 10000 100000]
    .venv/bin/python bench/monitoring_bench.py shift  [--windows 20 --window-size 500]
    .venv/bin/python bench/monitoring_bench.py detect [--corpora ag_news trec ... --windows 20]
    .venv/bin/python bench/monitoring_bench.py estimate [--corpora ...]   (offline, over detect's cached probabilities)

Both train the project's model (``components/bare.py``: same tokenizer and model as the
pipeline) on ag_news train (../shared/datasets), export it, and build the monitor's reference
from half of the ag_news test split scored by that model.

- ``cost``: logs of N predictions (all ag_news texts, ~17.6k distinct, sampled with
  replacement to N; the model's real predictions) are monitored end to end (read the log, descriptors, Evidently drift with
  the default ``drift.max_rows`` sample, report, snapshot) in a fresh process per size, which
  reports wall time and peak RSS.
- ``shift``: windows drawn from the other half of ag_news test (no shift) with different seeds,
  and windows of sms_spam and trec texts sent to the ag_news model (shift); prints how many of
  each were flagged as drift and the text-drift scores.
- ``detect``: the alert policy and the label-free estimate on every shared corpus (below).

``detect``, per corpus: the project's model (``components/bare.py``, the pipeline's tokenizer
and model without TFX, 3 epochs) is trained on the corpus's train split; the held-out texts
(the test split, topped up from train when it is small; those train rows are not trained on)
give the reference (scored by the model, labels known, at most 2,000 texts) and a disjoint pool.
Windows of ``--window-size`` (500) logged predictions, ``--windows`` (20) of each kind:

1. ``in-distribution``: drawn from the pool;
2. ``another corpus``: texts of another shared corpus (``OTHER_CORPUS``);
3. ``two classes only``: two classes of the pool picked per window (binary corpora: one class);
4. ``one class doubled``: one class's share doubled (the class changes per window);
5. ``20% noise``: in-distribution, with a fifth of the texts replaced by random letter strings.

Each window goes through ``run_monitor`` with the default settings and the gate's default
thresholds (``evaluation.thresholds``) as the reference's gate. Printed per kind: the share of
windows with any alert, how often each signal fired, and the label-free accuracy estimate
against the true accuracy (mean absolute error) where the window's labels exist. ``detect``
saves every window's model probabilities and labels to ``<workdir>/<corpus>/windows.pkl``.

``estimate`` (offline) re-runs the label-free estimate with the current code over those cached
windows, without the model or Evidently: per window, the prediction signal (its Jensen-Shannon
test against its noise level, as ``run_monitor`` computes it) and the estimate check
(``check_estimate``) with the default settings. The text, confidence and share-of-columns
signals are not computed: the prior-shift alert, which speaks only where no drift alert did,
is counted where the prediction signal did not fire (an upper bound on it).
"""

from __future__ import annotations

import textops  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def _prepare(workdir: Path) -> tuple[Path, Path, pd.DataFrame]:
    """Trains and exports the ag_news model, saves the reference; returns (model, reference, pool)."""
    from textops.components import bare, training
    from textops.monitoring.reference import build_reference

    train = pd.read_csv(DATASETS / "ag_news" / "train.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(DATASETS / "ag_news" / "test.csv", dtype=str, keep_default_na=False)
    model_dir = workdir / "model"
    if not (model_dir / "saved_model.pb").is_file():
        t = time.perf_counter()
        m = bare.train_bare(train.text.tolist(), train.label.tolist(), train_config=training.TrainConfig(epochs=3))
        m.export(str(model_dir))
        print(f"trained and exported the ag_news model in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    shuffled = test.sample(frac=1.0, random_state=0).reset_index(drop=True)
    half = len(shuffled) // 2
    ref_dir = workdir / "reference"
    if not (ref_dir / "reference.json").is_file():
        ref = build_reference(shuffled.text[:half].tolist(), shuffled.label[:half].tolist(), model_dir, source="ag_news test (half)")
        ref.save(ref_dir)
    return model_dir, ref_dir, shuffled[half:].reset_index(drop=True)


def _run_once(args: argparse.Namespace) -> None:
    """Child process of ``cost``: monitors one log, prints a JSON line with time and peak RSS."""
    from textops.monitoring.config import load_monitor_settings
    from textops.monitoring.monitor import run_monitor, write_outputs

    settings = load_monitor_settings(
        None,
        ["window.last=all", "window.min_records=1"],
        reference=args.reference,
        log=args.log,
        output=args.output,
    )
    t = time.perf_counter()
    result = run_monitor(settings)
    write_outputs(result, settings.output)
    seconds = time.perf_counter() - t
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    distinct = int(result.window.frame["text"].nunique())
    print(json.dumps({k: round(v, 1) for k, v in result.verdict.timings.items()}), file=sys.stderr)
    print(json.dumps({"timings": result.verdict.timings, "seconds": seconds, "peak_mib": peak_mib, "records": result.verdict.window["records"], "distinct": distinct, "exit": result.verdict.exit_code}))


def cost(args: argparse.Namespace) -> None:
    from textops.monitoring.reference import score
    from textops.monitoring.simulate import write_prediction_log

    work = Path(args.workdir)
    model_dir, ref_dir, _ = _prepare(work)
    # every ag_news text (train + test: ~17.6k distinct), sampled with replacement to N, so the
    # drift step compares close to its drift.max_rows=20000 cap of distinct texts
    frames = [pd.read_csv(DATASETS / "ag_news" / f, dtype=str, keep_default_na=False) for f in ("train.csv", "test.csv")]
    texts_all = pd.concat(frames).text.drop_duplicates().tolist()
    probs_all, classes = score(model_dir, texts_all)
    rows = []
    stages: list = []
    for size in args.sizes:
        rng = np.random.default_rng(size)
        idx = rng.integers(0, len(texts_all), size=size)
        log_dir = work / f"log-{size}"
        if not log_dir.is_dir():
            write_prediction_log(
                model_dir, [texts_all[i] for i in idx], log_dir, probabilities=probs_all[idx], classes=classes, records_per_file=20_000
            )
        log_bytes = sum(p.stat().st_size for p in log_dir.iterdir())
        cmd = [
            sys.executable, __file__, "_once", "--reference", str(ref_dir), "--log", str(log_dir), "--output", str(work / f"out-{size}"),
        ]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"monitor run for {size} records failed:\n{proc.stderr[-3000:]}")
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((size, log_bytes / 2**20, line["distinct"], line["seconds"], wall, line["peak_mib"], line["exit"]))
        stages.append((size, line["timings"]))
    print(f"\n{'records':>8} {'log MiB':>8} {'distinct texts':>15} {'monitor s':>10} {'process s':>10} {'peak RSS MiB':>13} {'exit':>5}")
    for size, mib, distinct, secs, wall, peak, code in rows:
        print(f"{size:>8} {mib:>8.1f} {distinct:>15} {secs:>10.1f} {wall:>10.1f} {peak:>13.0f} {code:>5}")
    print(f"(cpu cores: {os.cpu_count()}; drift tests on a sample of at most drift.max_rows=20000 distinct texts)")
    names = list(stages[0][1]) if stages else []
    print(f"\nseconds per stage\n{'records':>8} " + " ".join(f"{n:>20}" for n in names))
    for size, timings in stages:
        print(f"{size:>8} " + " ".join(f"{timings.get(n, 0.0):>20.1f}" for n in names))


def shift(args: argparse.Namespace) -> None:
    from textops.monitoring.config import load_monitor_settings
    from textops.monitoring.monitor import run_monitor
    from textops.monitoring.reference import Reference
    from textops.monitoring.simulate import write_prediction_log

    work = Path(args.workdir)
    model_dir, ref_dir, pool = _prepare(work)
    reference = Reference.load(ref_dir)
    sources = {"ag_news test (no shift)": pool.text.tolist()}
    for name in ("sms_spam", "trec"):
        frames = [pd.read_csv(DATASETS / name / f, dtype=str, keep_default_na=False) for f in ("train.csv", "test.csv")]
        sources[f"{name} (shift)"] = pd.concat(frames).text.tolist()
    rows = []
    for name, texts in sources.items():
        flagged, scores, drifted_cols = 0, [], []
        for seed in range(args.windows):
            rng = np.random.default_rng(1000 + seed)
            picked = [texts[i] for i in rng.choice(len(texts), size=args.window_size, replace=False)]
            with tempfile.TemporaryDirectory() as tmp:
                write_prediction_log(model_dir, picked, tmp, seed=seed)
                settings = load_monitor_settings(None, ["window.last=all"], log=tmp, output=os.path.join(tmp, "out"))
                verdict = run_monitor(settings, reference=reference).verdict
            flagged += verdict.drifted
            scores.append(verdict.drift["columns"]["text"]["score"])
            drifted_cols.append(verdict.drift["drifted_count"])
        rows.append((name, args.windows, flagged, np.mean(scores), np.min(scores), np.max(scores), np.mean(drifted_cols)))
        print(f"{name}: {flagged}/{args.windows} flagged", file=sys.stderr)
    print(f"\nwindow size {args.window_size}; reference {len(reference.frame)} ag_news test texts; text threshold: ROC AUC > 0.60")
    print(f"{'windows from':<26} {'windows':>7} {'flagged':>7} {'text AUC mean':>13} {'min':>6} {'max':>6} {'drifted cols (of 6)':>20}")
    for name, n, f, mean, lo, hi, cols in rows:
        print(f"{name:<26} {n:>7} {f:>7} {mean:>13.3f} {lo:>6.3f} {hi:>6.3f} {cols:>20.1f}")


OTHER_CORPUS = {
    "ag_news": "sms_spam",
    "sms_spam": "trec",
    "trec": "banking77",
    "banking77": "trec",
    "twenty_newsgroups": "ag_news",
    "wisesight_sentiment": "sms_spam",
}
KINDS = ("in-distribution", "another corpus", "two classes only", "one class doubled", "20% noise")
SIGNALS = ("text", "prediction", "confidence", "dataset", "prior_shift", "estimate")
# the variant measured beside the defaults: the former default estimate (per-class isotonic
# calibration, every class keeps a prior when re-weighted), the estimate only (no drift checks,
# so the prior re-weighting follows the likelihood-ratio test alone)
FORMER = ("estimate.top_label=false", "estimate.prior_support_p=null", "drift.enabled=false", "service.enabled=false", "quality.enabled=false")


def _read(name: str, split: str) -> pd.DataFrame:
    return pd.read_csv(DATASETS / name / f"{split}.csv", dtype=str, keep_default_na=False)


def _corpus_setup(name: str, work: Path, reference_rows: int, pool_rows: int) -> tuple[Path, "Reference", pd.DataFrame, dict]:  # noqa: F821
    """Trains the bare model on the corpus, returns (model, reference, pool, facts)."""
    from textops.components import bare, training
    from textops.monitoring.reference import Reference, build_reference
    from textops.settings import Thresholds

    train = _read(name, "train").sample(frac=1.0, random_state=0).reset_index(drop=True)
    test = _read(name, "test").sample(frac=1.0, random_state=0).reset_index(drop=True)
    extra = min(max(0, reference_rows + pool_rows - len(test)), len(train) // 2)
    # shuffled together, so the reference and the pool are the same mixture of test and train rows
    held = pd.concat([test, train.iloc[:extra]]).sample(frac=1.0, random_state=1).reset_index(drop=True)
    train = train.iloc[extra:].reset_index(drop=True)
    n_ref = min(reference_rows, len(held) // 2)
    model_dir = work / name / "model"
    started = time.perf_counter()
    if not (model_dir / "saved_model.pb").is_file():
        m = bare.train_bare(train.text.tolist(), train.label.tolist(), train_config=training.TrainConfig(epochs=3))
        m.export(str(model_dir))
    trained_s = time.perf_counter() - started
    ref_dir = work / name / "reference"
    if (ref_dir / "reference.json").is_file():
        reference = Reference.load(ref_dir)
    else:
        reference = build_reference(held.text[:n_ref].tolist(), held.label[:n_ref].tolist(), model_dir, source=f"{name} held out")
        reference.save(ref_dir)
    # what a reference built from a pipeline run carries: the gate's thresholds
    reference.meta["gate_thresholds"] = Thresholds().gated()
    reference.meta["run_id"] = f"bench-{name}"
    facts = {"train": len(train), "reference": n_ref, "pool": len(held) - n_ref, "classes": len(reference.classes), "train_s": trained_s}
    return model_dir, reference, held.iloc[n_ref:].reset_index(drop=True), facts


def _noise_text(text: str, rng: np.random.Generator) -> str:
    words = max(1, len(text.split()))
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return " ".join("".join(rng.choice(letters, size=int(rng.integers(3, 10)))) for _ in range(words))


def _pick(frame: pd.DataFrame, size: int, rng: np.random.Generator, weights: "np.ndarray | None" = None) -> pd.DataFrame:
    """``size`` rows, without replacement when the frame has enough (weights: per row)."""
    replace = len(frame) < size if weights is None else int((weights > 0).sum()) < size
    p = None if weights is None else weights / weights.sum()
    return frame.iloc[rng.choice(len(frame), size=size, replace=replace, p=p)]


def _window(kind: str, pool: pd.DataFrame, other: pd.DataFrame, size: int, seed: int) -> tuple[list[str], "list[str] | None"]:
    rng = np.random.default_rng(seed)
    classes = sorted(pool.label.unique())
    if kind == "in-distribution":
        rows = _pick(pool, size, rng)
    elif kind == "another corpus":
        return _pick(other, size, rng).text.tolist(), None
    elif kind == "two classes only":
        keep = rng.choice(classes, size=1 if len(classes) == 2 else 2, replace=False)
        rows = _pick(pool[pool.label.isin(keep)], size, rng)
    elif kind == "one class doubled":
        doubled = classes[seed % len(classes)]
        rows = _pick(pool, size, rng, np.where(pool.label == doubled, 2.0, 1.0))
    else:  # 20% noise
        rows = _pick(pool, size, rng)
        texts = rows.text.tolist()
        for i in rng.choice(size, size=size // 5, replace=False):
            texts[i] = _noise_text(texts[i], rng)
        return texts, None
    return rows.text.tolist(), rows.label.tolist()


def detect(args: argparse.Namespace) -> None:
    from textops.monitoring.config import load_monitor_settings
    from textops.monitoring.monitor import run_monitor
    from textops.monitoring.reference import score
    from textops.monitoring.simulate import write_prediction_log

    work = Path(args.workdir)
    results = work / "detect.json"
    done: dict = json.loads(results.read_text()) if results.is_file() and (args.resume or args.table) else {}
    for name in [] if args.table else args.corpora:
        if name in done:
            print(f"{name}: already measured (--resume)", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        model_dir, reference, pool, facts = _corpus_setup(name, work, args.reference_rows, args.pool_rows)
        other = pd.concat([_read(OTHER_CORPUS[name], s) for s in ("train", "test")]).reset_index(drop=True)
        cache: dict[str, np.ndarray] = {}
        classes: list[str] = reference.classes
        rows: dict = {}
        windows: dict = {}
        for kind in args.kinds:
            stats = {"windows": 0, "alerted": 0, **{s: 0 for s in SIGNALS}, "adjusted": 0, "est": [], "est_alt": [], "true": [], "seconds": []}
            for w in range(args.windows):
                texts, labels = _window(kind, pool, other, args.window_size, seed=1000 + w)
                missing = sorted({t for t in texts if t not in cache})
                if missing:
                    probs, classes = score(model_dir, missing)
                    cache.update(zip(missing, probs))
                probs = np.stack([cache[t] for t in texts])
                with tempfile.TemporaryDirectory() as tmp:
                    write_prediction_log(model_dir, texts, tmp, probabilities=probs, classes=classes, seed=w)
                    settings = load_monitor_settings(None, ["window.last=all"], log=tmp, output=os.path.join(tmp, "out"))
                    started = time.perf_counter()
                    v = run_monitor(settings, reference=reference).verdict
                    stats["seconds"].append(time.perf_counter() - started)
                    # the estimate alone as the former default computed it, for comparison
                    alt = load_monitor_settings(None, ["window.last=all", *FORMER], log=tmp, output=os.path.join(tmp, "alt"))
                    stats["est_alt"].append(run_monitor(alt, reference=reference).verdict.estimate["metrics"]["accuracy"]["value"])
                fired = {a.check if a.kind == "drift" else "estimate" for a in v.alerts if a.kind != "service"}
                stats["windows"] += 1
                stats["alerted"] += bool(fired)
                for s in SIGNALS:
                    stats[s] += s in fired
                stats.setdefault("fired", []).append(sorted(fired))
                stats["est"].append(v.estimate["metrics"]["accuracy"]["value"])
                stats["adjusted"] += bool(v.estimate["priors_adjusted"])
                if labels is not None:
                    predicted = [classes[i] for i in probs.argmax(axis=1)]
                    stats["true"].append(float(np.mean([p == t for p, t in zip(predicted, labels)])))
                windows[(kind, w)] = (probs, labels)
            rows[kind] = stats
            print(f"{name} {kind}: {stats['alerted']}/{stats['windows']} alerted", file=sys.stderr)
        _save_windows(work / name / WINDOWS, reference, windows, facts)
        ref_acc = float((reference.frame.prediction == reference.frame.target).mean())
        done[name] = {"facts": dict(facts, reference_accuracy=ref_acc, seconds=time.perf_counter() - t0), "kinds": rows}
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(done, indent=1))
    _print_detect(done, args)


WINDOWS = "windows.pkl"


def _save_windows(path: Path, reference: "Reference", windows: dict, facts: dict) -> None:  # noqa: F821
    import pickle

    ref = reference.frame[["target", "prediction", "probabilities"]]
    path.write_bytes(pickle.dumps({"classes": reference.classes, "ref": ref, "windows": windows, "facts": facts, "gate": reference.meta["gate_thresholds"]}))


def estimate_offline(args: argparse.Namespace) -> None:
    """The estimate and the prior-shift test over ``detect``'s cached windows (module text)."""
    import pickle

    from textops.monitoring.config import load_monitor_settings
    from textops.monitoring.drift import is_drifted, noise_level, stat_score
    from textops.monitoring.monitor import check_estimate
    from textops.monitoring.reference import Reference

    settings = load_monitor_settings(None, [])
    d = settings.drift
    work = Path(args.workdir)
    print("| corpus | window kind | prediction signal | prior shift alert | estimate alert | priors re-weighted | MAE (points) | bias (points) |")
    print("|---" * 8 + "|")
    for name in args.corpora:
        path = work / name / WINDOWS
        if not path.is_file():
            print(f"{name}: no {path}; run detect for it first", file=sys.stderr)
            continue
        cached = pickle.loads(path.read_bytes())
        classes = cached["classes"]
        frame = cached["ref"].reset_index(drop=True)
        reference = Reference(frame, classes, frozenset(), {"gate_thresholds": cached["gate"], "run_id": f"bench-{name}"})
        ref_pred = frame["prediction"]
        for kind in args.kinds:
            counts = {"prediction": 0, "prior_shift": 0, "estimate": 0, "adjusted": 0}
            errors = []
            for (k, _), (probs, labels) in sorted(cached["windows"].items(), key=lambda item: item[0][1]):
                if k != kind:
                    continue
                predicted = pd.Series([classes[i] for i in probs.argmax(axis=1)])
                score = stat_score(ref_pred, predicted, d.cat_method, True)
                noise, _ = noise_level(ref_pred, len(predicted), d.cat_method, d.noise_quantile, d.noise_draws, d.seed, True)
                fired = is_drifted(score, d.cat_method, max(d.cat_threshold, noise))
                current = pd.DataFrame({"probabilities": list(probs), "prediction": predicted, "target": labels if labels is not None else [None] * len(probs)})
                result = check_estimate(reference, current, settings, prior_shift=fired, drift_fired=fired)
                counts["prediction"] += fired
                counts["prior_shift"] += any(a.check == "prior_shift" for a in result.alerts)
                counts["estimate"] += any(a.kind == "quality" for a in result.alerts)
                counts["adjusted"] += bool(result.info["priors_adjusted"])
                if labels is not None:
                    errors.append(result.info["versus_labels"]["error"]["accuracy"])
            mae = f"{100 * np.mean(np.abs(errors)):.1f} | {100 * np.mean(errors):+.1f}" if errors else "n/a | n/a"
            print(f"| {name} | {kind} | {counts['prediction']} | {counts['prior_shift']} | {counts['estimate']} | {counts['adjusted']} | {mae} |", flush=True)


def _mae(estimated: list, true: list) -> float:
    """Mean absolute error in points."""
    return 100 * float(np.mean(np.abs(np.array(estimated) - np.array(true))))


def _print_detect(done: dict, args: argparse.Namespace) -> None:
    print(f"\nwindows of {args.window_size} logged predictions, {args.windows} per kind; default monitor settings; "
          "estimate held to the gate's default thresholds")
    print("\n| corpus | train / reference / pool | classes | reference accuracy | window kind | alerted | text | prediction "
          "| confidence | dataset | prior shift | estimate | priors re-weighted | est. accuracy | true accuracy | MAE (points) | MAE former default |")
    print("|---" * 17 + "|")
    for name, res in done.items():
        f = res["facts"]
        for kind, s in res["kinds"].items():
            n = s["windows"]
            est = np.mean(s["est"]) if s["est"] else float("nan")
            true, mae, mae_top = "n/a", "n/a", "n/a"
            if s["true"]:
                true = f"{np.mean(s['true']):.3f}"
                mae = f"{_mae(s['est'], s['true']):.1f}"
                mae_top = f"{_mae(s['est_alt'], s['true']):.1f}" if s.get("est_alt") else "n/a"
            print(
                f"| {name} | {f['train']} / {f['reference']} / {f['pool']} | {f['classes']} | {f['reference_accuracy']:.3f} | {kind} "
                f"| {100 * s['alerted'] / n:.0f}% | " + " | ".join(str(s.get(x, "n/a")) for x in SIGNALS)
                + f" | {s.get('adjusted', 'n/a')} | {est:.3f} | {true} | {mae} | {mae_top} |"
            )
    print("\nalerted share per window kind (label-free accuracy estimate: mean absolute error in points; the former default's)\n")
    print("| corpus (classes) | " + " | ".join(KINDS) + " |")
    print("|---" * (len(KINDS) + 1) + "|")
    for name, res in done.items():
        cells = []
        for kind in KINDS:
            s = res["kinds"].get(kind)
            if s is None:  # not measured (--kinds)
                cells.append("n/a")
                continue
            cell = f"{100 * s['alerted'] / s['windows']:.0f}%"
            if s["true"]:
                cell += f" ({_mae(s['est'], s['true']):.1f}"
                cell += f"; {_mae(s['est_alt'], s['true']):.1f})" if s.get("est_alt") else ")"
            cells.append(cell)
        print(f"| {name} ({res['facts']['classes']}) | " + " | ".join(cells) + " |")
    secs = [x for r in done.values() for s in r["kinds"].values() for x in s["seconds"]]
    if secs:
        print(f"\nrun_monitor per window: median {np.median(secs):.1f} s, max {np.max(secs):.1f} s (cpu cores: {os.cpu_count()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_cost = sub.add_parser("cost", help="time and peak memory for logs of 10k and 100k predictions")
    p_cost.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p_shift = sub.add_parser("shift", help="false alarms and detections over windows with different seeds")
    p_shift.add_argument("--windows", type=int, default=20)
    p_shift.add_argument("--window-size", type=int, default=500)
    p_detect = sub.add_parser("detect", help="alert policy and label-free estimate on every shared corpus, five window kinds")
    p_detect.add_argument("--corpora", nargs="+", default=list(OTHER_CORPUS), choices=list(OTHER_CORPUS))
    p_detect.add_argument("--windows", type=int, default=20)
    p_detect.add_argument("--window-size", type=int, default=500)
    p_detect.add_argument("--reference-rows", type=int, default=2000)
    p_detect.add_argument("--pool-rows", type=int, default=2500)
    p_detect.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p_detect.add_argument("--resume", action="store_true", help="keep corpora already in <workdir>/detect.json")
    p_detect.add_argument("--table", action="store_true", help="only print the table of <workdir>/detect.json")
    p_est = sub.add_parser("estimate", help="offline: the label-free estimate over detect's cached window probabilities")
    p_est.add_argument("--corpora", nargs="+", default=list(OTHER_CORPUS), choices=list(OTHER_CORPUS))
    p_est.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    for p in (p_cost, p_shift, p_detect, p_est):
        p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "textops-monitoring-bench"))
    p_once = sub.add_parser("_once")
    p_once.add_argument("--reference", required=True)
    p_once.add_argument("--log", required=True)
    p_once.add_argument("--output", required=True)
    args = parser.parse_args()
    if args.command != "_once" and not DATASETS.is_dir():
        sys.exit(f"the datasets are not at {DATASETS}; this benchmark reads ../shared/datasets")
    {"cost": cost, "shift": shift, "detect": detect, "estimate": estimate_offline, "_once": _run_once}[args.command](args)


if __name__ == "__main__":
    main()
