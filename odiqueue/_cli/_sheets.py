"""A product list's cells: a file in, its header and numbered rows out, whatever it was saved as.

Formats: ``.txt`` (a prompt a line), ``.csv``/``.tsv`` (delimiter sniffed among ``,`` ``;``
tab ``|``), ``.jsonl`` (an object a line) and ``.xlsx`` (see ``_workbook``). Text is decoded
as ``_encodings`` says. What the cells mean (ids, templates, shop exports) is decided
elsewhere (``_catalogs``, ``_products``).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs

from odiqueue._cli._encodings import binary_kind, decode, is_workbook
from odiqueue._cli._table import InputError, RowProblem, Table, is_number
from odiqueue._cli._workbook import xlsx_table

__all__ = ["SUFFIXES", "ReadSettings", "read_table", "sniff"]

#: The file kinds a product list can be, by suffix.
SUFFIXES: Final = (".csv", ".tsv", ".txt", ".jsonl", ".xlsx", ".xlsm")
#: Delimiters tried when a CSV's is not given, in order of preference on a tie.
DELIMITERS: Final = (",", ";", "\t", "|")
_SNIFF_CHARS: Final = 64 * 1024
_SNIFF_RECORDS: Final = 50
#: The longest cell read (the csv module's default limit is 128 KiB).
_MAX_CELL: Final = 64 * 1024 * 1024
_NUL_STAND_IN: Final = "\U0010fffe"


@attrs.frozen(kw_only=True)
class ReadSettings:
    """How to read the file: ``--delimiter``, ``--encoding`` and ``--sheet`` (None: find out)."""

    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None


def read_table(path: Path, settings: ReadSettings | None = None) -> Table:
    """The header and rows of the product list at ``path``.

    Raises :class:`InputError` (one line, with the fix) when the file is missing, is not a
    product list (an image, an archive, empty), cannot be decoded, or has no header.
    """
    settings = settings or ReadSettings()
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            f"{path}: use a .csv, .tsv, .xlsx, .jsonl or .txt file (got {suffix or 'no suffix'})"
        )
    _check_settings(path, suffix, settings)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a product list") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    if not data.strip():
        raise InputError(f"{path}: the file is empty (a product list needs a header and rows)")
    what = binary_kind(data)
    if suffix in (".xlsx", ".xlsm"):
        if not data.startswith(b"PK\x03\x04"):
            raise InputError(
                f"{path}: not an .xlsx workbook ({what or 'it is text'}): "
                "save it from the spreadsheet as .xlsx, or name a text file .csv"
            )
        return xlsx_table(path, settings.sheet)
    if what is not None:
        if what == "a zip archive" and is_workbook(path):
            what = "an Excel workbook"
            hint = f"name it {path.stem}.xlsx"
        else:
            hint = "give a .csv, .tsv, .xlsx, .jsonl or .txt product list"
        raise InputError(f"{path}: this is {what}, not a product list: {hint}")
    text = decode(data, settings.encoding, path)
    if suffix == ".jsonl":
        return _jsonl_table(text)
    if suffix == ".txt":
        return Table(
            header=("prompt",),
            rows=tuple(
                (number, (line.strip(),))
                for number, line in enumerate(_lines(text), 1)
                if line.strip() and not line.strip().startswith("#")
            ),
        )
    return _csv_table(text, path, settings.delimiter, tab=suffix == ".tsv")


def _lines(text: str) -> list[str]:
    """The file's lines. Not ``str.splitlines``: that also splits at form feeds, U+2028 and
    other characters a prompt may hold, which would cut a row in two and misnumber the rest."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _check_settings(path: Path, suffix: str, settings: ReadSettings) -> None:
    """A reading flag that does not apply to this kind of file is a mistake, not a no-op."""
    workbook = suffix in (".xlsx", ".xlsm")
    if settings.sheet is not None and not workbook:
        raise InputError(f"--sheet {settings.sheet!r}: {path.name} is not an .xlsx workbook")
    if workbook and settings.encoding is not None:
        raise InputError(f"--encoding: {path.name} is a workbook, which says its own encoding")
    if settings.delimiter is not None and suffix not in (".csv", ".tsv"):
        raise InputError(f"--delimiter: {path.name} is not a .csv or .tsv file")


# --- CSV and TSV ---------------------------------------------------------------------------


def _records(text: str, delimiter: str) -> Iterable[tuple[int, list[str]]]:
    """Each record with the line it starts on. The csv module reads the line ends itself,
    so a quoted cell keeps its line breaks."""
    # Python 3.10's csv module stops at a NUL: it stands in as a noncharacter while the
    # cells are split, so the row that holds it is named (``_products`` refuses it).
    nul = "\x00" in text
    if nul:
        text = text.replace("\x00", _NUL_STAND_IN)
    if csv.field_size_limit() < _MAX_CELL:
        csv.field_size_limit(_MAX_CELL)  # a product description may embed a whole image
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        number = reader.line_num + 1
        try:
            record = next(reader, None)
        except csv.Error as exc:
            raise InputError(f"line {number}: cannot be read as CSV ({exc})") from None
        if record is None:
            return
        if nul:
            record = [cell.replace(_NUL_STAND_IN, "\x00") for cell in record]
        if any(cell.strip() for cell in record):
            yield number, record


