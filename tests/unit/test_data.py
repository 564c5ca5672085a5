from pathlib import Path

import pytest

from tests.conftest import write_csv
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
        (lambda d: None, "holds no .csv or .tfrecord"),
        (lambda d: (write_csv(d / "a.csv", ROWS), (d / "b.tfrecord").write_bytes(b"x")), "mixes CSV and TFRecord"),
        (
            lambda d: (write_csv(d / "train.csv", ROWS), write_csv(d / "test.csv", ROWS), write_csv(d / "eval.csv", ROWS)),
            "several evaluation files",
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
