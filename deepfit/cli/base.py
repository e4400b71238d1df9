"""What every `deepfit` sub-command shares: errors and exit codes, console output and progress bars,
careful reading of delimited files, column checks with suggestions, and the `Application` plug-in
protocol. The run directory (`RunDir`) lives in runs.py and is re-exported here.

Adding an application (text, vision, ...) is one new module with an `Application` subclass, listed
once in `deepfit.cli.APPLICATIONS`; `train`, `lr-find`, `predict` and `info` then work for it.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .textfile import (REPEATED_COLUMNS, TextFileError, all_numbers, choose_encoding, dedupe_names, header_cells,
                       repeated_column_problem, repeats)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ..learner import Learner

__all__ = ["CLIError", "RunInterrupted", "Console", "read_table", "check_columns", "closest", "RunDir",
           "Application", "Prepared", "parse_lr", "positive_int", "positive_float", "fraction", "int_list",
           "device_arg",
           "column_list", "add_common_train_arguments", "add_loader_arguments", "add_csv_arguments",
           "check_split", "check_input_file", "is_complete", "ReportItem", "INCOMPLETE_SUFFIX",
           "COMPLETE_MARKER", "STATUS_FILE", "check_not_repeated", "REPEATED_COLUMNS"]

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MIN_LR_FIND_ITERS = 10  # = deepfit.callbacks.schedule.MIN_LR_FIND_ITERS (not imported here: torch loads lazily)
INCOMPLETE_SUFFIX = ".incomplete"
COMPLETE_MARKER = "COMPLETE"
STATUS_FILE = "STATUS"


# ---- errors --------------------------------------------------------------------------------------------
class CLIError(Exception):
    """Bad usage or bad input: printed as `deepfit: error: <message>`, exit status 2, no traceback."""

    exit_code = EXIT_USAGE


class RunInterrupted(Exception):
    """The run was interrupted (Ctrl-C); the message says where its incomplete output is. Exit 130."""

    exit_code = EXIT_INTERRUPTED


# ---- argument types ------------------------------------------------------------------------------------
def _whole_number(text: str, minimum: int, rule: str) -> int:
    """`text` as an integer of at least `minimum`; otherwise an argparse error saying it `must be <rule>`."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < minimum:
        raise argparse.ArgumentTypeError(f"must be {rule}, got {v}")
    return v


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    return _whole_number(text, 1, "> 0")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _whole_number(text, 0, ">= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (e.g. `--wd`)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return v


def lr_find_iters(text: str, allow_zero: bool = True) -> int:
    """argparse type for the learning-rate sweep's length: 0 (no sweep, where allowed) or at least
    `MIN_LR_FIND_ITERS` batches (fewer cannot give a suggestion)."""
    v = _whole_number(text, 0, ">= 0")
    if v < MIN_LR_FIND_ITERS and not (allow_zero and v == 0):
        zero = " (or 0 to skip the sweep)" if allow_zero else ""
        raise argparse.ArgumentTypeError(f"the learning-rate sweep needs at least {MIN_LR_FIND_ITERS} batches to "
                                         f"suggest a rate{zero}, got {v}")
    return v


def sweep_iters(text: str) -> int:
    """argparse type for `lr-find --num-it`: at least `MIN_LR_FIND_ITERS` batches."""
    return lr_find_iters(text, allow_zero=False)


def parse_lr(text: str) -> float | str:
    """argparse type for `--lr`: a positive number, or `auto` (use lr_find's valley suggestion)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive number (e.g. 1e-3) or 'auto', got {text!r}") from None


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated positive integers, e.g. `200,100`."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected comma-separated sizes such as 200,100")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers such as 200,100, got {text!r}") from None
    if any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"every size must be > 0, got {text!r}")
    return vals


def column_list(text: str) -> list[str]:
    """argparse type: comma-separated column names (may be given several times; see `flatten`)."""
    return [p.strip() for p in text.split(",") if p.strip()]


def flatten(lists: Sequence[Sequence[str]] | None) -> list[str]:
    """Join the values of a repeatable `column_list` option, keeping order and dropping repeats."""
    out: list[str] = []
    for ls in lists or []:
        for x in ls:
            if x not in out:
                out.append(x)
    return out


def delimiter_arg(text: str) -> str:
    """argparse type for `--delimiter`: one character, `auto`, or a name (tab, comma, semicolon, pipe, space)."""
    names = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " ", "auto": "auto"}
    if text.lower() in names:
        return names[text.lower()]
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character or one of {', '.join(names)}, got {text!r}")
    return text


def device_arg(text: str) -> str:
    """argparse type for `--device`: a device this machine has (cpu, cuda, cuda:N, mps); the error lists
    the available ones."""
    from ..utils import parse_device
    try:
        return str(parse_device(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("`device` ", "", 1)) from None


def add_csv_arguments(p: argparse.ArgumentParser) -> None:
    """Options that control how a delimited text file is read."""
    g = p.add_argument_group("reading the file")
    g.add_argument("--delimiter", "--sep", type=delimiter_arg, default="auto", metavar="CHAR",
                   help="field separator: one character, or tab/comma/semicolon/pipe/space; default: detect it")
    g.add_argument("--encoding", default="utf-8", help="text encoding of the file (default: %(default)s)")
    g.add_argument("--no-header", dest="header", action="store_false",
                   help="the file has no header line; name the columns with --names")
    g.add_argument("--names", type=column_list, default=None, metavar="A,B,...",
                   help="column names to use (required with --no-header)")
    g.add_argument("--na-values", type=column_list, default=["?"], metavar="A,B,...",
                   help="extra cell values that mean 'missing', besides empty cells, NA, NaN and null "
                        "(default: ?, as in the UCI data sets)")


def add_loader_arguments(p: argparse.ArgumentParser, default_bs: int, valid_pct: bool = True) -> None:
    """Batch size, validation split, seed and device (shared by `train`, `lr-find` and `demo`)."""
    g = p.add_argument_group("data loading")
    g.add_argument("--bs", type=positive_int, default=default_bs, help="batch size (default: %(default)s)")
    if valid_pct:
        g.add_argument("--valid-pct", type=fraction, default=0.2,
                       help="fraction of rows held out (at random) for validation (default: %(default)s)")
    g.add_argument("--seed", type=int, default=42,
                   help="random seed for the split and the weights (default: %(default)s)")
    g.add_argument("--device", type=device_arg, default=None,
                   help="cpu, cuda, cuda:1, mps (default: the best available)")


def add_common_train_arguments(p: argparse.ArgumentParser, default_lr: float, default_epochs: int,
                               default_bs: int, valid_pct: bool = True) -> None:
    """Options of the training loop and of the run directory, shared by every application."""
    add_loader_arguments(p, default_bs, valid_pct)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=default_epochs, help="epochs to train (default: %(default)s)")
    g.add_argument("--lr", type=parse_lr, default=default_lr,
                   help="maximum learning rate of the one-cycle schedule, or 'auto' to use the valley "
                        "suggestion of lr_find (default: %(default)s)")
    g.add_argument("--wd", type=non_negative_float, default=None, help="weight decay (default: the learner's)")
    g.add_argument("--mixed-precision", action="store_true",
                   help="forward passes in 16-bit floats under autocast: bfloat16 on the CPU (2-3x faster "
                        "recurrent and convolutional layers on CPUs with AVX-512 bf16 / AMX), float16 with "
                        "loss scaling on a GPU; weights and the exported model stay float32")
    g.add_argument("--lr-find-iters", type=lr_find_iters, default=100, metavar="N",
                   help=f"batches of the learning-rate sweep plotted in the report (at least {MIN_LR_FIND_ITERS}); "
                        "0 skips it (default: %(default)s)")
    add_run_arguments(p)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Where a run writes (`--out`, `--overwrite`) and checkpointing (`--checkpoint-every`, `--resume`,
    `--restart`)."""
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="run directory to create (default: runs/<application>-<date>-<time>)")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it already holds a finished run")
    g.add_argument("--checkpoint-every", type=non_negative_int, default=0, metavar="N",
                   help="save an exact-resume checkpoint every N epochs into DIR.incomplete/checkpoints "
                        "(0: never; default)")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from the last checkpoint in DIR.incomplete (with the "
                        "same options it was started with)")
    g.add_argument("--restart", action="store_true",
                   help="start over, discarding the checkpoints of an interrupted run in DIR.incomplete "
                        "(without it they are kept and the run is refused)")


