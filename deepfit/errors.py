"""Errors about the user's input that suggest a different fix to Python users and to command-line users.

A library message may say "clean it with `pd.to_numeric(...)`" or "try `learn.lr_find()`"; a `deepfit`
command user needs the flag instead ("list the column with --cat", "run deepfit lr-find"). Such errors
derive from `HintedError`: `str(e)` is the Python message, `cli_message(e)` the command-line one, and the
command line prints `cli_message(e)` for every error it shows.

Example:
    >>> e = HintedError("Column 'age' holds text.", "Clean it with `pd.to_numeric`.", cli_hint="List it with --cat.")
    >>> str(e)
    "Column 'age' holds text. Clean it with `pd.to_numeric`."
    >>> cli_message(e)
    "Column 'age' holds text. List it with --cat."
"""
from __future__ import annotations

__all__ = ["HintedError", "cli_message"]


class HintedError(Exception):
    """An error whose fix reads differently in Python and on the command line.

    Args:
        problem: what is wrong (shown to everyone).
        fix: what to do in Python (may name calls and arguments); appended to `problem` in `str(e)`.
        cli_hint: what to do on the command line (flags and commands, no Python); replaces `fix` in
            `cli_message(e)`. Empty: the same fix for both.
    """

    def __init__(self, problem: str, fix: str = "", *, cli_hint: str = "") -> None:
        super().__init__(f"{problem} {fix}".strip())
        self.problem, self.fix, self.cli_hint = problem, fix, cli_hint

    def cli_message(self) -> str:
        """The message for command-line users: the problem and the command-line fix."""
        return f"{self.problem} {self.cli_hint or self.fix}".strip()


def cli_message(e: BaseException) -> str:
    """The text the command line shows for `e`: its `cli_message()` when it has one, else `str(e)`."""
    return e.cli_message() if isinstance(e, HintedError) else str(e)
