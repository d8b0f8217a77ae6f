"""Product lists for the command line: TXT, CSV and JSONL rows to validated batch items.

Every row is checked before anything is sent; problems are collected (not raised one by one)
so the user fixes the whole file in one go, each named by row number, column and reason.
"""

from __future__ import annotations

import csv
import io
import json
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from odiqueue._errors import InvalidParameterError
from odiqueue._models import BatchItem
from odiqueue._naming import DEFAULT_TEMPLATE, image_path, literal_template
from odiqueue._request import PARAMETERS, ImageRequest

__all__ = ["InputError", "RowProblem", "read_items", "read_table"]

#: Columns that set a request parameter (its name, or its short name), to the field.
PARAMETER_COLUMNS: Final = {column: p.name for p in PARAMETERS for column in p.columns}
_INT_FIELDS: Final = frozenset(p.name for p in PARAMETERS if p.number)
MAX_PROBLEMS_SHOWN: Final = 20


@attrs.frozen
class RowProblem:
    """One thing wrong with one row."""

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


def _file_names(item: BatchItem) -> list[str]:
    """The names the row's images are saved under (lower-cased), when the row fixes them."""
    if item.name is not None:
        template = literal_template(item.name)
    elif item.key is not None:
        template = DEFAULT_TEMPLATE
    else:
        return []  # named by a digest of the request: two such rows never share a name
    count = item.request.count
    return [
        image_path(
            Path(),
            template,
            key=item.key or "",
            index=index,
            request_id="",
            ext=item.request.format.extension,
            count=count,
        ).name.lower()
        for index in range(count)
    ]


def read_items(
    path: Path, *, defaults: Mapping[str, Any], template: str | None = None
) -> list[tuple[int, BatchItem]]:
    """Read and validate every row of ``path`` (.txt, .csv or .jsonl), with row numbers.

    ``defaults`` are request parameters for every row (a row's own column wins);
    ``template`` builds the prompt from a row's columns (``{name}``, ``{color}``...).
    Raises :class:`InputError` listing every bad row; nothing is returned half-checked.
    """
    suffix, text = _read_text(path)
    if template is not None:
        _check_template(template)
    rows = _READERS[suffix](text, False)
    items: list[tuple[int, BatchItem]] = []
    problems: list[RowProblem] = []
    keys: dict[str, int] = {}
    names: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, RowProblem):
            problems.append(row)
            continue
        item = _item(number, row, defaults, template, problems)
        if item is None:
            continue
        if item.key is not None:
            if item.key in keys:
                problems.append(
                    RowProblem(number, "id", f"{item.key!r} is also the id of row {keys[item.key]}")
                )
                continue
            keys[item.key] = number
        files = _file_names(item)
        clash = next((name for name in files if name in names), None)
        if clash is not None:
            problems.append(
                RowProblem(
                    number,
                    "filename" if item.name is not None else "id",
                    f"its image would be saved as {clash!r}, like row {names[clash]}'s "
                    "(names are compared as saved: cleaned, with extension, ignoring case)",
                )
            )
            continue
        names.update(dict.fromkeys(files, number))
        items.append((number, item))
    if problems:
        raise InputError(
            f"{path}: {len(problems)} row(s) need fixing, nothing was sent:", tuple(problems)
        )
    if not items:
        raise InputError(f"{path}: no rows to generate")
    return items


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """The rows of ``path`` as written, for tables that give them back to the user: the
    columns in file order (headers as written) and each row's cells by row number. Rows are
    not checked here (:func:`read_items` does that); unreadable ones are left out."""
    suffix, text = _read_text(path)
    columns: dict[str, None] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix == ".csv":
        header = next(csv.reader(io.StringIO(text, newline="")), None) or []
        columns.update(dict.fromkeys(h.strip() for h in header if h.strip()))
    for number, row in _READERS[suffix](text, True):
        if not isinstance(row, RowProblem):
            columns.update(dict.fromkeys(row))
            rows.append((number, row))
    return list(columns), rows


def _read_text(path: Path) -> tuple[str, str]:
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise InputError(f"{path}: use a .txt, .csv or .jsonl file (got {suffix or 'no suffix'})")
    try:
        return suffix, path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None