# ---- console -------------------------------------------------------------------------------------------
class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


class Console:
    """Messages for people on stderr (results on stdout); tqdm bars only when stderr is a terminal.

    Args:
        quiet: no progress messages (results and errors are still printed).
        interactive: force bars on/off (default: `sys.stderr.isatty()`).
    """

    def __init__(self, quiet: bool = False, interactive: bool | None = None) -> None:
        self.quiet = quiet
        self.interactive = (sys.stderr.isatty() if interactive is None else interactive) and not quiet

    def info(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def warn(self, msg: str) -> None:
        print(f"deepfit: warning: {msg}", file=sys.stderr, flush=True)

    def result(self, msg: str) -> None:
        print(msg, flush=True)

    @contextlib.contextmanager
    def bar(self, desc: str, total: float | None = None, unit: str = "it", unit_scale: bool = False) -> Iterator[Any]:
        """A tqdm bar on a terminal, else a do-nothing bar; always closed on exit."""
        if not self.interactive:
            yield _NullBar()
            return
        from tqdm.auto import tqdm
        b = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, leave=False, file=sys.stderr)
        try:
            yield b
        finally:
            b.close()

    @contextlib.contextmanager
    def step(self, desc: str) -> Iterator[None]:
        """A long step without a count (preprocessing, plotting): a one-step bar with the elapsed time on a
        terminal, nothing otherwise."""
        with self.bar(desc, total=1) as b:
            yield
            b.update(1)


