"""Errors the engine raises for bad input.

Every user-facing failure caused by input (a file, a schema, a seed, a model spec) is an
``InputError`` whose message is one line naming what is wrong and where. The CLI prints it and
exits with code 2; the app shows it in the page. Anything else is a bug and surfaces as such.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: the message is one line, says what and where."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        text = f"{where}: {message}" if where else message
        super().__init__(" ".join(text.split()))  # always a single line


class BudgetExceeded(InputError):
    """Input whose scaffold or automaton would grow past its size or time budget."""
