"""How `read_table` (every command reading a table) treats encodings, repeated column names and a first
line that is data: UTF-16/32 files with a byte-order mark are read, ones without are named with the
`--encoding` to pass; repeated names are reported by name and position and refused where they are used;
a header of numbers gets a warning suggesting `--no-header --names`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfit.cli import main
from deepfit.cli.base import CLIError, Console, read_table
from deepfit.cli.textfile import choose_encoding, dedupe_names, wide_encoding_without_bom
from helpers import usage_error_line

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "name;city;age\nJosé;Zürich;30\nAnaïs;Orléans;41\n"


# ---- encodings ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("codec, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                        ("utf-32-le", b"\xff\xfe\x00\x00"), ("utf-32-be", b"\x00\x00\xfe\xff"),
                                        ("utf-8", b"\xef\xbb\xbf")])
def test_a_byte_order_mark_is_read_in_its_encoding(tmp_path, codec, bom):
    p = tmp_path / "t.csv"
    p.write_bytes(bom + TEXT.encode(codec))
    df = read_table(p)
    assert df.columns.tolist() == ["name", "city", "age"]
    assert df["city"].tolist() == ["Zürich", "Orléans"] and df["age"].tolist() == [30, 41]
    fam = codec[:6]  # an explicit encoding of the same family reads it too (the mark is dropped)
    pd.testing.assert_frame_equal(read_table(p, encoding=codec.replace("-le", "le").replace("-be", "be")), df)
    if fam != "utf-8":
        pd.testing.assert_frame_equal(read_table(p, encoding=fam), df)


def test_utf16_with_a_mark_is_read_from_the_command_line(capsys, tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=60).round(3), "c": rng.choice(["a", "b"], 60),
                       "y": rng.choice(["p", "q"], 60)})
    p = tmp_path / "excel.csv"
    p.write_text(df.to_csv(index=False), encoding="utf-16")  # Python writes the mark first
    assert main(["lr-find", "tabular", str(p), "--target", "y", "--num-it", "10", "--bs", "16", "-q"]) == 0
    assert "valley" in capsys.readouterr().out


def test_a_mark_contradicting_the_given_encoding_names_the_right_one(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xff\xfe" + TEXT.encode("utf-16-le"))
    with pytest.raises(CLIError, match=r"is UTF-16 LE text \(it starts with a byte-order mark\), not latin-1: pass "
                                       r"--encoding utf-16"):
        read_table(p, encoding="latin-1")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_utf16_without_a_mark_suggests_the_encoding(capsys, tmp_path, codec):
    p = tmp_path / "t.csv"
    p.write_bytes(TEXT.encode(codec))
    flag = codec.replace("-le", "le").replace("-be", "be")
    line = usage_error_line(capsys, ["train", "tabular", p, "--target", "age", "--out", tmp_path / "o"],
                            f"without a byte-order mark (NUL bytes between the characters): pass --encoding {flag}")
    assert "binary" not in line
    df = read_table(p, encoding=flag)  # and the suggested flag reads it
    assert df["city"].tolist() == ["Zürich", "Orléans"]


def test_a_binary_file_is_still_called_binary(capsys, tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(bytes(range(256)) * 4)
    assert wide_encoding_without_bom(p.read_bytes()) is None
    usage_error_line(capsys, ["train", "tabular", p, "--target", "a"], "looks like a binary file")


def test_choose_encoding_keeps_plain_text_as_given():
    assert choose_encoding(b"a,b\n1,2\n", "utf-8", "f") == ("utf-8", None)
    assert choose_encoding(b"a,b\n1,2\n", "latin-1", "f") == ("latin-1", None)
    codec, note = choose_encoding(b"\xff\xfea\x00", "utf-8", "f")
    assert codec == "utf-16" and "UTF-16 LE" in note


# ---- repeated column names ---------------------------------------------------------------------------------
def test_dedupe_names_like_pandas_without_collisions():
    assert dedupe_names(["a", "b", "a", "a.1", "a"]) == (["a", "b", "a.2", "a.1", "a.3"], {"a": [1, 3, 5]})
    assert dedupe_names(["x", "y"]) == (["x", "y"], {})


def _dup_table(path: Path, header: str) -> Path:
    rng = np.random.default_rng(0)
    rows = [f"{rng.integers(20, 60)},{rng.choice(['a', 'b'])},{rng.integers(20, 60)},{rng.choice(['p', 'q'])}"
            for _ in range(60)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_repeated_names_are_named_with_their_positions(capsys, tmp_path):
    p = _dup_table(tmp_path / "d.csv", "age,c,age ,y")  # 'age ' is 'age' once stripped
    df = read_table(p, console=Console(quiet=True))
    err = capsys.readouterr().err
    assert df.columns.tolist() == ["age", "c", "age.1", "y"]
    assert "repeats the column name(s) 'age' (columns 1 and 3); the repeats are read as age.1" in err


@pytest.mark.parametrize("argv, match", [
    (["--target", "age"], "column 'age' (--target) appears 2 times in d.csv (columns 1, 3, read as age, age.1)"),
    (["--target", "y", "--cont", "age.1"], "column 'age' (--cont) appears 2 times"),
    (["--target", "y"], "column 'age' (an input column) appears 2 times in d.csv (columns 1, 3, read as age, "
                        "age.1); rename the columns in the file so each has its own name; or leave the copies out "
                        "with --ignore"),
])
def test_a_repeated_column_used_by_the_model_is_refused(capsys, tmp_path, argv, match):
    p = _dup_table(tmp_path / "d.csv", "age,c,age,y")
    usage_error_line(capsys, ["train", "tabular", p, *argv, "--out", tmp_path / "o"], match)
    assert not (tmp_path / "o").exists()


def test_a_repeated_column_left_out_only_warns(capsys, tmp_path):
    p = _dup_table(tmp_path / "d.csv", "age,c,age,y")
    sweep = ("--num-it", "10", "--bs", "16", "-q")
    assert main(["lr-find", "tabular", str(p), "--target", "y", "--cat", "c", *sweep]) == 0
    assert "'age' (columns 1 and 3)" in capsys.readouterr().err
    assert main(["lr-find", "tabular", str(p), "--target", "y", "--ignore", "age,age.1", *sweep]) == 0


def test_collab_repeated_id_column_is_refused(capsys, tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user,user,rating\n" + "".join(f"{i % 7},{i % 5},{1 + i % 5}\n" for i in range(40)))
    usage_error_line(capsys, ["train", "collab", p, "--out", tmp_path / "o"], "column 'user' (--user) appears 2 times")


def test_repeated_names_in_names_option(capsys, tmp_path):
    p = tmp_path / "u.data"
    p.write_text("1\t10\t5\n2\t11\t3\n")
    usage_error_line(capsys, ["train", "collab", p, "--no-header", "--names", "a,b,a"],
                     "--names repeats 'a' (columns 1 and 3); give every column its own name")


def test_unnamed_columns_keep_pandas_names(capsys, tmp_path):
    p = tmp_path / "indexed.csv"
    p.write_text(",a,,b\n0,1,2,3\n1,4,5,6\n")
    df = read_table(p)
    assert df.columns.tolist() == ["Unnamed: 0", "a", "Unnamed: 2", "b"]
    assert "repeats" not in capsys.readouterr().err


# ---- a header that is data ---------------------------------------------------------------------------------
def test_a_header_of_numbers_warns_with_the_flags(capsys, tmp_path):
    p = tmp_path / "u.data"
    p.write_text("".join(f"{i % 9}\t{100 + i % 7}\t{1 + i % 5}\n" for i in range(60)))
    assert main(["lr-find", "collab", str(p), "--num-it", "10", "--bs", "16", "-q"]) == 0
    err = capsys.readouterr().err
    assert ("deepfit: warning: every name in the first line of " in err and "(0, 100, 1) is a number: is it a row of "
            "data? If the file has no header line, pass --no-header --names with 3 names, e.g. --no-header --names "
            "col1,col2,col3" in err), err
    read_table(p, header=False, names=["u", "i", "r"])
    assert "warning" not in capsys.readouterr().err  # no warning once --no-header is given


def test_a_header_with_one_name_does_not_warn(capsys, tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("2019,2020,total\n1,2,3\n4,5,6\n")
    read_table(p)
    assert "warning" not in capsys.readouterr().err
