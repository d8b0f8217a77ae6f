""".xlsx product lists: a sheet's cells as the sheet shows them, read-only with openpyxl.

The first sheet or ``--sheet NAME``; the header is found below a title row; empty rows are
skipped; numbers keep the decimals their format shows (``12`` not ``12.0``), dates read as
dates.
"""

from __future__ import annotations

import datetime
import re
import warnings
from pathlib import Path
from typing import Any, Final

from odiqueue._cli._table import InputError, RowProblem, Table, is_number

__all__ = ["HEADER_SEARCH_ROWS", "xlsx_table"]

#: Rows of a sheet searched for its header (a title and a blank row may come first).
HEADER_SEARCH_ROWS: Final = 10


def xlsx_table(path: Path, sheet: str | None) -> Table:
    """The header and rows of a workbook's first sheet (or ``sheet``, any case)."""
    try:
        import openpyxl
    except ImportError:
        raise InputError(
            f"{path}: reading .xlsx needs openpyxl: pip install 'odiqueue[xlsx]'"
        ) from None
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it skips; the cells are what count.
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged or foreign file
        raise InputError(f"{path}: cannot read it as an .xlsx workbook ({exc})") from None
    try:
        if sheet is None:
            if not book.worksheets:
                raise InputError(f"{path}: the workbook has no sheet")
            ws = book.worksheets[0]
        else:
            found = [name for name in book.sheetnames if name.strip().lower() == sheet.lower()]
            if not found:
                raise InputError(
                    f"{path}: --sheet {sheet!r}: no such sheet; its sheets are "
                    + ", ".join(repr(n) for n in book.sheetnames)
                )
            ws = book[found[0]]
        ws.reset_dimensions()  # some writers record a wrong size: read what is there
        cells = [
            (number, [(c.value, getattr(c, "number_format", None)) for c in row])
            for number, row in enumerate(ws.iter_rows(min_row=1), 1)
        ]
        title = ws.title
    finally:
        book.close()
    filled = [(n, row) for n, row in cells if any(v not in (None, "") for v, _ in row)]
    if not filled:
        raise InputError(f"{path}: sheet {title!r} is empty")
    found_at = _header_row(filled)
    if found_at is None:
        raise InputError(
            f"{path}: found no header row in the first {HEADER_SEARCH_ROWS} rows of sheet "
            f"{title!r}: a product list needs a row of column names above its rows"
        )
    header_number, header_cells = filled[found_at]
    header = tuple(_shown(v, f) for v, f in header_cells)
    while header and not header[-1]:
        header = header[:-1]
    notes = []
    if found_at > 0:
        notes.append(
            f"{path.name}: the header is row {header_number} of sheet {title!r} "
            "(the rows above it are not read)"
        )
    rows: list[tuple[int, tuple[Any, ...]]] = []
    problems: list[RowProblem] = []
    for number, row in filled[found_at + 1 :]:
        shown = [_shown(v, f) for v, f in row]
        beyond = [i for i in range(len(header), len(shown)) if shown[i]]
        if beyond:
            problems.append(
                RowProblem(
                    number,
                    None,
                    f"has a value in column {_letter(beyond[0])}, which has no header",
                )
            )
            continue
        shown += [""] * (len(header) - len(shown))
        rows.append((number, tuple(shown[: len(header)])))
    return Table(header=header, rows=tuple(rows), problems=tuple(problems), notes=tuple(notes))


def _header_row(rows: list[tuple[int, list[tuple[Any, Any]]]]) -> int | None:
    """Where the header is: the first of the first rows that fills at least half the
    table's width with text (a title above it fills one cell; data rows hold numbers)."""
    head = rows[:HEADER_SEARCH_ROWS]
    width = max(sum(v not in (None, "") for v, _ in row) for _, row in head)
    for at, (_, row) in enumerate(head):
        values = [v for v, _ in row if v not in (None, "")]
        if len(values) >= max(1, (width + 1) // 2) and all(
            isinstance(v, str) and not is_number(v) for v in values
        ):
            return at
    return None


def _letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_FIXED: Final = re.compile(r"(#,##)?0(\.(0+))?(%?)")


def _shown(value: Any, number_format: Any) -> str:
    """A cell as the sheet shows it: ``12`` not ``12.0``, dates as dates, the decimals its
    number format asks for (``0.00``, ``#,##0.00``, ``0%``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time():
            return value.date().isoformat()
        spec = "minutes" if value.second == 0 and not value.microsecond else "seconds"
        return value.isoformat(sep=" ", timespec=spec)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return _number(value, str(number_format or "General"))
    return str(value).strip()


def _number(value: float, number_format: str) -> str:
    fixed = _FIXED.fullmatch(number_format.split(";", 1)[0].strip())
    if fixed is not None:
        grouping, decimals = "," if fixed.group(1) else "", len(fixed.group(3) or "")
        if fixed.group(4):
            return f"{value * 100:{grouping}.{decimals}f}%"
        return f"{value:{grouping}.{decimals}f}"
    if isinstance(value, int):
        return str(value)
    # As "General" shows it: 15 significant digits (0.1 + 0.2 is 0.3) and no ".0".
    return format(value, ".15g")
