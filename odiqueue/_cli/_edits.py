"""An edit's inputs on the command line: which columns and flags give a row's images and mask,
and the checks each row's request gets before anything is sent.

A row's input images are, in order: the cells of each ``--image-column`` (a cell may hold
several references separated by ``|``), the row's own ``images`` column (or JSONL list),
then each ``--image`` (the same for every row, e.g. a logo). Its mask is its
``--mask-column`` cell, else its ``mask`` column, else ``--mask``. A relative path in a cell
is relative to the input file's folder; one given on the command line, to the current one.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from odiqueue._edits import INLINE_MAX_BYTES, check_file, mask_mismatch, refs
from odiqueue._errors import InvalidParameterError
from odiqueue._imageref import ImageRef
from odiqueue._request import ImageRequest

__all__ = [
    "RowInputs",
    "add_edit_options",
    "blame",
    "check_request",
    "row_inputs",
    "take_inputs",
]

#: What separates several references in one cell.
SEPARATOR: Final = "|"


def add_edit_options(parser: argparse.ArgumentParser, *, for_rows: bool) -> None:
    """The options that give an edit its input images (and how local files are sent)."""
    group = parser.add_argument_group(
        "edits (models gpt_image_1_edit, gpt_image_2_edit: --model or a model column)"
    )
    if for_rows:
        group.add_argument(
            "--image-column",
            action="append",
            metavar="COL",
            help="a column whose cells are input images: URLs or files relative to INPUT, "
            f"several separated by '{SEPARATOR}' (repeatable)",
        )
        group.add_argument(
            "--mask-column", metavar="COL", help="a column whose cells are masks (png with alpha)"
        )
    group.add_argument(
        "--image",
        action="append",
        metavar="REF",
        help="an input image (URL or file)"
        + (" for every row" if for_rows else "")
        + " (repeatable)",
    )
    group.add_argument(
        "--mask",
        metavar="REF",
        help="a mask (URL or file; transparent areas are edited)"
        + (" for every row without its own" if for_rows else ""),
    )
    group.add_argument(
        "--upload-url",
        metavar="URL",
        help="upload endpoint for local files over 10 MB, or when the server refuses inline "
        "data (multipart POST, field 'file', same API key), e.g. "
        "https://ADMIN-HOST/api/v1/storage/files (default: none, files are sent inline)",
    )
    group.add_argument(
        "--inline-images",
        choices=["base64", "data-uri"],
        default="base64",
        help="how local files are sent inline: plain base64, or data: URIs",
    )


@attrs.frozen(kw_only=True)
class RowInputs:
    """Where each row's input images come from, and the model a row without one is for."""

    #: The default model (``--model``): a row's own ``model`` column wins.
    model: str
    #: Folder that relative paths in cells are relative to (the input file's).
    base: Path
    #: Columns (lower case) whose cells are input images.
    image_columns: tuple[str, ...] = ()
    #: A column (lower case) whose cells are masks.
    mask_column: str | None = None
    #: Input images every row gets after its own (``--image``).
    images: tuple[ImageRef, ...] = ()
    #: The mask of every row without its own (``--mask``).
    mask: ImageRef | None = None
    #: Whether an upload endpoint is configured (files over 10 MB need one).
    can_upload: bool = False
    #: The option that set each field for every row (``size`` -> ``--size``), for messages.
    flags: Mapping[str, str] = attrs.field(factory=dict)


def take_inputs(
    args: argparse.Namespace, input_file: Path, flags: Mapping[str, str] | None = None
) -> RowInputs | str:
    """The command line's edit options, checked; a message naming the flag when one is bad."""
    images: list[ImageRef] = []
    for text in args.image or ():
        ref = _flag_ref("--image", text)
        if isinstance(ref, str):
            return ref
        images.append(ref)
    mask = None if args.mask is None else _flag_ref("--mask", args.mask, mask=True)
    if isinstance(mask, str):
        return mask
    return RowInputs(
        model=args.model,
        base=input_file.parent,
        image_columns=tuple(c.strip().lower() for c in getattr(args, "image_column", None) or ()),
        mask_column=(getattr(args, "mask_column", None) or "").strip().lower() or None,
        images=tuple(images),
        mask=mask,
        can_upload=args.upload_url is not None,
        flags=dict(flags or {}),
    )


def _flag_ref(flag: str, text: str, *, mask: bool = False) -> ImageRef | str:
    try:
        ref = ImageRef.of(text)
    except ValueError as exc:
        return f"{flag} {text[:80]}: {exc}"
    if ref.path is not None:
        problem = check_file(ref.path, mask=mask)
        if problem is not None:
            return f"{flag} {text}: {problem}"
    return ref


