"""Shop exports as they are exported: which file this is, which column is a row's id, and
the empty cells a row inherits from the rows above it.

- **Shopify** (product CSV): a product with several variants or photos spans several rows
  sharing its ``Handle``; only the first has ``Title`` and the other product fields. Those
  are filled down within the Handle, each variant's id is the Handle with its option
  values (``tee-Red-M``; Shopify's ``Default Title`` left out), and a row that only adds a
  photo (no variant fields) is the product's, not an item of its own.
- **WooCommerce** (product export): the id is ``SKU``, or ``ID`` where SKU is empty.
- Any other file: ``--id-column``, else the first column called ``id``, ``sku`` or
  ``handle`` (any case); ``--fill-down`` fills empty cells from the row above.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal

import attrs

from odiqueue._cli._fields import Columns

__all__ = ["Catalog", "Identity", "recognise"]

Kind = Literal["shopify", "woocommerce", "plain"]

#: Columns that name a row's id when ``--id-column`` is not given, in order of preference.
ID_COLUMNS: Final = ("id", "sku", "handle")
_SHOPIFY_MARKS: Final = ("handle", "title", "body (html)", "vendor")
_SHOPIFY_ROWS: Final = ("variant sku", "option1 value", "image src")
#: The product's own fields in a Shopify export (the variant's and image's are per row).
SHOPIFY_PRODUCT_COLUMNS: Final = (
    "Title",
    "Body (HTML)",
    "Vendor",
    "Product Category",
    "Type",
    "Tags",
    "Published",
    "Option1 Name",
    "Option2 Name",
    "Option3 Name",
    "Gift Card",
    "SEO Title",
    "SEO Description",
    "Status",
)
_SHOPIFY_OPTIONS: Final = ("Option1 Value", "Option2 Value", "Option3 Value")
#: Cells of a variant row: a row with none of them only adds a photo to its product.
_SHOPIFY_VARIANT: Final = (*_SHOPIFY_OPTIONS, "Variant SKU", "Variant Price")
#: The option value Shopify gives a product without variants.
_SHOPIFY_NO_OPTION: Final = "default title"
_WOO_MARKS: Final = ("sku", "name", "images")
_WOO_ROWS: Final = ("type", "regular price", "published")


def recognise(columns: Columns) -> Kind:
    """Which export the header is (by the columns only Shopify's or WooCommerce's have)."""
    if all(m in columns for m in _SHOPIFY_MARKS) and any(m in columns for m in _SHOPIFY_ROWS):
        return "shopify"
    if all(m in columns for m in _WOO_MARKS) and any(m in columns for m in _WOO_ROWS):
        return "woocommerce"
    return "plain"


@attrs.frozen
class Identity:
    """How a row's id (its key across runs, and its file name) is found."""

    #: The columns read, in order: the first non-empty one is the id (Shopify: joined).
    positions: tuple[int, ...]
    #: The column named in a message about the id.
    column: str
    #: Whether an empty id is a row problem (an id column the user named).
    required: bool = False
    #: Shopify: the Handle, then its option values joined with ``-``.
    joined: bool = False

    def of(self, cells: Sequence[Any]) -> str | None:
        """The row's id, or None when its id cells are empty."""
        values = [_text(cells[p]) for p in self.positions]
        if not self.joined:
            return next((v for v in values if v), None)
        if not values[0]:
            return None
        options = [v for v in values[1:] if v and v.casefold() != _SHOPIFY_NO_OPTION]
        return "-".join([values[0], *options])


@attrs.frozen
class Catalog:
    """What the header says about the file: its kind, the id rule, the fill-down columns."""

    kind: Kind
    identity: Identity | None
    #: Columns filled down (positions) and the column grouping the rows (None: none).
    fill_down: tuple[int, ...] = ()
    group: int | None = None
    #: Positions of the cells a Shopify variant row has (none: a photo row).
    variant: tuple[int, ...] = ()

    @classmethod
    def of(
        cls,
        columns: Columns,
        source: str,
        *,
        id_column: str | None = None,
        fill_down: Sequence[str] | None = None,
    ) -> Catalog:
        """The catalog rules for a header; raises :class:`InputError` for a named column
        (``--id-column``, ``--fill-down``) that the header does not have."""
        kind = recognise(columns)
        identity = _identity(columns, kind, id_column, source)
        if fill_down is None:
            names = (
                [c for c in SHOPIFY_PRODUCT_COLUMNS if c in columns] if kind == "shopify" else []
            )
        else:
            names = list(fill_down)
        positions = []
        for name in names:
            position = columns.find(name)
            if position is None:
                raise columns.unknown("--fill-down", name, source)
            positions.append(position)
        group = columns.find("handle") if kind == "shopify" else None
        variant = tuple(p for p in (columns.find(c) for c in _SHOPIFY_VARIANT) if p is not None)
        return cls(kind, identity, tuple(positions), group, variant if kind == "shopify" else ())

    def describe(self, source: str) -> str | None:
        """A note on what was recognised, or None for a plain file."""
        if self.kind == "shopify":
            return (
                f"{source}: a Shopify product export: a product's fields fill its variant "
                "rows, and each variant's id is its Handle with its options"
            )
        if self.kind == "woocommerce":
            return f"{source}: a WooCommerce product export: ids from SKU (ID where empty)"
        return None

    def fill(
        self, rows: Sequence[tuple[int, tuple[Any, ...]]]
    ) -> list[tuple[int, tuple[Any, ...], bool]]:
        """The rows with empty fill-down cells taken from above (within a group, if any),
        each flagged whether it is an item (False: a Shopify row adding only a photo)."""
        out: list[tuple[int, tuple[Any, ...], bool]] = []
        above: list[Any] | None = None
        seen: set[str] = set()
        for number, cells in rows:
            row = list(cells)
            group = None if self.group is None else _text(row[self.group]) or ""
            if above is not None and (self.group is None or group == _text(above[self.group])):
                for position in self.fill_down:
                    if not _text(row[position]):
                        row[position] = above[position]
            item = True
            if self.kind == "shopify" and group in seen:
                item = any(_text(row[p]) for p in self.variant)
            if group is not None:
                seen.add(group)
            above = row
            out.append((number, tuple(row), item))
        return out


def _identity(columns: Columns, kind: Kind, id_column: str | None, source: str) -> Identity | None:
    if id_column is not None:
        position = columns.find(id_column)
        if position is None:
            raise columns.unknown("--id-column", id_column, source)
        return Identity((position,), columns.header[position], required=True)
    if kind == "shopify":
        handle = columns.find("handle")
        assert handle is not None
        options = tuple(p for p in (columns.find(c) for c in _SHOPIFY_OPTIONS) if p is not None)
        return Identity((handle, *options), columns.header[handle], joined=True)
    if kind == "woocommerce":
        found = [p for p in (columns.find("sku"), columns.find("id")) if p is not None]
        return Identity(tuple(found), columns.header[found[0]])
    for name in ID_COLUMNS:
        position = columns.find(name)
        if position is not None:
            return Identity((position,), columns.header[position])
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
