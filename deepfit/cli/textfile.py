"""What the first bytes and the header line of a delimited text file say, for `read_table`'s messages:
its encoding (a byte-order mark, or UTF-16/32 text without one), repeated column names, and a first line
that holds data rather than names. Functions of bytes, strings and tables that return facts and messages;
`read_table` and the applications turn them into command-line errors and warnings."""
from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["TextFileError", "choose_encoding", "wide_encoding_without_bom", "dedupe_names", "all_numbers",
           "header_cells", "repeats", "repeated_column_problem", "REPEATED_COLUMNS"]

#: `df.attrs` key where `read_table` records repeated column names: `{name: [1-based positions]}`.
REPEATED_COLUMNS = "deepfit_repeated_columns"

# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32", "UTF-32 LE"), (b"\x00\x00\xfe\xff", "utf-32", "UTF-32 BE"),
         (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"), (b"\xff\xfe", "utf-16", "UTF-16 LE"),
         (b"\xfe\xff", "utf-16", "UTF-16 BE"))


class TextFileError(ValueError):
    """The file's bytes contradict the encoding asked for (the message says which to pass)."""


def _family(encoding: str) -> str:
    """`utf8`, `utf16`, `utf32`, or the normalised name of any other encoding."""
    e = encoding.lower().replace("-", "").replace("_", "")
    for fam in ("utf8", "utf16", "utf32"):
        if e.startswith(fam):
            return fam
    return e


def bom(head: bytes) -> tuple[str, str] | None:
    """`(codec, label)` of the byte-order mark `head` starts with, e.g. `("utf-16", "UTF-16 LE")`, or None."""
    for mark, codec, label in _BOMS:
        if head.startswith(mark):
            return codec, label
    return None


def wide_encoding_without_bom(head: bytes) -> str | None:
    """`utf-16le`/`utf-16be`/`utf-32le`/`utf-32be` when `head` (no byte-order mark) has NUL bytes in the
    places mostly-ASCII text in that encoding has them, else None (a binary file, for instance)."""
    sample = head[:4096]
    n = len(sample) - len(sample) % 4
    if n < 8:
        return None

    def nul_share(offsets: Sequence[int], step: int) -> float:
        cells = [sample[i + o] for i in range(0, n, step) for o in offsets]
        return sum(c == 0 for c in cells) / len(cells)

    if nul_share((1, 2, 3), 4) > 0.9 and nul_share((0,), 4) < 0.1:
        return "utf-32le"
    if nul_share((0, 1, 2), 4) > 0.9 and nul_share((3,), 4) < 0.1:
        return "utf-32be"
    if nul_share((1,), 2) > 0.9 and nul_share((0,), 2) < 0.1:
        return "utf-16le"
    if nul_share((0,), 2) > 0.9 and nul_share((1,), 2) < 0.1:
        return "utf-16be"
    return None


def choose_encoding(head: bytes, encoding: str, path: object) -> tuple[str, str | None]:
    """The codec to read a file whose first bytes are `head` with, when the user asked for `encoding`
    (`--encoding`, default utf-8), and a note to show when it differs from what was asked.

    A byte-order mark is unambiguous: with the default (any UTF-8 spelling) or an encoding of the same
    family (e.g. utf-16le for a UTF-16 LE mark), the file is read in the mark's encoding and the mark is
    dropped. A mark contradicting an explicitly different encoding, or UTF-16/32 text without a mark read
    as UTF-8 or a single-byte encoding, raises `TextFileError` naming the `--encoding` to pass.
    """
    found = bom(head)
    fam = _family(encoding)
    if found is not None:
        codec, label = found
        if fam == "utf8" or fam == _family(codec):
            note = None if codec == "utf-8-sig" else (f"{path} is {label} text (it starts with a byte-order mark); "
                                                      "reading it as such")
            return codec, note
        raise TextFileError(f"{path} is {label} text (it starts with a byte-order mark), not {encoding}: pass "
                            f"--encoding {codec.replace('-sig', '')}")
    if fam in ("utf16", "utf32"):
        return encoding, None
    wide = wide_encoding_without_bom(head)
    if wide is not None:
        label = wide.upper()[:-2] + " " + wide.upper()[-2:]
        raise TextFileError(f"{path} looks like {label} text without a byte-order mark (NUL bytes between the "
                            f"characters): pass --encoding {wide}")
    return encoding, None


def dedupe_names(names: Sequence[str]) -> tuple[list[str], dict[str, list[int]]]:
    """Unique column names (a repeat of `age` becomes `age.1`, `age.2`, ... as pandas names them, skipping
    names already taken) and `{name: [1-based positions]}` of every repeated name."""
    positions: dict[str, list[int]] = {}
    for i, n in enumerate(names, 1):
        positions.setdefault(n, []).append(i)
    taken = set(names)
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n not in seen:
            seen[n] = 0
            out.append(n)
            continue
        k = seen[n]
        while True:
            k += 1
            new = f"{n}.{k}"
            if new not in taken:
                break
        seen[n] = k
        taken.add(new)
        out.append(new)
    return out, {n: p for n, p in positions.items() if len(p) > 1}


def all_numbers(cells: Sequence[str]) -> bool:
    """True when every cell (of a header line) reads as a number, e.g. `1,10,5` rather than `user,item,rating`."""
    if not cells:
        return False
    for c in cells:
        try:
            float(str(c))
        except ValueError:
            return False
    return True


def header_cells(sample: str, sep: str) -> list[str]:
    """The cells of the first non-blank line of `sample` (the header), stripped."""
    first = next((ln for ln in sample.splitlines() if ln.strip()), "")
    return [c.strip() for c in next(csv.reader([first], delimiter=sep, skipinitialspace=True))] if first else []


def repeats(repeated: dict[str, list[int]]) -> str:
    """`'age' (columns 1 and 3); ...` for `{name: [1-based positions]}`."""
    return "; ".join(f"{n!r} (columns {', '.join(map(str, p[:-1]))} and {p[-1]})" for n, p in repeated.items())


def repeated_column_problem(df: "pd.DataFrame", used: Sequence[str], option: str, source: str,
                            hint: str = "") -> str | None:
    """The message refusing the first column of `used` whose name was repeated in the header of the file
    `df` was read from (recorded by `read_table` in `df.attrs`), or None.

    Args:
        df: a table from `read_table`.
        used: the columns the command uses (a renamed copy such as `age.1` counts as `age`).
        option: where they come from (e.g. `--target`), named in the message.
        source: the file, named in the message.
        hint: another way out to add to the message (e.g. an option that leaves columns out).
    """
    repeated: dict[str, list[int]] = df.attrs.get(REPEATED_COLUMNS) or {}
    cols: list[Any] = list(df.columns)
    for name, pos in repeated.items():
        names = [cols[i - 1] for i in pos if i <= len(cols)]
        if any(c in names for c in used):
            return (f"column {name!r} ({option}) appears {len(names)} times in {source} (columns "
                    f"{', '.join(map(str, pos))}, read as {', '.join(map(str, names))}); rename the columns in the "
                    f"file so each has its own name{hint}")
    return None
