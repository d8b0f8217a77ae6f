"""A product list's cells: a file in, its header and numbered rows out, whatever it was saved as.

Formats: ``.txt`` (a prompt a line), ``.csv``/``.tsv`` (delimiter sniffed among ``,`` ``;``
tab ``|``), ``.jsonl`` (an object a line) and ``.xlsx`` (first sheet, read-only). Text is
UTF-8 with or without a BOM, UTF-16/32 with a BOM, or what ``--encoding`` names. What the
cells mean (ids, templates, shop exports) is decided elsewhere (``_catalogs``, ``_products``).

Everything a whole file gets wrong (not a product list, not UTF-8, the wrong delimiter) is
one :class:`InputError` with the fix; what one row gets wrong is a :class:`RowProblem`.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import itertools
import json
import re
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = [
    "SUFFIXES",
    "InputError",
    "ReadSettings",
    "RowProblem",
    "Table",
    "decode",
    "read_table",
    "short",
]

#: The file kinds a product list can be, by suffix.
SUFFIXES: Final = (".csv", ".tsv", ".txt", ".jsonl", ".xlsx", ".xlsm")
#: Delimiters tried when a CSV's is not given, in order of preference on a tie.
DELIMITERS: Final = (",", ";", "\t", "|")
MAX_PROBLEMS_SHOWN: Final = 20
#: Rows of a sheet searched for its header (a title and a blank row may come first).
HEADER_SEARCH_ROWS: Final = 10
_SNIFF_CHARS: Final = 64 * 1024
_SNIFF_RECORDS: Final = 50
_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16's: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel .xls (or other Office 97) file"),
)


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
class ReadSettings:
    """How to read the file: ``--delimiter``, ``--encoding`` and ``--sheet`` (None: find out)."""

    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None


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
    what = _binary_kind(data)
    if suffix in (".xlsx", ".xlsm"):
        if not data.startswith(b"PK\x03\x04"):
            raise InputError(
                f"{path}: not an .xlsx workbook ({what or 'it is text'}): "
                "save it from the spreadsheet as .xlsx, or name a text file .csv"
            )
        return _xlsx_table(path, settings.sheet)
    if what is not None:
        if what == "a zip archive" and _is_workbook(path):
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


# --- bytes to text -------------------------------------------------------------------------


def _binary_kind(data: bytes) -> str | None:
    """What the bytes are when they are plainly not text (by their signature), else None."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "a WebP image"
    return None


def _is_workbook(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def decode(data: bytes, encoding: str | None, path: Path) -> str:
    """The file's text. A BOM says what the file is; without one, ``encoding`` (or UTF-8).

    Raises :class:`InputError` naming the line and column of the first byte that does not
    fit, the likely encoding, and the ``--encoding`` flag.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding = name
            break
    else:
        if encoding is None and _looks_utf16(data):
            raise InputError(
                f"{path}: looks like UTF-16 text without a byte order mark: pass "
                f"--encoding {_looks_utf16(data)}"
            )
    try:
        return data.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        where = _position(data, exc.start)
        bad = data[exc.start : exc.start + 1].hex()
        if encoding is not None:
            raise InputError(
                f"{path}: not {encoding} text ({where}: byte 0x{bad}): pass the encoding it "
                "was saved in with --encoding NAME"
            ) from None
        guess = _guess_encoding(data)
        fix = (
            f"it looks like {guess}: pass --encoding {guess}"
            if guess
            else "pass the encoding it was saved in, e.g. --encoding cp1251 or --encoding latin-1"
        )
        raise InputError(f"{path}: not UTF-8 text ({where}: byte 0x{bad}); {fix}") from None


def _looks_utf16(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when NULs fill every other byte of the start (ASCII in UTF-16)."""
    head = data[:2048]
    if len(head) < 4:
        return None
    odd, even = head[1::2], head[0::2]
    if odd.count(0) > 0.6 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _position(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _guess_encoding(data: bytes) -> str | None:
    """The encoding charset-normalizer (when installed) finds likely, if it decodes it all."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - the cli extra brings it
        return None
    best = from_bytes(data[:_SNIFF_CHARS]).best()
    if best is None:
        return None
    name = str(best.encoding)
    try:
        data.decode(name)
    except (UnicodeDecodeError, LookupError):
        return None
    return name


def _lines(text: str) -> list[str]:
    """The file's lines. Not ``str.splitlines``: that also splits at form feeds, U+2028 and
    other characters a prompt may hold, which would cut a row in two and misnumber the rest."""
    return [line.removesuffix("\r") for line in text.split("\n")]


# --- CSV and TSV ---------------------------------------------------------------------------


def _records(text: str, delimiter: str) -> Iterable[tuple[int, list[str]]]:
    """Each record with the line it starts on. The csv module reads the line ends itself,
    so a quoted cell keeps its line breaks."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        number = reader.line_num + 1
        try:
            record = next(reader, None)
        except csv.Error as exc:
            raise InputError(f"line {number}: cannot be read as CSV ({exc})") from None
        if record is None:
            return
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
    if all(_is_number(h) for h in header if h):
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


_NUMBER: Final = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")


def _is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text.strip()) is not None


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


# --- .xlsx ---------------------------------------------------------------------------------


def _xlsx_table(path: Path, sheet: str | None) -> Table:
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
            isinstance(v, str) and not _is_number(v) for v in values
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
