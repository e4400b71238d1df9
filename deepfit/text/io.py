"""Reading text: a plain file, a folder with one sub-folder per class, a CSV file or DataFrame column.

Every reader fails with a `TextDataError` that names the file (and, for a wrong encoding, the byte
offset and line) and says what to do. Nothing is ever written.

Example:
    >>> text = read_text("nietzsche.txt")                       # doctest: +SKIP
    >>> texts, labels = texts_from_folder("imdb/train", classes=["neg", "pos"])  # doctest: +SKIP
"""
from __future__ import annotations

import codecs
import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["TextDataError", "read_text", "decode_text", "texts_from_folder", "texts_from_df", "texts_from_csv"]


class TextDataError(ValueError):
    """Text data that cannot be used: unreadable, binary, wrongly encoded, empty, or a missing column."""


def _codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise TextDataError(f"unknown encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def decode_text(data: bytes, source: str = "the text", encoding: str = "utf-8") -> str:
    """Decode the bytes of a text file with clear errors; line ends become `\\n`, a UTF-8 BOM is dropped.

    Args:
        data: the file's bytes.
        source: what to call it in messages (usually the file name).
        encoding: the text encoding.

    Raises:
        TextDataError: binary data (a NUL byte), bytes that are not valid in `encoding` (with the byte
            offset and line), an unknown encoding.
    """
    codec = _codec(encoding)
    wide = codec.startswith(("utf-16", "utf-32"))
    if not wide:
        for bom, name in _BOMS:
            if data.startswith(bom):
                raise TextDataError(f"{source} starts with a {name.upper()} byte-order mark: it is {name} text; "
                                    f"pass encoding={name!r} (on the command line --encoding {name})")
        nul = data.find(b"\x00")
        if nul >= 0:
            raise TextDataError(f"{source} is not a text file (it contains a NUL byte at byte offset {nul}: binary "
                                "data such as an image, archive or model file); give a plain-text file")
    if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start:e.start + 1].hex()
        hint = "latin-1" if codec in ("utf-8", "ascii") else "utf-8"
        raise TextDataError(f"{source} is not valid {encoding} text: byte 0x{bad} at byte offset {e.start} (line "
                            f"{line}); pass its encoding, e.g. encoding={hint!r} (on the command line "
                            f"--encoding {hint})") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _read_decoded(p: Path, encoding: str) -> str:
    """The text of file `p`: its bytes decoded by `decode_text` (errors name the file and byte offset);
    an unreadable file is a `TextDataError` naming it."""
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TextDataError(f"cannot read {p}: {e.strerror or e}") from None
    return decode_text(data, str(p), encoding)