# ---- reading files -------------------------------------------------------------------------------------
class _CountingReader(io.RawIOBase):
    """A binary file wrapper that reports bytes read to a progress bar."""

    def __init__(self, f: Any, bar: Any) -> None:
        self.f, self.b = f, bar

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self.f.readinto(buf)
        self.b.update(n or 0)
        return n or 0


_CANDIDATES = [",", ";", "\t", "|"]
_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'", " ": "space"}


def _sniff(sample: str) -> str | None:
    """The delimiter that splits the first lines of `sample` into the same number (>1) of fields."""
    lines = [ln for ln in sample.splitlines()[:20] if ln.strip()]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # the last line of the sample may be cut
    best, best_n = None, 1
    for d in _CANDIDATES:
        counts = [len(next(csv.reader([ln], delimiter=d))) for ln in lines]
        if counts and min(counts) == max(counts) and counts[0] > best_n:
            best, best_n = d, counts[0]
    return best


def load_model_for(model: Path, dls_class: str, kind: str, needs: str, device: str | None = None) -> "Learner":
    """Load the exported model `model` when its data pipeline is `dls_class`; any other model file is a
    CLIError saying which application wrote it, e.g. "x is a tabular model, not {kind}; {needs}"."""
    from ..export import load_learner, read_header
    model = check_input_file(model, "model file")
    dls = read_header(model).get("dls_class", "")
    if dls != dls_class:
        from . import APPLICATIONS
        app = next((a for a in APPLICATIONS if dls in a.dls_classes), None)
        what = f"a {app.name} model" if app is not None else (f"a model with data pipeline {dls}" if dls else
                                                              "a model with no data pipeline")
        raise CLIError(f"{model} is {what}, not {kind}; {needs}")
    return load_learner(model, device=device)


