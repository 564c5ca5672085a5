"""The whole TFX pipeline under LocalDagRunner on tiny generated data (minutes, marked e2e)."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.data import read_csv, write_csv
from tests.e2e.conftest import summary, textops_cli
from textops import model_repository

pytestmark = pytest.mark.e2e

FAST = ["--set", "training.epochs=3"]
TRAINING_COMPONENTS = {"Transform", "Trainer", "Evaluator", "InfraValidator", "Pusher"}


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def first_run(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = textops_cli("run", "--data", str(demo_dir), "--output", str(out), *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


def test_first_run_is_blessed_and_pushed_with_progress_and_summary(first_run):
    out, proc = first_run
    s = summary(out)
    assert s["status"] == "pushed" and s["blessed"] is True and s["exit_code"] == 0
    names = [c["name"] for c in s["components"]]
    assert names == [
        "CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Evaluator",
        "InfraValidator", "Pusher",
    ]
    assert all(c["state"] == "complete" for c in s["components"])
    for name in names:  # per-component progress with elapsed time on the console
        assert f"{name} done in" in proc.stdout
    assert s["data"]["train_examples"] == 600 and s["data"]["eval_examples"] == 200
    assert s["metrics"]["accuracy"]["value"] > 0.8
    # Two files, early stopping on (the default): the Trainer evaluated on a hold-out of train, not on test.
    assert s["training"]["eval_splits"] == ["train-holdout"] and 1 <= s["training"]["kept_epoch"] <= 3
    assert set(s["per_class"]) == {"billing", "technical", "shipping", "account"}
    version = model_repository.latest_version(str(out / "model_repository"), "text_classifier")
    assert version is not None and s["pushed"]["version"] == version.version
    assert s["baseline"] is None  # nothing in service before the first push
    assert "BLESSED and pushed" in proc.stdout
    # Infra validation stamped TF Serving warmup records into the pushed version.
    assert (Path(version.path) / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0
    # The model-analysis page was written after the evaluation.
    assert Path(s["analysis_report"]).is_file() and "model-analysis report" in proc.stdout


def test_pushed_model_serves_what_the_evaluator_scored_in_a_fresh_process(first_run, demo_dir):
    """Plain tf.saved_model.load, no project import: predictions on raw strings reproduce the
    Evaluator's metrics exactly (same 200 eval texts, argmax decisions)."""
    out, _ = first_run
    s = summary(out)
    rows = read_csv(demo_dir / "test.csv")
    code = (
        "import json, sys, tensorflow as tf\n"
        "texts, path = json.loads(sys.argv[1]), sys.argv[2]\n"
        "f = tf.saved_model.load(path).signatures['serving_default']\n"
        "print(json.dumps([l.decode() for l in f(text=tf.constant(texts))['label'].numpy()]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps([r["text"] for r in rows]), s["pushed"]["path"]],
        capture_output=True, text=True, timeout=300, check=True,
    )
    predicted = json.loads(proc.stdout.strip().splitlines()[-1])
    truth = [r["label"] for r in rows]
    accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
    assert accuracy == pytest.approx(s["metrics"]["accuracy"]["value"], abs=1e-9)
    for cls, row in s["per_class"].items():
        tp = sum(p == t == cls for p, t in zip(predicted, truth))
        assert row["recall"] == pytest.approx(tp / truth.count(cls), abs=1e-9)
        assert row["precision"] == pytest.approx(tp / max(predicted.count(cls), 1), abs=1e-9)