def read_text(path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
    """The text of a file, checked: it must exist, be text in `encoding`, and hold more than whitespace.

    Args:
        path: a plain-text file.
        encoding: its encoding (default UTF-8; a UTF-8 byte-order mark is dropped).

    Raises:
        FileNotFoundError: no such file. TextDataError: a directory, a binary file, a wrong encoding
            (naming the byte offset and line), an empty or whitespace-only file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"text file not found: {p}")
    if p.is_dir():
        raise TextDataError(f"{p} is a directory; give a text file (for one folder per class use "
                            "texts_from_folder)")
    text = _read_decoded(p, encoding)
    if not text.strip():
        what = "empty (0 bytes)" if p.stat().st_size == 0 else "whitespace only"
        raise TextDataError(f"{p} is {what}: there is no text to learn from")
    return text


def texts_from_folder(path: str | os.PathLike[str], classes: Sequence[str] | None = None,
                      encoding: str = "utf-8", extensions: Sequence[str] | None = (".txt",)
                      ) -> tuple[list[str], list[str]]:
    """Documents from a folder with one sub-folder per class (the class is the sub-folder's name).

    Files are read in sorted order (classes sorted too, unless given), so the result is the same on
    every machine. Hidden files are skipped.

    Args:
        path: the folder, e.g. `imdb/train` holding `neg/` and `pos/`.
        classes: the sub-folders to read, in this order (default: all, sorted); e.g. `["neg", "pos"]`
            leaves out IMDB's `unsup/`.
        encoding: the encoding of the files.
        extensions: only files with these suffixes (case-insensitive); None reads every file.

    Returns:
        (texts, labels), one entry per file.

    Raises:
        TextDataError: no such folder, a requested class that is missing, no documents, or a file
            that is binary, wrongly encoded or empty (named in the message).
    """
    root = Path(path)
    if not root.is_dir():
        raise TextDataError(f"{root} is not a folder" if root.exists() else f"folder not found: {root}")
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        names = subdirs
        if not names:
            raise TextDataError(f"{root} has no sub-folders; put each class's files in a folder named after the "
                                "class (e.g. pos/, neg/)")
    else:
        names = [str(c) for c in classes]
        for c in names:
            if c not in subdirs:
                near = difflib.get_close_matches(c, subdirs, n=1)
                did = f"; did you mean {near[0]!r}?" if near else ""
                raise TextDataError(f"class folder {c!r} not found in {root}{did} Sub-folders: "
                                    f"{', '.join(subdirs) or '(none)'}")
    exts = None if extensions is None else tuple(e.lower() for e in extensions)
    texts: list[str] = []
    labels: list[str] = []
    for c in names:
        for f in sorted((root / c).iterdir()):
            if f.name.startswith(".") or not f.is_file() or (exts is not None and f.suffix.lower() not in exts):
                continue
            text = _read_decoded(f, encoding)
            if not text.strip():
                raise TextDataError(f"{f} is empty or whitespace only; remove it or put text in it")
            texts.append(text)
            labels.append(c)
    if not texts:
        which = "" if exts is None else f" with suffix {', '.join(exts)}"
        raise TextDataError(f"no files{which} in the class folders of {root} ({', '.join(names)})")
    return texts, labels


def _check_column(df: "pd.DataFrame", col: str, what: str, source: str) -> None:
    cols = [str(c) for c in df.columns]
    if col in df.columns:
        return
    near = difflib.get_close_matches(str(col), cols, n=1)
    did = f"; did you mean {near[0]!r}?" if near else "."
    shown = ", ".join(cols[:12]) + (f", ... ({len(cols)} in all)" if len(cols) > 12 else "")
    raise TextDataError(f"{what} column {col!r} not found in {source}{did} Columns: {shown}")


def texts_from_df(df: "pd.DataFrame", text_col: str, label_col: str | None = None,
                  source: str = "the DataFrame") -> tuple[list[str], list[Any] | None]:
    """Documents (and labels) from DataFrame columns; `df` is not modified.

    Args:
        df: the table.
        text_col: the column with the texts.
        label_col: the column with the labels, or None.
        source: what to call the table in messages.

    Returns:
        (texts, labels), labels None without `label_col`.

    Raises:
        TextDataError: a missing column (with the closest name), missing texts or labels (naming rows),
            or no row with text.
    """
    _check_column(df, text_col, "text", source)
    if label_col is not None:
        _check_column(df, label_col, "label", source)
    if len(df) == 0:
        raise TextDataError(f"{source} has no rows")
    col = df[text_col]
    missing = col.isna().to_numpy()
    if missing.any():
        rows = [str(r) for r in df.index[missing][:5]]
        raise TextDataError(f"the text column {text_col!r} of {source} has {int(missing.sum())} missing value(s) "
                            f"(rows {', '.join(rows)}); drop or fill them")
    texts = [v if isinstance(v, str) else str(v) for v in col.tolist()]
    if not any(t.strip() for t in texts):
        raise TextDataError(f"the text column {text_col!r} of {source} holds no text (every row is empty)")
    labels: list[Any] | None = None
    if label_col is not None:
        lab = df[label_col]
        lmiss = lab.isna().to_numpy()
        if lmiss.any():
            rows = [str(r) for r in df.index[lmiss][:5]]
            raise TextDataError(f"the label column {label_col!r} of {source} has {int(lmiss.sum())} missing "
                                f"value(s) (rows {', '.join(rows)}); drop or fill them")
        labels = lab.tolist()
    return texts, labels


def texts_from_csv(path: str | os.PathLike[str], text_col: str, label_col: str | None = None,
                   encoding: str = "utf-8", delimiter: str = ",") -> tuple[list[str], list[Any] | None]:
    """Documents (and labels) from the columns of a CSV file (see `texts_from_df`).

    Raises:
        FileNotFoundError: no such file. TextDataError: binary or wrongly encoded file, bad CSV, missing
            columns or values.
    """
    import io as _io

    import pandas as pd
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"CSV file not found: {p}")
    if p.is_dir():
        raise TextDataError(f"{p} is a directory; give a CSV file")
    text = decode_text(p.read_bytes(), str(p), encoding)
    if not text.strip():
        raise TextDataError(f"{p} is empty: there is no text to learn from")
    try:
        df = pd.read_csv(_io.StringIO(text), sep=delimiter, dtype={text_col: str}, keep_default_na=False,
                         na_values={label_col: ["", "NA", "NaN", "nan", "null"]} if label_col else None)
    except (pd.errors.ParserError, ValueError) as e:
        raise TextDataError(f"cannot parse {p} as CSV with delimiter {delimiter!r}: "
                            f"{str(e).strip().splitlines()[-1]}") from None
    return texts_from_df(df, text_col, label_col, source=str(p))