def row_inputs(
    row: Mapping[str, Any], params: dict[str, Any], inputs: RowInputs
) -> tuple[dict[ImageRef, str], list[tuple[str, str]]]:
    """Set ``params["images"]`` and ``params["mask"]`` from the row and the options.

    Returns the column each reference came from (for messages) and the ``(column, reason)``
    of each cell that is no reference.
    """
    came_from: dict[ImageRef, str] = {}
    problems: list[tuple[str, str]] = []
    found: list[ImageRef] = []

    def take(column: str, value: object, into: list[ImageRef]) -> None:
        texts = value if isinstance(value, list) else str(value).split(SEPARATOR)
        for text in texts:
            if not isinstance(text, str):
                problems.append((column, f"{text!r} is not a URL or a file path"))
                continue
            if not text.strip():
                continue
            try:
                ref = ImageRef.of(text, base=inputs.base)
            except ValueError as exc:
                problems.append((column, str(exc)))
                continue
            came_from.setdefault(ref, column)
            into.append(ref)

    for column in inputs.image_columns:
        if column not in row:
            problems.append((column, "no such column (given by --image-column)"))
        elif row[column] not in (None, ""):
            take(column, row[column], found)
    listed = params.pop("images", None)
    if listed not in (None, ""):
        take("images", listed, found)
    for ref in inputs.images:
        came_from.setdefault(ref, "--image")
    found.extend(inputs.images)
    if found:
        params["images"] = found
    masks: list[ImageRef] = []
    own_mask = params.pop("mask", None)
    if inputs.mask_column and row.get(inputs.mask_column) not in (None, ""):
        take(inputs.mask_column, row[inputs.mask_column], masks)
    elif own_mask not in (None, ""):
        take("mask", own_mask, masks)
    if len(masks) > 1:
        problems.append((inputs.mask_column or "mask", "a row has one mask"))
    elif masks:
        params["mask"] = masks[0]
    elif inputs.mask is not None:
        came_from.setdefault(inputs.mask, "--mask")
        params["mask"] = inputs.mask
    return came_from, problems


def check_request(
    request: ImageRequest,
    inputs: RowInputs,
    came_from: Mapping[ImageRef, str],
    own: frozenset[str] = frozenset(),
) -> list[tuple[str | None, str]]:
    """Everything wrong with a row's request before it is sent, as ``(column, reason)``:
    its model's rules (when the row does not name a model, the ``--model``), and each local
    input file (missing, not an image, over the cap, a mask without alpha). ``own``: the
    fields the row set itself (the others came from options, named as such)."""
    found: list[tuple[str | None, str]] = []
    if request.model is None:
        try:
            request.check_for(inputs.model)
        except InvalidParameterError as exc:
            column = _column(exc.field, request, inputs, came_from)
            if exc.field not in own and exc.field in inputs.flags:
                column = inputs.flags[exc.field]
            found.append((column, f"{exc} (pick the model with --model or a model column)"))
    for field, ref in refs(request):
        if ref.path is None:
            continue
        column = came_from.get(ref, field)
        problem = check_file(ref.path, mask=field == "mask")
        if problem is None and not inputs.can_upload:
            size = ref.path.stat().st_size
            if size > INLINE_MAX_BYTES:
                problem = (
                    f"{ref.path} is {size:,} bytes: files over {INLINE_MAX_BYTES:,} bytes "
                    "are uploaded, pass --upload-url"
                )
        if problem is not None:
            found.append((column, problem))
    if request.images and request.mask is not None and not found:
        first, mask = request.images[0].path, request.mask.path
        problem = None if first is None or mask is None else mask_mismatch(first, mask)
        if problem is not None:
            found.append((came_from.get(request.mask, "mask"), problem))
    return found


def blame(column: str, field: str, inputs: RowInputs) -> str:
    """The column or option to name for a bad ``field``, when the row has no ``column`` of
    that name itself (``column == field``): the option that set it, or the image columns."""
    if column != field:
        return column
    if field in inputs.flags:
        return inputs.flags[field]
    if field == "images" and inputs.image_columns:
        return ", ".join(inputs.image_columns)
    if field == "mask" and inputs.mask_column:
        return inputs.mask_column
    return column


def _column(
    field: str, request: ImageRequest, inputs: RowInputs, came_from: Mapping[ImageRef, str]
) -> str:
    """The column (or flag) a field's value came from, for a message."""
    if field == "images":
        columns = dict.fromkeys(came_from.get(ref, "images") for ref in request.images or ())
        return ", ".join(columns or inputs.image_columns) or "images"
    if field == "mask" and request.mask is not None:
        return came_from.get(request.mask, "mask")
    return field