def check_input_file(path: Path, what: str = "input file") -> Path:
    """Fail with a clear message unless `path` is an existing, readable, non-empty file."""
    path = Path(path)
    if not path.exists():
        near = ""
        if path.parent.is_dir():
            sugg = closest(path.name, [p.name for p in path.parent.iterdir()])
            near = f"; did you mean {path.parent / sugg}?" if sugg else ""
        raise CLIError(f"{what} not found: {path}{near}")
    if path.is_dir():
        raise CLIError(f"{what} {path} is a directory; give the path of a file")
    if not os.access(path, os.R_OK):
        raise CLIError(f"cannot read {what} {path}: permission denied")
    if path.stat().st_size == 0:
        raise CLIError(f"{what} {path} is empty (0 bytes)")
    return path


def read_table(path: str | Path, delimiter: str = "auto", encoding: str = "utf-8", header: bool = True,
               names: Sequence[str] | None = None, console: Console | None = None,
               na_values: Sequence[str] = ("?",)) -> "pd.DataFrame":
    """Read a delimited text file into a DataFrame with clear errors.

    Detects the delimiter (`auto`) among `, ; tab |`; reports wrong encodings, empty files, files with
    a header but no rows, ragged rows, and a wrongly chosen delimiter (everything in one column).
    Cells equal to one of `na_values` (after leading spaces) are read as missing, as are pandas' usual
    markers. The file is only opened for reading.
    """
    import pandas as pd
    console = console or Console(quiet=True)
    path = check_input_file(Path(path))
    if names is not None and header is True and not names:
        names = None
    try:
        "".encode(encoding)
    except LookupError:
        raise CLIError(f"unknown --encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:  # a byte-order mark, or UTF-16/32 without one
        encoding, note = choose_encoding(head, encoding, path)
    except TextFileError as e:
        raise CLIError(str(e)) from None
    if note:
        console.info(note)
    if b"\x00" in head[:4096] and not encoding.lower().replace("-", "").startswith(("utf16", "utf32")):
        raise CLIError(f"{path} looks like a binary file, not delimited text (it contains NUL bytes)")
    try:
        sample = head.decode(encoding)
    except UnicodeDecodeError as e:
        if e.end >= len(head) - 4 and len(head) == 1 << 16:  # a multi-byte character cut by the sample
            sample = head[: e.start].decode(encoding, errors="ignore")
        else:
            raise _encoding_error(path, encoding, head, e) from None
    sample = sample.removeprefix("\ufeff")  # a byte-order mark left by an explicit utf-16le/be and the like
    auto = delimiter == "auto"
    sep = (_sniff(sample) or ",") if auto else delimiter
    size = path.stat().st_size
    hdr = 0 if header else None
    if names:
        first = next((ln for ln in sample.splitlines() if ln.strip()), "")
        n_fields = len(next(csv.reader([first], delimiter=sep))) if first else 0
        if n_fields and n_fields != len(names):
            raise CLIError(f"{path} has {n_fields} fields per line (delimiter {_NAMES.get(sep, repr(sep))}) but "
                           f"--names gives {len(names)} ({', '.join(names)}); name every column")
    if not header and not names:
        raise CLIError(f"--no-header needs --names to name the columns of {path}")
    repeated = dedupe_names([str(n).strip() for n in names or []])[1]
    if repeated:
        raise CLIError(f"--names repeats {repeats(repeated)}; give every column its own name")
    try:
        with open(path, "rb") as raw, console.bar(f"reading {path.name}", total=size, unit="B", unit_scale=True) as b:
            stream = io.BufferedReader(_CountingReader(raw, b))
            df = pd.read_csv(stream, sep=sep, encoding=encoding, header=hdr, names=list(names) if names else None,
                             skipinitialspace=True, engine="c", na_values=list(na_values))
    except UnicodeDecodeError as e:
        raise _encoding_error(path, encoding, None, e) from None
    except pd.errors.EmptyDataError:
        raise CLIError(f"{path} holds no data (only blank lines?)") from None
    except pd.errors.ParserError as e:
        msg = str(e).strip().splitlines()[-1]
        raise CLIError(f"cannot parse {path} with delimiter {_NAMES.get(sep, repr(sep))}: {msg}. Check --delimiter "
                       "and that every row has the same number of fields") from None
    if len(df) == 0:
        raise CLIError(f"{path} has a header ({', '.join(map(str, df.columns[:8]))}) but no data rows")
    if df.shape[1] == 1 and not auto:
        guess = _sniff(sample)
        if guess is not None and guess != sep:
            raise CLIError(f"{path} was read as a single column with --delimiter {_NAMES.get(sep, repr(sep))}, but "
                           f"it looks {_NAMES[guess]}-delimited; pass --delimiter {_NAMES[guess].strip(chr(39))!s} "
                           "(or leave --delimiter out to detect it)")
    cells = header_cells(sample, sep) if header and not names else []
    raw = [str(c).strip() for c in df.columns]
    if len(cells) == len(raw):  # the names as written (pandas renames repeats), pandas' name for an empty one
        raw = [c or r for c, r in zip(cells, raw)]
    df.columns, repeated = dedupe_names(raw)
    df.attrs[REPEATED_COLUMNS] = repeated
    if repeated:
        renamed = [c for c in df.columns if c not in raw]
        console.warn(f"{path} repeats the column name(s) {repeats(repeated)}; the repeats are read as "
                     f"{', '.join(renamed)}. A repeated column cannot be the target or an input: rename the columns "
                     "in the file")
    if cells and all_numbers(cells):
        shown = ", ".join(cells[:6]) + (", ..." if len(cells) > 6 else "")
        example = ",".join(f"col{i}" for i in range(1, len(cells) + 1)) if len(cells) <= 6 else "col1,col2,..."
        console.warn(f"every name in the first line of {path} ({shown}) is a number: is it a row of data? If the "
                     f"file has no header line, pass --no-header --names with {len(cells)} names, e.g. "
                     f"--no-header --names {example}")
    console.info(f"read {path.name}: {len(df):,} rows x {df.shape[1]} columns (delimiter {_NAMES.get(sep, repr(sep))})")
    return df


def check_not_repeated(df: "pd.DataFrame", used: Sequence[str], option: str, source: str, hint: str = "") -> None:
    """Refuse columns of `used` whose name `read_table` found repeated in the header (or their renamed copies
    `name.1`, ...): the model would silently use the wrong one or both. See `textfile.repeated_column_problem`."""
    problem = repeated_column_problem(df, used, option, source, hint)
    if problem:
        raise CLIError(problem)


def check_split(n_rows: int, valid_pct: float, source: str, what: str = "rows") -> None:
    """Fail clearly when a random `valid_pct` split of `n_rows` leaves no validation or too few training rows."""
    n_valid = int(round(n_rows * valid_pct))
    if n_valid < 1 or n_rows - n_valid < 2:
        raise CLIError(f"{source} has only {n_rows} {what}: too few to hold out {valid_pct:.0%} for validation and "
                       "still train; use more data (or a different --valid-pct)")


def _encoding_error(path: Path, encoding: str, head: bytes | None, e: UnicodeDecodeError) -> CLIError:
    hint = "latin-1" if encoding.lower().replace("-", "") in ("utf8", "ascii") else "utf-8"
    bad = e.object[e.start:e.start + 1] if isinstance(e.object, (bytes, bytearray)) else b""
    return CLIError(f"{path} is not valid {encoding} text (byte 0x{bad.hex() or '??'} near byte {e.start}); "
                    f"pass the file's encoding, e.g. --encoding {hint}")


# ---- columns -------------------------------------------------------------------------------------------
def closest(name: str, choices: Sequence[str]) -> str | None:
    """The choice nearest to `name` (case-insensitive difflib match), or None when nothing is close."""
    choices = [str(c) for c in choices]
    lower = {c.lower(): c for c in choices}
    if name.lower() in lower:
        return lower[name.lower()]
    m = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return lower[m[0]] if m else None


def _show_columns(cols: Sequence[str], n: int = 12) -> str:
    cols = [str(c) for c in cols]
    shown = ", ".join(cols[:n])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > n else "")


