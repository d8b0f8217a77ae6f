"""What reading a product list gives: its table, and what is wrong with a row or the file.

Everything a whole file gets wrong (not a product list, not UTF-8, the wrong delimiter) is
one :class:`InputError` with the fix; what one row gets wrong is a :class:`RowProblem`.
"""

from __future__ import annotations

import re
from typing import Any, Final

import attrs

__all__ = ["InputError", "RowProblem", "Table", "is_number", "short"]

MAX_PROBLEMS_SHOWN: Final = 20


@attrs.frozen
class RowProblem:
    """One thing wrong with one row: its number (as the file or sheet shows it), the
    column as written in the header (None for the whole row), and why."""

    row: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.reason}"


class InputError(Exception):
    """The input file cannot be used as it is; ``problems`` lists every bad row."""

    def __init__(self, message: str, problems: tuple[RowProblem, ...] = ()) -> None:
        shown = "\n".join(f"  {p}" for p in problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        if more > 0:
            shown += f"\n  ... and {more} more"
        super().__init__(f"{message}\n{shown}" if shown else message)
        self.problems = problems


@attrs.frozen(kw_only=True)
class Table:
    """A product list's header (as written, stripped) and its non-empty rows.

    Each row is its number (the line it starts on, or the sheet's row) and its cells, one
    per header column: text for CSV and sheets, JSON values (None when absent) for JSONL.
    ``problems`` are rows that could not be split into cells; ``notes`` say what was
    assumed (the delimiter, a header below a title).
    """

    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[Any, ...]], ...]
    problems: tuple[RowProblem, ...] = ()
    notes: tuple[str, ...] = ()


def short(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a cell may hold a novel)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<a number of about {int(value.bit_length() * 0.30103)} digits>"
    shown = repr(value)
    if len(shown) > limit:
        shown = f"{shown[: limit - 15]}... ({len(shown)} characters)"
    return shown


_NUMBER: Final = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")


def is_number(text: str) -> bool:
    """Whether a cell's text is a number (a header cell that is one is data, not a name)."""
    return _NUMBER.fullmatch(text.strip()) is not None