def test_tfjob_worker_entrypoint_trains_from_the_pipeline_transform_outputs(first_run, tmp_path):
    """The TFJob worker (components/tfjob_train.py) on this run's Transform outputs, one process."""
    out, _ = first_run
    transform = out / "pipeline_root" / "Transform"
    examples = next((transform / "transformed_examples").iterdir())
    graph = next((transform / "transform_graph").iterdir())
    proc = subprocess.run(
        [
            sys.executable, "-m", "textops.components.tfjob_train",
            "--transformed-examples", str(examples), "--transform-graph", str(graph),
            "--serving-model-dir", str(tmp_path / "model"), "--model-run-dir", str(tmp_path / "run"),
            "--strategy", "one_device", "--set", "training.epochs=2",
        ],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import tensorflow as tf

    out_ = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"](text=tf.constant(["the box arrived damaged"]))
    assert out_["label"].numpy()[0].decode() == "shipping"
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["history"]["loss"]) == 2


def test_rerun_with_unchanged_inputs_is_served_from_cache(first_run, demo_dir):
    out, _ = first_run
    first = summary(out)
    proc = textops_cli("run", "--data", str(demo_dir), "--output", str(out), *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = summary(out)
    states = {c["name"]: c["state"] for c in s["components"]}
    assert all(states[n] == "cached" for n in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer"))
    # The model in service changed since the first run (it was pushed), so the gate re-evaluates;
    # the candidate *is* that model, so nothing new is pushed.
    assert s["pushed"]["already_in_service"] is True and s["pushed"]["version"] == first["pushed"]["version"]
    assert s["baseline"]["version"] == first["pushed"]["version"]
    assert len(model_repository.list_versions(str(out / "model_repository"), "text_classifier")) == 1


def test_impossible_threshold_is_not_blessed_and_leaves_the_model_in_service(first_run, demo_dir):
    out, _ = first_run
    repo = out / "model_repository" / "text_classifier"
    before = _tree_digest(repo)
    proc = textops_cli(
        "run", "--data", str(demo_dir), "--output", str(out), *FAST, "--set", "evaluation.thresholds.accuracy=0.9999"
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    s = summary(out)
    assert s["status"] == "not_blessed" and s["blessed"] is False and s["pushed"] is None
    assert any(r.startswith("accuracy ") and "below its threshold 0.9999" in r for r in s["reasons"])
    assert "NOT BLESSED" in proc.stdout and "below its threshold" in proc.stdout
    assert _tree_digest(repo) == before


def test_label_shuffled_training_data_is_not_blessed(first_run, demo_dir, tmp_path):
    out, _ = first_run
    rows = read_csv(demo_dir / "train.csv")
    labels = [r["label"] for r in rows]
    random.Random(0).shuffle(labels)
    data = tmp_path / "shuffled"
    write_csv(data / "train.csv", [(r["text"], y) for r, y in zip(rows, labels)])
    write_csv(data / "test.csv", [(r["text"], r["label"]) for r in read_csv(demo_dir / "test.csv")])
    repo = out / "model_repository" / "text_classifier"
    before = _tree_digest(repo)
    proc = textops_cli("run", "--data", str(data), "--output", str(out), *FAST)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    s = summary(out)
    failing = {r.split()[0] for r in s["reasons"]}
    assert {"accuracy", "f1"} <= failing
    assert s["metrics"]["accuracy"]["value"] < 0.5
    assert _tree_digest(repo) == before


def _write_tfrecord(path, rows) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as w:
        for text, label in rows:
            feature = {
                "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()])),
            }
            w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_label_unseen_in_training_stops_before_transform(demo_dir, tmp_path):
    # TFRecords: the preflight refuses this in a CSV (tests/unit/test_fail_fast.py); here the
    # ExampleValidator gate, which also guards data no preflight reads, must stop it.
    data = tmp_path / "unseen"
    data.mkdir()
    _write_tfrecord(data / "train.tfrecord", [(r["text"], r["label"]) for r in read_csv(demo_dir / "train.csv")])
    test_rows = [(r["text"], r["label"]) for r in read_csv(demo_dir / "test.csv")]
    test_rows[:5] = [(t, "refunds") for t, _ in test_rows[:5]]
    _write_tfrecord(data / "test.tfrecord", test_rows)
    out = tmp_path / "out"
    proc = textops_cli("run", "--data", str(data), "--output", str(out))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    s = summary(out)
    assert s["status"] == "data_invalid"
    assert any("column 'label'" in p and "refunds" in p for p in s["problems"]), s["problems"]
    assert not TRAINING_COMPONENTS & {c["name"] for c in s["components"]}
    assert model_repository.list_versions(str(out / "model_repository"), "text_classifier") == []
    assert "DATA REJECTED" in proc.stdout


@pytest.mark.parametrize(
    "text_feature, labels, flags, fragment",
    [
        ("body", 2, (), "text column 'text' is missing"),
        # no preflight counts the labels of TFRecords (nor of remote files): the gate does
        ("text", 3, ("--set", "data.max_classes=2"), "3 distinct classes, more than data.max_classes (2)"),
    ],
)
def test_tfrecord_data_the_preflight_cannot_read_is_rejected_by_the_gate(tmp_path, text_feature, labels, flags, fragment):
    import tensorflow as tf

    data = tmp_path / "records"
    data.mkdir()
    with tf.io.TFRecordWriter(str(data / "data.tfrecord")) as w:
        for i in range(60):
            ex = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        text_feature: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"text {i}".encode()])),
                        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"abc"[i % labels : i % labels + 1]])),
                    }
                )
            )
            w.write(ex.SerializeToString())
    out = tmp_path / "out"
    proc = textops_cli("run", "--data", str(data), "--output", str(out), *flags)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    problems = summary(out)["problems"]
    assert any(fragment in p for p in problems), problems
    if text_feature == "body":
        assert any("body, label" in p for p in problems), problems