def check_columns(columns: Sequence[str], wanted: Sequence[str], option: str, source: str) -> None:
    """Fail with a suggestion (difflib) when a name in `wanted` is not one of `columns`.

    Args:
        columns: the columns of the data.
        wanted: names the user gave.
        option: the option they came from (e.g. `--target`), named in the message.
        source: the file (or data) they were looked up in.
    """
    cols = [str(c) for c in columns]
    for w in wanted:
        if w in cols:
            continue
        sugg = closest(w, cols)
        did = f"; did you mean {sugg!r}?" if sugg else "."
        extra = ""
        if len(cols) == 1 and any(d in cols[0] for d in _CANDIDATES):
            extra = " (the file was read as one column: is --delimiter right?)"
        elif sum(_is_number(c) for c in cols) * 2 > len(cols):
            extra = " (the first line looks like data, not a header: pass --no-header --names A,B,...)"
        raise CLIError(f"column {w!r} ({option}) not found in {source}{did} Columns: {_show_columns(cols)}{extra}")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# ---- the run directory ---------------------------------------------------------------------------------
@dataclass
class ReportItem:
    """One entry of the HTML report: a figure (PNG in the run directory), a table or a paragraph."""

    kind: str  # "figure" | "table" | "text"
    title: str
    content: Any  # file name (figure), DataFrame (table), str (text)
    caption: str = ""


