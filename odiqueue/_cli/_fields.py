"""Columns as written: finding a header's columns by name, and templates filled from a row.

A column is found ignoring case and the spaces around (and doubled inside) its name, so
``{Main Colour}``, ``{main colour}`` and ``{ Main  Colour }`` are one column. A template is
text with ``{column}`` fields (``{{`` and ``}}`` for braces) and an optional filter after a
bar: ``{Body (HTML)|text}`` is the cell as plain text, ``{Images|first}`` the first of a
comma-separated list. A cell's text goes in as it is: never formatted or evaluated.
"""

from __future__ import annotations

import difflib
import functools
import html.parser
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from odiqueue._cli._table import InputError

__all__ = ["FILTERS", "Columns", "Template", "html_text", "norm"]

_MAX_COLUMNS_SHOWN: Final = 40


def norm(name: str) -> str:
    """A column name as it is matched: spaces trimmed and collapsed, case folded."""
    return " ".join(name.split()).casefold()


class Columns:
    """A header's column names, found as written (see :func:`norm`)."""

    def __init__(self, header: Sequence[str]) -> None:
        self.header = tuple(header)
        self._at: dict[str, list[int]] = {}
        for position, name in enumerate(self.header):
            if name.strip():
                self._at.setdefault(norm(name), []).append(position)

    def find(self, name: str) -> int | None:
        """The position of column ``name`` (the first, should two share it), or None."""
        found = self._at.get(norm(name))
        return found[0] if found else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and norm(name) in self._at

    def twice(self, name: str) -> bool:
        """Whether two columns of the header are called ``name``."""
        return len(self._at.get(norm(name), ())) > 1

    def nearest(self, name: str) -> str | None:
        """The column whose name is closest to ``name``, as written (for "did you mean")."""
        names = {norm(h): h for h in reversed(self.header) if h.strip()}
        close = difflib.get_close_matches(norm(name), list(names), n=1, cutoff=0.6)
        return names[close[0]] if close else None

    def listing(self) -> str:
        """The column names, for a message."""
        names = [h for h in self.header if h.strip()]
        shown = ", ".join(names[:_MAX_COLUMNS_SHOWN])
        if len(names) > _MAX_COLUMNS_SHOWN:
            shown += f", ... ({len(names)} in all)"
        return shown

    def unknown(self, what: str, name: str, source: str) -> InputError:
        """The error for a column ``name`` that is not in the header of ``source``."""
        near = self.nearest(name)
        hint = f" (did you mean {near!r}?)" if near else ""
        return InputError(
            f"{what}: {name!r} is not a column of {source}{hint}; its columns are: {self.listing()}"
        )


class _Text(html.parser.HTMLParser):
    """Collects an HTML fragment's text, a line per block, leaving scripts and styles out."""

    _BLOCKS: Final = frozenset(
        {"p", "br", "div", "li", "ul", "ol", "tr", "td", "th", "table", "section", "article"}
        | {"blockquote", "h1", "h2", "h3", "h4", "h5", "h6"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.lines.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.lines.append("")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.lines[-1] += data


@functools.lru_cache(maxsize=256)  # a Shopify product's variant rows share its description
def html_text(fragment: str) -> str:
    """An HTML fragment as one line of plain text: tags dropped, entities decoded, blocks
    (paragraphs, list items) ended with a full stop unless they end in punctuation."""
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    text = ""
    for line in (" ".join(line.split()) for line in parser.lines):
        if not line:
            continue
        if text:
            text += " " if text[-1] in ".!?:;," else ". "
        text += line
    return text


def _first(cell: str) -> str:
    return cell.split(",", 1)[0].strip()


#: What a ``|filter`` after a field does to the cell.
FILTERS: Final[dict[str, Callable[[str], str]]] = {"text": html_text, "first": _first}

_TOKENS: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@attrs.frozen
class _Field:
    column: str
    position: int
    filter: str | None


class MissingCell(Exception):
    """The row's cell for a template field is empty."""

    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column


@attrs.frozen
class Template:
    """A template bound to a header: literal text and fields, by column position."""

    text: str
    parts: tuple[str | _Field, ...]

    @classmethod
    def bind(cls, text: str, option: str, columns: Columns, source: str) -> Template:
        """Check ``text`` (given as ``option``) against the header; raise
        :class:`InputError` once for a malformed template or an unknown field."""
        parts: list[str | _Field] = []
        at = 0
        for match in _TOKENS.finditer(text):
            if match.start() > at:
                parts.append(text[at : match.start()])
            at = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                parts.append(token[0])
                continue
            field = match.group(1)
            if field is None:
                raise InputError(
                    f"{option} {text!r}: a lone {token!r} at character {match.start() + 1} "
                    "(write {{ and }} for braces)"
                )
            parts.append(_bind_field(field, option, columns, source))
        parts.append(text[at:])
        return cls(text, tuple(p for p in parts if p != ""))

    @property
    def fields(self) -> tuple[_Field, ...]:
        """The fields, in order."""
        return tuple(p for p in self.parts if isinstance(p, _Field))

    def fill(self, cells: Sequence[Any]) -> str:
        """The text for one row; raises :class:`MissingCell` for an empty field."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = cells[part.position]
            text = "" if value is None else str(value).strip()
            if part.filter is not None:
                text = FILTERS[part.filter](text)
            if not text:
                raise MissingCell(part.column)
            out.append(text)
        return "".join(out)


def _bind_field(field: str, option: str, columns: Columns, source: str) -> _Field:
    if not field.strip():
        raise InputError(f"{option}: {{}} names no column: write {{column}} with a header's name")
    name, bar, wanted = field.rpartition("|")
    if field not in columns and bar:
        if wanted.strip() not in FILTERS:
            raise InputError(
                f"{option}: {{{field}}}: {wanted.strip()!r} is not a filter; the filters are "
                + ", ".join(f"|{f}" for f in FILTERS)
            )
        filter_: str | None = wanted.strip()
    else:
        name, filter_ = field, None
    position = columns.find(name)
    if position is None:
        raise columns.unknown(option, name.strip(), source)
    if columns.twice(name):
        raise InputError(
            f"{option}: two columns of {source} are called {name.strip()!r}: rename one"
        )
    return _Field(columns.header[position], position, filter_)