def test_an_empty_label_the_preflight_cannot_see_is_rejected_by_the_gate(tmp_path):
    # A label feature present with no value (what CsvExampleGen makes of an empty field): TFDV does
    # not count it as missing; it reached the Trainer and crashed it ("label value of -1").
    import tensorflow as tf

    data = tmp_path / "records"
    data.mkdir()
    with tf.io.TFRecordWriter(str(data / "data.tfrecord")) as w:
        for i in range(60):
            label = [] if i == 7 else [b"ab"[i % 2 : i % 2 + 1]]
            feature = {
                "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"text {i}".encode()])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=label)),
            }
            w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    out = tmp_path / "out"
    proc = textops_cli("run", "--data", str(data), "--output", str(out))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    problems = summary(out)["problems"]
    assert any("1 of" in p and "empty or missing label ('label')" in p for p in problems), problems


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "is empty"),
        ("text,label\nok,a\ncaf\xe9,b\n".encode("latin-1"), "is not UTF-8"),
        (b"message,label\nhello,a\n", "not in the header"),
    ],
)
def test_bad_files_are_rejected_before_the_pipeline_starts(tmp_path, content, fragment):
    (tmp_path / "data.csv").write_bytes(content)
    out = tmp_path / "out"
    proc = textops_cli("run", "--data", str(tmp_path / "data.csv"), "--output", str(out))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert fragment in proc.stderr and "nothing was trained or pushed" in proc.stderr
    assert not (out / "pipeline_root").exists()


def test_bad_settings_are_a_usage_error(tmp_path, demo_dir):
    proc = textops_cli("run", "--data", str(demo_dir), "--output", str(tmp_path), "--set", "training.epochz=2")
    assert proc.returncode == 2
    assert "training.epochz: unknown setting" in proc.stderr


