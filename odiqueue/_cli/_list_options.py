"""The command line's options for reading a product list, beside the reader they set."""

from __future__ import annotations

import argparse
import codecs

from odiqueue._cli._products import ListOptions
from odiqueue._cli._sheets import ReadSettings

__all__ = ["add_list_options", "list_options"]


def add_list_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that say how to read INPUT (beside its reader, where they apply)."""
    group = parser.add_argument_group("product list")
    group.add_argument(
        "--delimiter",
        type=_delimiter,
        metavar="CHAR",
        help="what separates a CSV's cells: , ; | or tab (default: found from the file; .tsv: tab)",
    )
    group.add_argument(
        "--encoding",
        type=_encoding,
        metavar="NAME",
        help="the text's encoding when it is not UTF-8, e.g. cp1251 or latin-1 (a UTF-8 or "
        "UTF-16 byte order mark is always followed)",
    )
    group.add_argument("--sheet", metavar="NAME", help=".xlsx sheet to read (default: the first)")
    group.add_argument(
        "--id-column",
        metavar="NAME",
        help="the column with each row's id: its key across runs and its file name "
        "(default: a column called id, sku or handle; Shopify: Handle and options)",
    )
    group.add_argument(
        "--name-template",
        metavar="TEMPLATE",
        help="file names from columns, e.g. '{Handle}-{Option1 Value}' (default: the "
        "filename column, else the id)",
    )
    group.add_argument(
        "--fill-down",
        type=_columns,
        metavar="COL,...",
        help="columns whose empty cells take the value from the row above, or 'none' "
        "(default: a Shopify export's product fields, within each Handle)",
    )
    group.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send the valid rows and list the others (row, column, reason) in the summary "
        "and failed.csv (default: nothing is sent while any row is bad)",
    )


def list_options(args: argparse.Namespace) -> ListOptions:
    """The :class:`ListOptions` the command line's arguments ask for."""
    return ListOptions(
        template=args.template,
        name_template=args.name_template,
        id_column=args.id_column,
        fill_down=args.fill_down,
        skip_invalid=args.skip_invalid,
        read=ReadSettings(delimiter=args.delimiter, encoding=args.encoding, sheet=args.sheet),
    )


def _delimiter(value: str) -> str:
    if value.lower() in ("tab", "\\t", "\t"):
        return "\t"
    if len(value) != 1 or value.isalnum() or value in "\"'\r\n ":
        raise argparse.ArgumentTypeError(
            f"{value!r}: give one character such as , ; | or the word tab"
        )
    return value


def _encoding(value: str) -> str:
    try:
        return codecs.lookup(value).name
    except LookupError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an encoding Python knows (e.g. cp1251, latin-1, utf-16)"
        ) from None


def _columns(value: str) -> tuple[str, ...]:
    if value.strip().lower() == "none":
        return ()
    return tuple(name.strip() for name in value.split(",") if name.strip())
