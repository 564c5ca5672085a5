"""`textops run` rejects bad input before importing TensorFlow/TFX/Beam, and creates nothing.

Each case runs the real CLI in a fresh interpreter (a small harness around ``textops.cli.main``)
and reads back its exit code, its stderr and which heavy modules the process had imported.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.data import write_csv

HEAVY = ("tensorflow", "tfx", "apache_beam", "tensorflow_transform", "tensorflow_data_validation")
HARNESS = f"""
import json, sys
from textops.cli import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print("HARNESS " + json.dumps({{"exit": code, "heavy": heavy}}), file=sys.stderr)
"""
GOOD = [("good movie", "pos"), ("bad movie", "neg"), ("fine film", "pos")]


def run_cli(*args: str, prefix: tuple[str, ...] = ()) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", HARNESS, *args], capture_output=True, text=True, timeout=120
    )
    lines = proc.stderr.splitlines()
    marker = [line for line in lines if line.startswith("HARNESS ")]
    assert marker, f"the harness did not finish:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(marker[-1][len("HARNESS "):])
    message = "\n".join(line for line in lines if not line.startswith("HARNESS "))
    return result["exit"], result["heavy"], message


def _csv_bytes(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


CASES = {
    "missing path": (lambda d: d / "nope", ["does not exist"]),
    "empty csv": (lambda d: _csv_bytes(d / "e.csv", b""), ["e.csv is empty"]),
    "header only": (lambda d: write_csv(d / "h.csv", []), ["h.csv has a header but no rows"]),
    "not utf-8": (
        lambda d: _csv_bytes(d / "l.csv", "text,label\nok,a\ncaf\xe9,b\n".encode("latin-1")),
        ["l.csv is not UTF-8", "line 3", "0xe9"],
    ),
    "no label column": (
        lambda d: write_csv(d / "c.csv", GOOD, header=("text", "category")),
        ["'label' not in the header", "data.label_column"],
    ),
    "unbalanced quotes mid-file": (
        lambda d: _csv_bytes(d / "q.csv", b'text,label\nfine,a\n"broken quote,b\nmore,a\nrest,b\n'),
        ["q.csv: line 3", "never closes"],
    ),
    "mixed line endings": (
        lambda d: _csv_bytes(d / "m.csv", b"text,label\r\nfine,a\r\nold\rmac,b\nok,a\n"),
        ["m.csv: line 3", "carriage return", "dos2unix"],
    ),
    "old mac line endings": (
        lambda d: _csv_bytes(d / "r.csv", b"text,label\rfine,a\rok,b\r"),
        ["r.csv: line 1", "carriage return"],
    ),
    "too many fields": (
        lambda d: _csv_bytes(d / "f.csv", b"text,label\nfine,a\nhello, world,b\nok,b\n"),
        ["f.csv: line 3", "3 field(s) but the header has 2"],
    ),
    "one class": (lambda d: write_csv(d / "one.csv", [("a", "x"), ("b", "x")]), ["1 distinct value", "at least 2"]),
    "empty label": (
        lambda d: _csv_bytes(d / "el.csv", b"text,label\nfine,a\nno class,\nok,b\nblank,  \n"),
        ["el.csv: line 3: the label ('label') is empty", "el.csv: line 5", "fill it in, or drop the row"],
    ),
    "label column named twice": (
        lambda d: _csv_bytes(d / "d.csv", b"text,label,label\nfine,a,b\nok,b,a\n"),
        ["the header names 'label' more than once"],
    ),
    "utf-16 file": (
        lambda d: _csv_bytes(d / "u.csv", "text,label\nfine,a\nok,b\n".encode("utf-16")),
        ["u.csv is UTF-16 text, not UTF-8", "iconv -f UTF-16 -t UTF-8"],
    ),
    "gzip file named .csv": (
        lambda d: _csv_bytes(d / "z.csv", gzip.compress(b"text,label\nfine,a\nok,b\n")),
        ["z.csv is gzip-compressed"],
    ),
    "a class spelled with and without spaces": (
        lambda d: _csv_bytes(d / "s.csv", b"text,label\nfine,pos\nalso fine, pos\nbad,neg\n"),
        ["spells 1 class(es) in more than one way", "' pos' and 'pos'"],
    ),
    "a class in two Unicode forms": (
        lambda d: _csv_bytes(d / "nfd.csv", "text,label\nfine,caf\u00e9\nalso fine,cafe\u0301\nbad,tea\n".encode("utf-8")),
        ["spells 1 class(es) in more than one way", "normalise the labels to NFC"],
    ),
    "a text longer than the CSV reader takes": (
        lambda d: _csv_bytes(d / "long.csv", b"text,label\nfine,a\n" + b"x" * 140_000 + b",b\n"),
        ["long.csv: line 3: a field longer than 131,072 characters", "JSON Lines or Parquet"],
    ),
    "eval class the training data lacks": (
        lambda d: (
            write_csv(d / "u" / "train.csv", GOOD),
            write_csv(d / "u" / "test.csv", [("ok film", "pos"), ("so so", "meh"), ("meh film", "meh")]),
        )[0].parent,
        ["test.csv: 2 of 3 rows have a class the training data lacks ('meh')", "add training examples"],
    ),
    "labels written as floats": (
        lambda d: _csv_bytes(d / "fl.csv", b"text,label\nfine,1.0\nbad,0.0\nok,1\n"),
        ["fl.csv: the label column 'label' holds floating-point values (e.g. '1.0')", "integers"],
    ),
    "a text column of numbers": (
        lambda d: _csv_bytes(d / "n.csv", b"id,text,label\n1,17,a\n2,4.5,b\n3,,a\n"),
        ["n.csv: the text column 'text' holds only numbers (e.g. '4.5')", "data.text_column"],
    ),
    "files of one split with different headers": (
        lambda d: (
            write_csv(d / "h" / "a.csv", GOOD),
            write_csv(d / "h" / "b.csv", [(l, t) for t, l in GOOD], header=("label", "text")),
        )[0].parent,
        ["b.csv has the header ['label', 'text'] but", "a.csv has ['text', 'label']", "one header"],
    ),
    "bad eval file of a given split": (
        lambda d: (write_csv(d / "split" / "train.csv", GOOD), _csv_bytes(d / "split" / "test.csv", b""))[0].parent,
        ["test.csv is empty"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_before_tensorflow_and_creates_nothing(tmp_path: Path, case: str):
    make, fragments = CASES[case]
    data = make(tmp_path)
    out = tmp_path / "out"
    code, heavy, message = run_cli("run", "--data", str(data), "--output", str(out))
    assert code == 3, message
    for fragment in fragments:
        assert fragment in message
    assert "nothing was trained or pushed" in message
    assert "Traceback" not in message
    assert heavy == [], f"imported {heavy} before rejecting the input"
    assert not out.exists(), f"a run that could not start created {sorted(p.name for p in out.iterdir())}"


def test_max_classes_is_refused_naming_the_count(tmp_path: Path):
    rows = [(f"text {i}", f"class{i % 7}") for i in range(30)]
    data = write_csv(tmp_path / "many.csv", rows)
    out = tmp_path / "out"
    code, heavy, message = run_cli("run", "--data", str(data), "--output", str(out), "--set", "data.max_classes=6")
    assert code == 3 and heavy == [] and not out.exists()
    assert "has 7 distinct classes, more than data.max_classes (6)" in message


def test_max_classes_counts_the_training_files_only(tmp_path: Path):
    from textops.data import check_input
    from textops.errors import DataValidationError
    from textops.settings import DataSettings

    write_csv(tmp_path / "train.csv", [("a", "x"), ("b", "y"), ("c", "x")])
    write_csv(tmp_path / "test.csv", [("a", "x"), ("b", "y"), ("c", "y")])
    check_input(str(tmp_path), DataSettings(max_classes=2))  # 2 training classes: accepted
    write_csv(tmp_path / "train.csv", [("a", "x"), ("b", "y"), ("c", "z")])
    with pytest.raises(DataValidationError, match="3 distinct classes"):
        check_input(str(tmp_path), DataSettings(max_classes=2))
    # A test class that training lacks is its own error, not a class count.
    write_csv(tmp_path / "train.csv", [("a", "x"), ("b", "y"), ("c", "x")])
    write_csv(tmp_path / "test.csv", [("a", "x"), ("b", "y"), ("c", "z")])
    with pytest.raises(DataValidationError, match=r"1 of 3 rows have a class the training data lacks \('z'\)"):
        check_input(str(tmp_path), DataSettings(max_classes=2))


def test_quoted_multiline_fields_and_crlf_are_accepted(tmp_path: Path):
    from textops.data import check_input
    from textops.settings import DataSettings

    _csv_bytes(tmp_path / "ok.csv", b'text,label\r\n"two\nlines, and a comma",a\r\n"say ""hi""\r\nthere",b\r\nplain,a\r\n')
    source = check_input(str(tmp_path / "ok.csv"), DataSettings())
    assert source.files == (str(tmp_path / "ok.csv"),)


def test_several_bad_records_are_listed_then_counted(tmp_path: Path):
    from textops.data import MAX_PROBLEMS_PER_FILE, check_input
    from textops.errors import DataValidationError
    from textops.settings import DataSettings

    bad = b"".join(b"x,y,z\n" for _ in range(MAX_PROBLEMS_PER_FILE + 3))
    _csv_bytes(tmp_path / "b.csv", b"text,label\nok,a\n" + bad)
    with pytest.raises(DataValidationError) as err:
        check_input(str(tmp_path / "b.csv"), DataSettings())
    assert len(err.value.problems) == MAX_PROBLEMS_PER_FILE + 1
    assert "line 3:" in err.value.problems[0] and "3 more malformed record(s)" in err.value.problems[-1]


def test_output_that_is_a_file_is_a_usage_error(tmp_path: Path):
    data = write_csv(tmp_path / "d.csv", GOOD)
    (tmp_path / "taken").write_text("x")
    code, heavy, message = run_cli("run", "--data", str(data), "--output", str(tmp_path / "taken" / "run"))
    assert code == 2 and heavy == []
    assert "is a file" in message and "Traceback" not in message


def test_unwritable_output_is_a_usage_error_and_nothing_is_created():
    # Permission bits do not bind root: as root, run the CLI without the capabilities that
    # bypass them (setpriv), so the read-only directory is read-only for it too.
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop CAP_DAC_OVERRIDE")
        prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")
    base = Path(tempfile.mkdtemp(prefix="textops-readonly-"))
    try:
        data = write_csv(base / "d.csv", GOOD)
        readonly = base / "readonly"
        readonly.mkdir()
        readonly.chmod(0o555)
        for output in (readonly, readonly / "run"):
            code, heavy, message = run_cli("run", "--data", str(data), "--output", str(output), prefix=prefix)
            assert code == 2, message
            assert "cannot write in" in message and str(readonly) in message and "Traceback" not in message
            assert heavy == []
            assert list(readonly.iterdir()) == []
    finally:
        (base / "readonly").chmod(0o755)
        shutil.rmtree(base)
