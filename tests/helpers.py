"""Helpers shared by the test modules: running the `deepfit` command in-process and checking its usage errors,
the Python syntax a command-line message must not show, and small tables and model files to feed it.

Test modules import them with `from helpers import ...` (pytest puts tests/ on the import path)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from deepfit.cli import main

#: Python call syntax that must not reach a command-line user ("value(s)" is plain English, not a call).
PYTHON_SYNTAX = re.compile(r"\w\((?!s\))|learn\.|pd\.|df\[|dls\.|np\.|torch\.|`|\w=\w|load_learner|register_model")

ERROR_PREFIX = "deepfit: error: "


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """Run `deepfit ARGV...` in this process; returns (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_usage_error(code: int, err: str, *fragments: str) -> None:
    """A usage error: exit status 2, a `deepfit: error: ` line (after any progress lines), every fragment in
    stderr, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert any(ln.startswith(ERROR_PREFIX) for ln in err.splitlines()), err
    for f in fragments:
        assert f in err, (f, err)


def usage_error_line(capsys: pytest.CaptureFixture, argv: Sequence[Any], match: str | Sequence[str]) -> str:
    """Run the command, check it ends in a usage error, and return its `deepfit: error: ` line, which must hold
    `match` (one fragment, or each of a list)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    line = next(ln for ln in err.splitlines() if ln.startswith(ERROR_PREFIX))
    for f in [match] if isinstance(match, str) else match:
        assert f in line, line
    return line


def small_table(n: int) -> pd.DataFrame:
    """`n` rows of a categorical `color`, a continuous `size` and a two-class `label` (seeded, no pattern)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"color": rng.choice(["red", "green", "blue"], n), "size": rng.normal(0, 1, n).round(3),
                         "label": rng.choice(["big", "small"], n)})


def rewrite_header(src: Path, dst: Path, change: Callable[[dict[str, str]], Any]) -> Path:
    """A copy of `src` at `dst` with its safetensors metadata edited by `change(meta)` (tensor bytes kept)."""
    raw = src.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    change(header["__metadata__"])
    new = json.dumps(header).encode()
    dst.write_bytes(len(new).to_bytes(8, "little") + new + raw[8 + n:])
    return dst
