"""Reading text: files (encodings, binary, empty), class folders, CSV / DataFrame columns."""
from __future__ import annotations

import pandas as pd
import pytest

from deepfit.text import TextDataError, read_text, texts_from_csv, texts_from_df, texts_from_folder


def test_read_text_plain_and_line_ends(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"\xef\xbb\xbfcaf\xc3\xa9\r\nline two\rthree\n")  # UTF-8 BOM, CRLF and CR line ends
    assert read_text(p) == "café\nline two\nthree\n"
    before = p.read_bytes()
    read_text(p)
    assert p.read_bytes() == before  # never modified


def test_read_text_other_encodings(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("naïve café\nsecond line ÿ".encode("latin-1"))
    with pytest.raises(TextDataError, match=r"latin.txt is not valid utf-8 text: byte 0xef at byte offset 2 "
                                            r"\(line 1\); pass its encoding, e.g. encoding='latin-1'"):
        read_text(p)
    assert read_text(p, encoding="latin-1") == "naïve café\nsecond line ÿ"
    q = tmp_path / "late.txt"
    q.write_bytes(b"ok\nok\nbad \xff here")
    with pytest.raises(TextDataError, match=r"byte 0xff at byte offset 10 \(line 3\)"):
        read_text(q)
    u16 = tmp_path / "u16.txt"
    u16.write_bytes("hello".encode("utf-16"))
    with pytest.raises(TextDataError, match="UTF-16 byte-order mark.*encoding='utf-16'"):
        read_text(u16)
    assert read_text(u16, encoding="utf-16") == "hello"
    with pytest.raises(TextDataError, match="unknown encoding 'klingon'"):
        read_text(p, encoding="klingon")


def test_read_text_rejects_binary_empty_and_folders(tmp_path):
    b = tmp_path / "model.bin"
    b.write_bytes(b"PK\x03\x04\x00\x00abc")
    with pytest.raises(TextDataError, match=r"model.bin is not a text file \(it contains a NUL byte at byte "
                                            r"offset 4"):
        read_text(b)
    e = tmp_path / "empty.txt"
    e.write_bytes(b"")
    with pytest.raises(TextDataError, match=r"empty.txt is empty \(0 bytes\)"):
        read_text(e)
    w = tmp_path / "blank.txt"
    w.write_text("  \n\t\n")
    with pytest.raises(TextDataError, match="blank.txt is whitespace only"):
        read_text(w)
    with pytest.raises(TextDataError, match="is a directory"):
        read_text(tmp_path)
    with pytest.raises(FileNotFoundError, match="text file not found"):
        read_text(tmp_path / "nope.txt")


def _folder(tmp_path):
    root = tmp_path / "train"
    for cls, docs in {"pos": ["great film", "loved it"], "neg": ["boring"], "unsup": ["whatever"]}.items():
        (root / cls).mkdir(parents=True)
        for i, d in enumerate(docs):
            (root / cls / f"{i}.txt").write_text(d)
    (root / "pos" / ".hidden.txt").write_text("skip me")
    (root / "pos" / "notes.md").write_text("not a .txt")
    (root / "README").write_text("a file beside the class folders")
    return root


def test_texts_from_folder(tmp_path):
    root = _folder(tmp_path)
    texts, labels = texts_from_folder(root)
    assert texts == ["boring", "great film", "loved it", "whatever"]
    assert labels == ["neg", "pos", "pos", "unsup"]
    texts, labels = texts_from_folder(root, classes=["pos", "neg"])
    assert (texts, labels) == (["great film", "loved it", "boring"], ["pos", "pos", "neg"])
    texts, _ = texts_from_folder(root, classes=["pos"], extensions=None)
    assert texts == ["great film", "loved it", "not a .txt"]


def test_texts_from_folder_errors(tmp_path):
    root = _folder(tmp_path)
    with pytest.raises(TextDataError, match="class folder 'postive' not found.*did you mean 'pos'"):
        texts_from_folder(root, classes=["postive"])
    with pytest.raises(TextDataError, match="folder not found"):
        texts_from_folder(tmp_path / "nothing")
    with pytest.raises(TextDataError, match="has no sub-folders"):
        texts_from_folder(root / "neg")
    (root / "neg" / "1.txt").write_bytes(b"bad \xe9 byte")
    with pytest.raises(TextDataError, match=r"neg/1.txt is not valid utf-8 text: byte 0xe9 at byte offset 4"):
        texts_from_folder(root)
    (root / "neg" / "1.txt").write_text("   ")
    with pytest.raises(TextDataError, match="1.txt is empty or whitespace only"):
        texts_from_folder(root)
    (root / "empty").mkdir()
    with pytest.raises(TextDataError, match="no files with suffix .txt"):
        texts_from_folder(root, classes=["empty"])


def test_texts_from_df_and_csv(tmp_path):
    df = pd.DataFrame({"review": ["good", "bad, really", "ok"], "label": ["pos", "neg", "pos"]})
    copy = df.copy()
    assert texts_from_df(df, "review", "label") == (["good", "bad, really", "ok"], ["pos", "neg", "pos"])
    assert texts_from_df(df, "review") == (["good", "bad, really", "ok"], None)
    pd.testing.assert_frame_equal(df, copy)
    with pytest.raises(TextDataError, match="text column 'reviews' not found in the DataFrame; did you mean "
                                            "'review'"):
        texts_from_df(df, "reviews")
    with pytest.raises(TextDataError, match="label column 'lbl' not found"):
        texts_from_df(df, "review", "lbl")
    bad = pd.DataFrame({"t": ["a", None, "c"], "y": [1, 2, None]})
    with pytest.raises(TextDataError, match=r"text column 't' of the DataFrame has 1 missing value\(s\) \(rows 1\)"):
        texts_from_df(bad, "t")
    with pytest.raises(TextDataError, match=r"label column 'y' .* \(rows 2\)"):
        texts_from_df(bad.fillna({"t": "b"}), "t", "y")
    p = tmp_path / "r.csv"
    df.to_csv(p, index=False)
    assert texts_from_csv(p, "review", "label") == (["good", "bad, really", "ok"], ["pos", "neg", "pos"])
    p.write_bytes("review,label\ncaf\xe9,pos\n".encode("latin-1"))
    with pytest.raises(TextDataError, match="r.csv is not valid utf-8 text"):
        texts_from_csv(p, "review", "label")
    assert texts_from_csv(p, "review", "label", encoding="latin-1") == (["café"], ["pos"])