def _lines(text: str) -> list[str]:
    """The file's lines. Not ``str.splitlines``: that also splits at form feeds, U+2028 and
    other characters a prompt may hold, which would cut a row in two and misnumber the rest."""
    return [line.removesuffix("\r") for line in text.split("\n")]


# Each reader takes the text and ``as_written``: keep headers as the file spells them (for
# tables given back to the user) instead of lower-cased (for matching columns).


def _txt_rows(text: str, as_written: bool) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    for number, line in enumerate(_lines(text), 1):
        prompt = line.strip()
        if prompt and not prompt.startswith("#"):
            yield number, {"prompt": prompt}


def _csv_rows(text: str, as_written: bool) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    # The csv module reads the line ends itself, so a quoted cell keeps its line breaks.
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        return
    headers = [h.strip() if as_written else h.strip().lower() for h in header]
    while True:
        number = reader.line_num + 1  # a row is named by its first line
        record = next(reader, None)
        if record is None:
            return
        if len(record) > len(headers):
            yield number, RowProblem(number, None, "more cells than the header has columns")
            continue
        record += [""] * (len(headers) - len(record))  # missing cells are empty, as in Excel
        cells = {k: v.strip() for k, v in zip(headers, record, strict=True) if k}
        if any(cells.values()):
            yield number, cells


def _jsonl_rows(text: str, as_written: bool) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    for number, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RowProblem(number, None, f"not valid JSON ({exc.msg})")
            continue
        if not isinstance(value, dict):
            yield number, RowProblem(number, None, "each line must be a JSON object")
            continue
        yield number, {str(k) if as_written else str(k).lower(): v for k, v in value.items()}


_READERS: Final = {".txt": _txt_rows, ".csv": _csv_rows, ".jsonl": _jsonl_rows}


def _item(
    number: int,
    row: Mapping[str, Any],
    defaults: Mapping[str, Any],
    template: str | None,
    problems: list[RowProblem],
) -> BatchItem | None:
    before = len(problems)
    if template is not None:
        try:
            prompt: object = template.format_map(_Cells(row))
        except _MissingColumn as exc:
            problems.append(
                RowProblem(number, exc.column, "the template needs it, but it is empty")
            )
            return None
    else:
        prompt = row.get("prompt")
        if prompt in (None, ""):
            problems.append(RowProblem(number, "prompt", "empty (or pass --template)"))
            return None
    params = dict(defaults)
    for column, value in row.items():
        field = PARAMETER_COLUMNS.get(column)
        if field is None or value in (None, ""):
            continue
        params[field] = _coerce(number, column, field, value, problems)
    key = _text(row.get("id"))
    name = _text(row.get("filename"))
    if len(problems) > before:
        return None
    try:
        request = ImageRequest(prompt, **params)  # type: ignore[arg-type]
    except InvalidParameterError as exc:
        column = "prompt" if exc.field == "prompt" else _column_for(exc.field, row)
        problems.append(RowProblem(number, column, str(exc)))
        return None
    return BatchItem(request, key=key, name=name)


def _coerce(number: int, column: str, field: str, value: Any, problems: list[RowProblem]) -> Any:
    if field in _INT_FIELDS and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            problems.append(RowProblem(number, column, f"{value!r} is not a whole number"))
            return None
    return value


def _column_for(field: str, row: Mapping[str, Any]) -> str:
    for column, target in PARAMETER_COLUMNS.items():
        if target == field and row.get(column) not in (None, ""):
            return column
    return field


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _check_template(template: str) -> None:
    """Only ``{column}`` fields: a column's text goes in as it is, never formatted,
    converted, indexed or looked up as an attribute (``{name.upper}`` would send the
    name of a Python method as part of a paid prompt)."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError(f"--template {template!r} is malformed: {exc}") from None
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            shown = (
                "{"
                + field
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            raise InputError(
                f"--template {template!r}: {shown} is not a column: use {{column}} with a "
                "column name from the header, nothing after it (write {{ and }} for braces)"
            )


class _MissingColumn(KeyError):
    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column


class _Cells(dict[str, str]):
    """Row cells for ``str.format_map``: an empty or absent cell is a clear error."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        super().__init__({k: "" if v is None else str(v) for k, v in row.items()})

    def __missing__(self, column: str) -> str:
        raise _MissingColumn(column)

    def __getitem__(self, column: str) -> str:
        value = super().__getitem__(column.lower())
        if not value:
            raise _MissingColumn(column)
        return value
