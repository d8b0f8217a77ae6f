"""Product lists to requests: a table's rows (see ``_sheets``) become validated batch items.

Every row is checked before anything is sent; problems are collected (not raised one by one)
so the user fixes the whole file in one go, each named by row number, column and reason.
With ``--skip-invalid`` the valid rows go ahead and the others are listed, never dropped
silently. Columns are found as written (see ``_fields``); ids and shop exports follow
``_catalogs``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from odiqueue._cli import _sheets
from odiqueue._cli._catalogs import Catalog, Identity
from odiqueue._cli._edits import RowInputs, blame, check_request, row_inputs
from odiqueue._cli._fields import Columns, MissingCell, Template
from odiqueue._cli._sheets import ReadSettings
from odiqueue._cli._table import InputError, RowProblem, short
from odiqueue._config import DEFAULT_MODEL
from odiqueue._errors import InvalidParameterError
from odiqueue._models import BatchItem
from odiqueue._naming import image_path, literal_template, name_key
from odiqueue._request import PARAMETERS, ImageRequest

__all__ = [
    "ROW_NAME_TEMPLATE",
    "InputError",
    "ListOptions",
    "ProductList",
    "RowProblem",
    "file_names",
    "read_items",
    "read_products",
    "read_table",
]

#: Columns that set a request parameter (its name, or its short name), to the field.
PARAMETER_COLUMNS: Final = {column: p.name for p in PARAMETERS for column in p.columns}
_INT_FIELDS: Final = frozenset(p.name for p in PARAMETERS if p.number)
_CHOSEN_FROM_A_FEW: Final = {p.name: p.choices is not None for p in PARAMETERS}
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
#: How the command line names a row's images: its id, and ``_0``, ``_1``... only when the
#: row asks for several (a folder an earlier version filled keeps its ``_0`` names: resumed
#: items are found by the names their manifest recorded).
ROW_NAME_TEMPLATE: Final = "{key}.{ext}"


@attrs.frozen(kw_only=True)
class ListOptions:
    """How to read a product list and make its rows into requests (the command line's
    ``--template``, ``--name-template``, ``--id-column``, ``--fill-down``,
    ``--skip-invalid``, and the reading settings)."""

    template: str | None = None
    name_template: str | None = None
    id_column: str | None = None
    fill_down: tuple[str, ...] | None = None
    skip_invalid: bool = False
    read: ReadSettings = attrs.field(factory=ReadSettings)


@attrs.frozen
class ProductList:
    """The rows to generate (row number, item), the rows skipped as invalid (with
    ``--skip-invalid``: one entry per problem), and notes on what was assumed."""

    items: list[tuple[int, BatchItem]]
    skipped: tuple[RowProblem, ...] = ()
    notes: tuple[str, ...] = ()


def read_items(
    path: Path,
    *,
    defaults: Mapping[str, Any],
    template: str | None = None,
    inputs: RowInputs | None = None,
) -> list[tuple[int, BatchItem]]:
    """Read and validate every row of ``path``, with row numbers (see :func:`read_products`)."""
    options = ListOptions(template=template)
    return read_products(path, defaults=defaults, options=options, inputs=inputs).items


def read_products(
    path: Path,
    *,
    defaults: Mapping[str, Any],
    options: ListOptions | None = None,
    inputs: RowInputs | None = None,
) -> ProductList:
    """Read and check every row of the product list at ``path``.

    ``defaults`` are request parameters for every row (a row's own column wins); ``inputs``
    says where a row's input images come from and which model a row without its own is
    checked against (see ``_edits``).
    Raises :class:`InputError` for a whole-file problem, and for bad rows unless
    ``options.skip_invalid`` (then they are returned as ``skipped``); nothing is returned
    half-checked.
    """
    options = options or ListOptions()
    if inputs is None:
        inputs = RowInputs(model=DEFAULT_MODEL, base=path.parent)
    table = _sheets.read_table(path, options.read)
    source = path.name
    plan = _Plan.of(table.header, source, options, has_rows=bool(table.rows))
    notes = list(table.notes)
    described = plan.catalog.describe(source)
    if described:
        notes.append(described)
    problems = list(table.problems)
    items: list[tuple[int, BatchItem]] = []
    keys: dict[str, int] = {}
    names: dict[str, tuple[str, int]] = {}
    photo_rows = 0
    rows = plan.catalog.fill(table.rows)
    for number, cells, is_item in rows:
        if not is_item:
            photo_rows += 1
            continue
        item = plan.item(number, cells, defaults, inputs, problems)
        if item is None:
            continue
        if item.key is not None:
            if item.key in keys:
                column = plan.catalog.identity.column if plan.catalog.identity else "id"
                problems.append(
                    RowProblem(
                        number, column, f"{short(item.key)} is also the id of row {keys[item.key]}"
                    )
                )
                continue
            keys[item.key] = number
        files = file_names(item)
        clash = next((name for name in files if name_key(name) in names), None)
        if clash is not None:
            taken, row = names[name_key(clash)]
            theirs = f"row {row}'s" if taken == clash else f"row {row}'s {taken!r}"
            problems.append(
                RowProblem(
                    number,
                    plan.name_column,
                    f"its image would be saved as {clash!r}, like {theirs} "
                    "(names are compared as saved: cleaned, with extension, ignoring case "
                    "and look-alike forms)",
                )
            )
            continue
        names.update({name_key(name): (name, number) for name in files})
        items.append((number, item))
    if photo_rows:
        notes.append(
            f"{source}: {photo_rows} row(s) only add a photo to the product above them "
            "(no variant): they are the product's, not items of their own"
        )
    problems.sort(key=lambda p: p.row)
    _misread_column(plan, rows, problems, source)
    if problems and not options.skip_invalid:
        raise InputError(
            f"{path}: {len(problems)} row(s) need fixing, nothing was sent "
            "(--skip-invalid sends the valid rows and lists these):",
            tuple(problems),
        )
    if not items:
        if problems:
            raise InputError(f"{path}: no valid rows, nothing was sent:", tuple(problems))
        raise InputError(f"{path}: no rows to generate")
    return ProductList(items, tuple(problems), tuple(notes))


def _misread_column(
    plan: _Plan,
    rows: Sequence[tuple[int, tuple[Any, ...], bool]],
    problems: Sequence[RowProblem],
    source: str,
) -> None:
    """A column named like an image parameter whose every value is refused (a shop's
    ``Size`` of S, M, L) is said once, with the fix, instead of once per row."""
    for position, column, field in plan.params:
        if not _CHOSEN_FROM_A_FEW.get(field):
            continue  # only a set of documented values is told apart from product data
        filled = {n: cells[position] for n, cells, item in rows if item and cells[position]}
        refused = {p.row for p in problems if p.column == column}
        if len(filled) < 2 or not refused.issuperset(filled):
            continue
        option = next(p.option for p in PARAMETERS if p.name == field)
        raise InputError(
            f"{source}: column {column!r} sets each row's image {field} (as {option} does), "
            f"but none of its values is one (e.g. {short(next(iter(filled.values())))}): if it "
            f"is the product's, rename the column (e.g. 'Product {column}') and use it in "
            f"--template as {{Product {column}}}"
        )


@attrs.frozen
class _Plan:
    """What each row is read for: the columns found once, from the header."""

    catalog: Catalog
    template: Template | None
    prompt: int | None
    name_template: Template | None
    filename: int | None
    #: Parameter columns: position, column as written, the request field.
    params: tuple[tuple[int, str, str], ...]
    #: Every position read, to check its characters.
    used: tuple[int, ...]
    header: tuple[str, ...]

    @classmethod
    def of(
        cls, header: Sequence[str], source: str, options: ListOptions, *, has_rows: bool
    ) -> _Plan:
        columns = Columns(header)
        catalog = Catalog.of(
            columns, source, id_column=options.id_column, fill_down=options.fill_down
        )
        template = name_template = None
        prompt = None
        if options.template is not None:
            _check_argument("--template", options.template)
            template = Template.bind(options.template, "--template", columns, source)
        else:
            prompt = columns.find("prompt")
            if prompt is None and has_rows:  # (no rows: say what is wrong with them instead)
                raise InputError(
                    f"{source} has no prompt column: pass --template to build the prompt from "
                    f"its columns, e.g. --template {_example(columns, catalog)!r}; its columns "
                    f"are: {columns.listing()}"
                )
        if options.name_template is not None:
            _check_argument("--name-template", options.name_template)
            name_template = Template.bind(options.name_template, "--name-template", columns, source)
        filename = columns.find("filename")
        params = []
        for column, field in PARAMETER_COLUMNS.items():
            position = columns.find(column)
            # A shop export's own columns are product data: its "Images" are the product's
            # photos, an edit's inputs only when named with --image-column.
            if position is not None and not (catalog.kind != "plain" and field == "images"):
                params.append((position, columns.header[position], field))
        used = {p for p, _, _ in params} | {p for p in (prompt, filename) if p is not None}
        for bound in (template, name_template):
            if bound is not None:
                used.update(f.position for f in bound.fields)
        if catalog.identity is not None:
            used.update(catalog.identity.positions)
        return cls(
            catalog,
            template,
            prompt,
            name_template,
            filename,
            tuple(params),
            tuple(sorted(used)),
            tuple(header),
        )

    @property
    def name_column(self) -> str:
        if self.name_template is not None:
            return "--name-template"
        if self.filename is not None:
            return self.header[self.filename]
        return self.catalog.identity.column if self.catalog.identity else "id"

    def item(
        self,
        number: int,
        cells: tuple[Any, ...],
        defaults: Mapping[str, Any],
        inputs: RowInputs,
        problems: list[RowProblem],
    ) -> BatchItem | None:
        """The row's item, or None after adding what is wrong with it to ``problems``."""
        before = len(problems)
        for position in self.used:
            reason = _bad_characters(cells[position])
            if reason:
                problems.append(RowProblem(number, self.header[position], reason))
        if len(problems) > before:
            return None
        prompt = self._fill(self.template, "template", number, cells, problems)
        if self.template is None:
            assert self.prompt is not None
            prompt = _text(cells[self.prompt])
            if prompt is None:
                problems.append(
                    RowProblem(number, self.header[self.prompt], "empty (or pass --template)")
                )
        identity: Identity | None = self.catalog.identity
        key = identity.of(cells) if identity else None
        if key is None and identity is not None and identity.required:
            problems.append(RowProblem(number, identity.column, "empty: every row needs an id"))
        name = self._fill(self.name_template, "name template", number, cells, problems)
        if self.name_template is None and self.filename is not None:
            name = _text(cells[self.filename])
        params = dict(defaults)
        for position, column, field in self.params:
            value = cells[position]
            if value in (None, ""):
                continue
            params[field] = _coerce(number, column, field, value, problems)
        if len(problems) > before or prompt is None:
            return None
        row = {c.strip().lower(): cell for c, cell in zip(self.header, cells, strict=False)}
        came_from, bad = row_inputs(row, params, inputs)
        problems.extend(RowProblem(number, column, reason) for column, reason in bad)
        if bad:
            return None
        try:
            request = ImageRequest(prompt, **params)
        except InvalidParameterError as exc:
            column = blame(self._column_for(exc.field, cells), exc.field, inputs)
            problems.append(RowProblem(number, column, str(exc)))
            return None
        own = frozenset(f for p, _, f in self.params if cells[p] not in (None, ""))
        found = check_request(request, inputs, came_from, own)
        problems.extend(RowProblem(number, column, reason) for column, reason in found)
        return None if found else BatchItem(request, key=key, name=name)

    def _fill(
        self,
        template: Template | None,
        what: str,
        number: int,
        cells: tuple[Any, ...],
        problems: list[RowProblem],
    ) -> str | None:
        if template is None:
            return None
        try:
            return template.fill(cells)
        except MissingCell as missing:
            problems.append(
                RowProblem(number, missing.column, f"the {what} needs it, but it is empty")
            )
            return None

    def _column_for(self, field: str, cells: tuple[Any, ...]) -> str:
        if field == "prompt":
            return "prompt" if self.prompt is None else self.header[self.prompt]
        for position, column, target in self.params:
            if target == field and cells[position] not in (None, ""):
                return column
        return field


def _bad_characters(value: Any) -> str | None:
    """Why a cell's text cannot be sent: a NUL, or half of a UTF-16 pair (from a JSON
    ``\\ud800`` escape), which no API, terminal or file name can carry."""
    if not isinstance(value, str):
        return None
    at = value.find("\x00")
    if at >= 0:
        return f"holds a NUL character (U+0000) at character {at + 1}: remove it"
    half = _SURROGATE.search(value)
    if half is not None:
        return (
            f"holds U+{ord(half.group()):04X} at character {half.start() + 1}, half of a "
            "character (a lone surrogate): write the whole character"
        )
    return None


def _check_argument(option: str, text: str) -> None:
    reason = _bad_characters(text)
    if reason:
        raise InputError(f"{option}: {reason}")


def _example(columns: Columns, catalog: Catalog) -> str:
    for name in ("Title", "Name", "Product Name", "Product"):
        position = columns.find(name)
        if position is not None:
            return f"Studio photo of {{{columns.header[position]}}}"
    ids = set(catalog.identity.positions) if catalog.identity else set()
    first = next((h for p, h in enumerate(columns.header) if h.strip() and p not in ids), "column")
    return f"Studio photo of {{{first}}}"


def file_names(item: BatchItem) -> list[str]:
    """The names a row's images are saved under (made safe), when the row fixes them: by
    its name, or its id; empty for a row named by a digest of its request."""
    if item.name is not None:
        template = literal_template(item.name)
    elif item.key is not None:
        template = ROW_NAME_TEMPLATE
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
        ).name
        for index in range(count)
    ]


def read_table(
    path: Path, settings: ReadSettings | None = None
) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """The rows of ``path`` as written, for tables that give them back to the user: the
    columns in file order (headers as written) and each row's cells by row number. Rows are
    not checked here (:func:`read_products` does that); unreadable ones are left out."""
    table = _sheets.read_table(path, settings)
    named = [(at, name) for at, name in enumerate(table.header) if name]
    columns = list(dict.fromkeys(name for _, name in named))
    rows = []
    for number, cells in table.rows:
        row: dict[str, Any] = {}
        for at, name in named:
            row.setdefault(name, cells[at])  # a repeated column name: the first one
        rows.append((number, row))
    return columns, rows


def _coerce(number: int, column: str, field: str, value: Any, problems: list[RowProblem]) -> Any:
    if field in _INT_FIELDS and isinstance(value, str):
        try:
            return int(value)
        except ValueError:  # also a number with more digits than int() reads
            problems.append(RowProblem(number, column, f"{short(value)} is not a whole number"))
            return None
    return value


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