def sniff(text: str, *, prefer: str = ",") -> str | None:
    """The delimiter that splits the header into several columns and the rows into as
    many cells, among ``DELIMITERS``; None when none does (a one-column file)."""
    sample = text[:_SNIFF_CHARS]
    best: tuple[float, int, int] | None = None
    chosen = None
    for rank, delimiter in enumerate(sorted(DELIMITERS, key=lambda d: d != prefer)):
        try:
            records = [r for _, r in itertools.islice(_records(sample, delimiter), _SNIFF_RECORDS)]
        except InputError:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        body = records[1:-1] if len(records) > 2 else records[1:]  # the last may be cut
        fits = sum(len(r) == width for r in body) / len(body) if body else 1.0
        score = (fits, width, -rank)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _csv_table(text: str, path: Path, delimiter: str | None, *, tab: bool) -> Table:
    notes: list[str] = []
    given = delimiter is not None
    if delimiter is None:
        default = "\t" if tab else ","
        delimiter = sniff(text, prefer=default) or default
        if delimiter != default:
            notes.append(f"{path.name}: cells are separated by {_named(delimiter)}")
    try:
        records = iter(_records(text, delimiter))
        first = next(records, None)
        if first is None:
            raise InputError(f"{path}: the file is empty (a product list needs a header and rows)")
        header_line, raw_header = first
        header = tuple(h.strip() for h in raw_header)
        rows: list[tuple[int, tuple[Any, ...]]] = []
        problems: list[RowProblem] = []
        for number, record in records:
            if len(record) > len(header):
                problems.append(
                    RowProblem(
                        number,
                        None,
                        f"{len(record)} cells, but the header has {len(header)} columns",
                    )
                )
                continue
            record += [""] * (len(header) - len(record))  # missing cells are empty, as in Excel
            rows.append((number, tuple(cell.strip() for cell in record)))
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    if problems and not rows:
        _whole_file_delimiter(text, path, delimiter, given, len(header), len(problems))
    if all(is_number(h) for h in header if h):
        raise InputError(
            f"{path}: line {header_line} holds numbers, not column names: a product list's "
            "first row is its header (e.g. id,prompt)"
        )
    return Table(header=header, rows=tuple(rows), problems=tuple(problems), notes=tuple(notes))


def _whole_file_delimiter(
    text: str, path: Path, used: str, given: bool, columns: int, bad: int
) -> None:
    """Every row has more cells than the header: say it once, with the delimiter that fits."""
    lines = [line for line in _lines(text) if line.strip()]
    body = "\n".join(lines[1:])
    other = sniff(body)
    if other is not None and other != used:
        cells = len(next(iter(_records(body, other)))[1])
        header_cells = len(next(iter(_records(lines[0], other)))[1])
        read = "given as" if given else "read with"
        if header_cells == cells:
            raise InputError(
                f"{path}: every row has {cells} cells separated by {_named(other)}, but the "
                f"header was {read} {_named(used)}: pass --delimiter {_flag(other)}"
            )
        raise InputError(
            f"{path}: every row has {cells} cells separated by {_named(other)}, but the header "
            f"has {header_cells} with it: make the header use {_named(other)} too"
        )
    raise InputError(
        f"{path}: all {bad} rows have more cells than the header's {columns} column(s) "
        f"(separated by {_named(used)}): check the header, or pass --delimiter"
    )


def _named(delimiter: str) -> str:
    return "tabs" if delimiter == "\t" else repr(delimiter)


def _flag(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else f"'{delimiter}'"


# --- JSONL ---------------------------------------------------------------------------------


def _jsonl_table(text: str) -> Table:
    columns: dict[str, int] = {}
    objects: list[tuple[int, dict[str, Any]]] = []
    problems: list[RowProblem] = []
    for number, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(RowProblem(number, None, f"not valid JSON ({exc.msg})"))
            continue
        except ValueError:  # an integer beyond Python's limit on digits
            problems.append(RowProblem(number, None, "holds a number with too many digits to read"))
            continue
        except RecursionError:
            problems.append(RowProblem(number, None, "nested too deeply to read"))
            continue
        if not isinstance(value, dict):
            problems.append(RowProblem(number, None, "each line must be a JSON object"))
            continue
        row = {str(k).strip(): v for k, v in value.items()}
        for name in row:
            columns.setdefault(name, len(columns))
        objects.append((number, row))
    header = tuple(columns)
    rows = tuple(
        (number, tuple(_strip(row.get(name)) for name in header)) for number, row in objects
    )
    return Table(header=header, rows=rows, problems=tuple(problems))


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value