def test_three_files_train_on_validation_and_gate_on_test(tmp_path):
    """train.csv + validation.csv + test.csv: the Trainer's history is on validation, the gate on
    test, and nothing of the test split reaches training (vocabularies are built on train)."""
    from textops.pipelines.demo_data import generate

    data = generate(tmp_path / "data", train_rows=600, test_rows=300, seed=4)
    rows = read_csv(data / "test.csv")
    marker = "zqxjtestonly"
    write_csv(data / "validation.csv", [(r["text"], r["label"]) for r in rows[:100]])
    write_csv(data / "test.csv", [(f"{r['text']} {marker}", r["label"]) for r in rows[100:]])
    out = tmp_path / "run"
    proc = textops_cli("run", "--data", str(data), "--output", str(out), *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = summary(out)
    assert (result["data"]["train_examples"], result["data"]["validation_examples"], result["data"]["eval_examples"]) == (600, 100, 200)
    assert "validation" in result["data"]["split"]
    assert result["training"]["eval_splits"] == ["validation"] and result["training"]["last_epoch"]["accuracy"] > 0.5
    assert sum(int(row["support"]) for row in result["per_class"].values()) == 200  # the gate scored test
    assert "on the validation split" in proc.stdout and "training never saw" in proc.stdout
    assets = [p for p in (out / "pipeline_root" / "Transform").rglob("*") if p.is_file() and "assets" in p.parts]
    assert assets and not any(marker in p.read_text(errors="ignore") for p in assets)


@pytest.mark.parametrize("fmt", ["jsonl", pytest.param("parquet", marks=pytest.mark.slow)])
def test_the_same_data_as_json_lines_or_parquet_gives_the_same_splits_and_metrics(demo_dir, tmp_path, fmt):
    from tests.unit.test_formats import write_jsonl, write_parquet

    data = tmp_path / "data"
    for split in ("train", "test"):
        rows = [(r["text"], r["label"]) for r in read_csv(demo_dir / f"{split}.csv")]
        if fmt == "jsonl":
            write_jsonl(data / f"{split}.jsonl.gz", rows, gz=True)
        else:
            write_parquet(data / f"{split}.parquet", rows, row_group_size=128)
    out, csv_out = tmp_path / "run", tmp_path / "csv-run"
    proc = textops_cli("run", "--data", str(data), "--output", str(out), *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The CSV run of the same files, in its own output (first_run's output is reused by other tests).
    proc = textops_cli("run", "--data", str(demo_dir), "--output", str(csv_out), *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    csv_run, this_run = summary(csv_out), summary(out)
    assert this_run["data"]["format"] == fmt
    for key in ("train_examples", "eval_examples"):
        assert this_run["data"][key] == csv_run["data"][key], key
    metrics = {m: r["value"] for m, r in this_run["metrics"].items()}
    assert metrics == pytest.approx({m: r["value"] for m, r in csv_run["metrics"].items()}, abs=1e-4)


def test_integer_labels_with_label_names_serve_names(demo_dir, tmp_path):
    import tensorflow as tf

    from textops.pipelines.demo_data import CLASSES

    data = tmp_path / "data"
    for split in ("train", "test"):
        rows = [(r["text"], str(CLASSES.index(r["label"]))) for r in read_csv(demo_dir / f"{split}.csv")]
        write_csv(data / f"{split}.csv", rows)
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(CLASSES) + "\n")
    out = tmp_path / "run"
    proc = textops_cli("run", "--data", str(data), "--output", str(out), *FAST, "--set", f"data.label_names={names}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = summary(out)
    assert set(result["per_class"]) == set(CLASSES)  # the gate's per-class table uses names
    (version,) = model_repository.list_versions(str(out / "model_repository"), "text_classifier")
    served = tf.saved_model.load(version.path).signatures["serving_default"]
    answer = served(text=tf.constant(["I was charged twice for my subscription", "my package has not arrived yet"]))
    assert [v.decode() for v in answer["label"].numpy()] == ["billing", "shipping"]
    assert sorted(v.decode() for v in answer["classes"].numpy()[0]) == sorted(CLASSES)
    # A label the names do not cover is refused before the pipeline starts.
    write_csv(data / "train.csv", [("hello", "7"), ("bye", "1")])
    proc = textops_cli("run", "--data", str(data), "--output", str(tmp_path / "bad"), "--set", f"data.label_names={names}")
    assert proc.returncode == 3 and "data.label_names maps only the integers 0..3 (4 names)" in proc.stdout + proc.stderr
