from pathlib import Path

import pytest

from tests.support.data import write_csv
from textops.data import discover, preflight
from textops.errors import DataValidationError
from textops.settings import DataSettings

ROWS = [("good movie", "pos"), ("bad movie", "neg")]


def test_directory_with_train_and_test_keeps_the_given_split(tmp_path: Path):
    write_csv(tmp_path / "train.csv", ROWS)
    write_csv(tmp_path / "test.csv", ROWS)
    src = discover(str(tmp_path), DataSettings())
    assert src.has_given_split and src.format == "csv"
    assert (src.train_pattern, src.eval_pattern) == ("train.csv", "test.csv")
    preflight(src, DataSettings())


def test_single_file_and_plain_directory_are_hash_split(tmp_path: Path):
    f = write_csv(tmp_path / "all.csv", ROWS)
    src = discover(str(f), DataSettings())
    assert not src.has_given_split and src.single_pattern == "all.csv"
    assert src.input_base == str(tmp_path)
    write_csv(tmp_path / "more.csv", ROWS)
    src = discover(str(tmp_path), DataSettings())
    assert src.single_pattern == "*.csv" and len(src.files) == 2


def test_tfrecord_directory(tmp_path: Path):
    (tmp_path / "data.tfrecord.gz").write_bytes(b"x" * 20)
    src = discover(str(tmp_path), DataSettings())
    assert src.format == "tfrecord"


@pytest.mark.parametrize(
    "setup, fragment",
    [
        (lambda d: None, r"holds no .csv, .jsonl\[.gz\], .parquet or .tfrecord\[.gz\] files"),
        (lambda d: (write_csv(d / "a.csv", ROWS), (d / "b.tfrecord").write_bytes(b"x")), r"mixes formats \(csv, tfrecord\)"),
        (
            lambda d: (write_csv(d / "train.csv", ROWS), write_csv(d / "test.csv", ROWS), write_csv(d / "eval.csv", ROWS)),
            r"evaluation files eval.csv, test.csv; keep one test file \(test or eval\) and at most one validation file",
        ),
        (
            lambda d: (write_csv(d / "train.csv", ROWS), write_csv(d / "dev.csv", ROWS), write_csv(d / "validation.csv", ROWS)),
            "keep one test file",
        ),
        (
            lambda d: [write_csv(d / f"{n}.csv", ROWS) for n in ("train", "dev", "validation", "test")],
            "keep one test file",
        ),
    ],
)
def test_discovery_errors(tmp_path: Path, setup, fragment):
    setup(tmp_path)
    with pytest.raises(DataValidationError, match=fragment):
        discover(str(tmp_path), DataSettings())


def test_missing_path(tmp_path: Path):
    with pytest.raises(DataValidationError, match="does not exist"):
        discover(str(tmp_path / "nope"), DataSettings())


def _problems(path: Path, settings: DataSettings = DataSettings()) -> str:
    with pytest.raises(DataValidationError) as err:
        preflight(discover(str(path), settings), settings)
    assert "nothing was trained or pushed" in str(err.value)
    return str(err.value)


def test_empty_file(tmp_path: Path):
    (tmp_path / "d.csv").write_bytes(b"")
    assert "is empty" in _problems(tmp_path / "d.csv")


def test_header_only(tmp_path: Path):
    write_csv(tmp_path / "d.csv", [])
    assert "has a header but no rows" in _problems(tmp_path / "d.csv")


def test_non_utf8_names_the_line(tmp_path: Path):
    (tmp_path / "d.csv").write_bytes("text,label\nok,a\ncaf\xe9,b\n".encode("latin-1"))
    msg = _problems(tmp_path / "d.csv")
    assert "is not UTF-8" in msg and "line 3" in msg and "0xe9" in msg


def test_missing_column_names_the_header_and_the_setting(tmp_path: Path):
    write_csv(tmp_path / "d.csv", ROWS, header=("message", "label"))
    msg = _problems(tmp_path / "d.csv")
    assert "'text'" in msg and "['message', 'label']" in msg and "data.text_column" in msg
    preflight(discover(str(tmp_path / "d.csv"), DataSettings(text_column="message")), DataSettings(text_column="message"))


def test_byte_order_mark(tmp_path: Path):
    (tmp_path / "d.csv").write_bytes("\ufefftext,label\nhi,a\n".encode("utf-8"))
    assert "byte-order mark" in _problems(tmp_path / "d.csv")


@pytest.mark.parametrize("validation, test", [("validation", "test"), ("dev", "test"), ("valid", "eval"), ("val", "test")])
def test_train_validation_and_test_files_are_three_splits(tmp_path: Path, validation, test):
    from textops.data import has_validation_split, training_eval_split

    for name in ("train", validation, test):
        write_csv(tmp_path / f"{name}.csv", ROWS)
    src = discover(str(tmp_path), DataSettings())
    assert (src.train_pattern, src.validation_pattern, src.eval_pattern) == ("train.csv", f"{validation}.csv", f"{test}.csv")
    assert [Path(f).name for f in src.files] == ["train.csv", f"{validation}.csv", f"{test}.csv"]  # the test file last
    assert has_validation_split(src, DataSettings()) and training_eval_split(src, DataSettings()) == "validation"


@pytest.mark.parametrize("other", ["test", "validation", "dev"])
def test_two_files_stay_two_splits_whatever_the_second_is_called(tmp_path: Path, other):
    from textops.data import training_eval_split

    write_csv(tmp_path / "train.csv", ROWS)
    write_csv(tmp_path / f"{other}.csv", ROWS)
    src = discover(str(tmp_path), DataSettings())
    assert src.eval_pattern == f"{other}.csv" and src.validation_pattern is None
    assert training_eval_split(src, DataSettings()) == "eval"


def test_hash_split_makes_a_validation_split_with_validation_buckets(tmp_path: Path):
    from textops.data import training_eval_split

    write_csv(tmp_path / "all.csv", ROWS)
    src = discover(str(tmp_path), DataSettings())
    assert training_eval_split(src, DataSettings()) == "eval"
    assert training_eval_split(src, DataSettings(validation_buckets=1)) == "validation"


def test_spans_with_validation_files(tmp_path: Path):
    for span in (1, 2):
        for name in ("train", "validation", "test"):
            write_csv(tmp_path / f"span-{span}" / f"{name}.csv", ROWS)
    one = discover(str(tmp_path), DataSettings(spans={"window": 1}))
    assert one.validation_pattern == "span-{SPAN}/validation.csv" and one.eval_pattern == "span-{SPAN}/test.csv"
    two = discover(str(tmp_path), DataSettings(), staging_dir=str(tmp_path / "staged"))
    assert two.validation_pattern == "span-{SPAN}/validation/*"
    assert (tmp_path / "staged" / "span-2" / "validation" / "validation.csv").is_file()
    assert [Path(f).parent.name for f in two.files] == ["train", "train", "validation", "eval"]