# ---- applications --------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """What an application builds before training: the learner plus facts for messages and the report.

    Attributes:
        learn: the Learner, ready to fit.
        description: one line about the data (rows, columns, split).
        facts: key/value pairs shown in the report (target, columns, classes, ...).
        task: "classification", "regression" or "" when unknown.
        extra: anything the application wants to keep for its plots.
    """

    learn: "Learner"
    description: str
    facts: dict[str, Any] = field(default_factory=dict)
    task: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Application:
    """Base class of a `deepfit train <name>` application (the plug-in protocol).

    A subclass sets `name`, `help`, `description`, `examples`, `dls_classes` (the DataLoaders class
    names its exported models carry, so `predict`/`info` find it) and `user_errors` (exception types that
    mean bad input), and implements:

    - `add_arguments(parser)`: its data and model options (the training options are added for it);
    - `prepare(args, console) -> Prepared`: read and check the data and build the learner, writing nothing;
    - `report(prepared, run, console)`: its own plots and tables, after training;
    - `predict(learn, df, args) -> DataFrame`: predictions for the rows of `df` (never modifying it);
    - `add_predict_arguments(parser)` (optional): extra options of `deepfit predict` for its models.

    `train(args, run, prepared, console)` has a generic implementation (one-cycle training, metrics CSV,
    loss/schedule/lr_find plots, export); override it only when an application needs another loop.
    """

    name: str = ""
    help: str = ""
    description: str = ""
    examples: str = ""
    dls_classes: tuple[str, ...] = ()
    user_errors: tuple[type[BaseException], ...] = ()
    default_lr: float = 1e-3
    default_epochs: int = 5
    default_bs: int = 64

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def prepare(self, args: argparse.Namespace, console: Console) -> Prepared:  # pragma: no cover - interface
        raise NotImplementedError

    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        """Application-specific plots and tables (default: none)."""

    def predict(self, learn: "Learner", df: "pd.DataFrame",
                args: argparse.Namespace) -> "pd.DataFrame":  # pragma: no cover - interface
        raise NotImplementedError

    def add_predict_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Extra `deepfit predict` options for this application's models (default: none)."""

    def describe_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """What `deepfit info` shows of an exported model's data-pipeline state (default: all of it)."""
        return state

    def load_user_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types of this application that mean bad input (imported lazily)."""
        return self.user_errors

    def train(self, args: argparse.Namespace, run: RunDir, prepared: Prepared, console: Console) -> dict[str, Any]:
        """Train with the one-cycle policy and write model, metrics and the standard plots into `run`."""
        from .training import standard_train
        return standard_train(self, args, run, prepared, console)


# The run directory lives in runs.py (with its lock and --resume checks); imported here, after everything
# runs.py takes from this module is defined, so `from deepfit.cli.base import RunDir` keeps working.
from .runs import RunDir, is_complete  # noqa: E402
