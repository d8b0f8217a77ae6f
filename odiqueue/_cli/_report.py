"""What became of each input row of a batch folder: its report, and ``DIR/results.csv``.

Made from the output folder alone: ``manifest.jsonl`` says what became of each key, and
``.odiqueue-input.json`` (written by ``odiqueue generate`` once it holds the folder's lock)
says which input row each key came from, with the row's cells as written. Without that file
the report still knows every item the manifest knows, only without row numbers, and there
is no results table (there are no input rows to give back).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import secrets
import urllib.parse
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from odiqueue import _wire
from odiqueue._batch._items import ItemKeys
from odiqueue._batch._records import KeyState, files_present, read_manifest
from odiqueue._cli._products import InputError, read_table
from odiqueue._cli._sheets import ReadSettings
from odiqueue._models import BatchItem

if TYPE_CHECKING:
    pass

__all__ = [
    "INPUT_NAME",
    "RESULTS_NAME",
    "Entry",
    "Report",
    "cell",
    "load_report",
    "record_input",
    "results_csv",
]

log = logging.getLogger("odiqueue")

RESULTS_NAME: Final = "results.csv"
INPUT_NAME: Final = ".odiqueue-input.json"
#: The columns results.csv adds after the input's own.
RESULT_COLUMNS: Final = ("status", "files", "request_id", "error", "estimated_cost")

Status = Literal["saved", "missing", "failed", "cancelled", "uncertain", "submitted", "not sent"]
#: The statuses the "failed or uncertain" filter shows: items a person should look at.
ATTENTION: Final = frozenset({"failed", "cancelled", "uncertain", "missing"})
_STATUS_ORDER: Final[tuple[Status, ...]] = (
    "saved",
    "failed",
    "cancelled",
    "uncertain",
    "missing",
    "submitted",
    "not sent",
)
_WORDS: Final[Mapping[Status, str]] = {
    "saved": "saved",
    "missing": "saved, but its files are gone (a rerun makes them again)",
    "failed": "failed",
    "cancelled": "cancelled",
    "uncertain": "uncertain: a submit may have been made (a rerun checks)",
    "submitted": "submitted, not saved yet",
    "not sent": "not sent yet",
}


@attrs.frozen(kw_only=True)
class Entry:
    """One item of the batch as the page and the table show it."""

    key: str
    #: The input row it came from, when the folder records the input.
    row: int | None
    status: Status
    #: The request as sent (or as it would be sent), as JSON; empty when unknown.
    request: Mapping[str, Any]
    model: str | None
    #: The saved files' names, inside the output folder.
    files: tuple[str, ...]
    error: str | None
    error_type: str | None
    request_id: str | None
    estimated_cost: float | None
    #: The input row's cells as written (empty when the input is unknown).
    cells: Mapping[str, Any]

    @property
    def words(self) -> str:
        """The status in words."""
        return _WORDS[self.status]

    @property
    def attention(self) -> bool:
        """Whether a person should look at it (failed or uncertain)."""
        return self.status in ATTENTION


@attrs.frozen(kw_only=True)
class Report:
    """Everything the output folder says about its batch, in input order."""

    out_dir: Path
    entries: tuple[Entry, ...]
    #: The input file and its columns as written, when the folder records them.
    source: str | None
    columns: tuple[str, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Items per status (only the statuses that occur), in a fixed order."""
        found = Counter(entry.status for entry in self.entries)
        return {status: found[status] for status in _STATUS_ORDER if found[status]}

    @property
    def images(self) -> int:
        """Image files saved."""
        return sum(len(entry.files) for entry in self.entries)

    @property
    def estimated_cost(self) -> float | None:
        """The sum of the estimates the manifest records (None when it records none)."""
        costs = [e.estimated_cost for e in self.entries if e.estimated_cost is not None]
        return sum(costs) if costs else None


def record_input(
    out_dir: Path,
    source: Path,
    rows: Sequence[tuple[int, BatchItem]],
    settings: ReadSettings | None = None,
) -> None:
    """Write which input row each key comes from, with its request and its cells, so that
    the page and the table can be rebuilt from the folder alone (``odiqueue report``).

    Keys are assigned exactly as the batch assigns them (the same :class:`ItemKeys`, in the
    same order). Call it only while holding the folder's lock: another batch's record must
    not be replaced. ``settings`` read the input as the batch read it (its encoding,
    delimiter, sheet). A failure is logged, never raised: the batch matters more."""
    try:
        _record_input(out_dir, source, rows, settings)
    except (OSError, InputError) as exc:
        log.warning("cannot record the input rows in %s: %s", out_dir / INPUT_NAME, exc)


def _record_input(
    out_dir: Path,
    source: Path,
    rows: Sequence[tuple[int, BatchItem]],
    settings: ReadSettings | None,
) -> None:
    columns, table = read_table(source, settings)
    cells = dict(table)
    keys = ItemKeys()
    records = []
    for index, (row, item) in enumerate(rows):
        key, request = keys.identify(item, index)
        records.append(
            {
                "row": row,
                "key": key,
                "request": None if request is None else _wire.request_to_json(request),
                "cells": cells.get(row, {}),
            }
        )
    document = {"input": str(source.resolve()), "columns": columns, "rows": records}
    replace_file(out_dir / INPUT_NAME, json.dumps(document, ensure_ascii=False))


def load_report(out_dir: Path) -> Report:
    """Read the manifest (and the recorded input, if any) of ``out_dir``."""
    states = read_manifest(out_dir)
    recorded = _read_input(out_dir)
    entries = []
    listed = set()
    for record in recorded.get("rows", ()):
        key = record["key"]
        listed.add(key)
        entries.append(
            _entry(out_dir, key, states.get(key), record["row"], record, record["cells"])
        )
    for key, state in states.items():
        if key not in listed:
            entries.append(_entry(out_dir, key, state, None, None, None))
    return Report(
        out_dir=out_dir,
        entries=tuple(entries),
        source=recorded.get("input"),
        columns=tuple(recorded.get("columns", ())),
    )


def _read_input(out_dir: Path) -> Mapping[str, Any]:
    try:
        value = json.loads((out_dir / INPUT_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s (%s): rows are shown without input row numbers", INPUT_NAME, exc)
        return {}
    if not _well_formed(value):
        log.warning("ignoring %s (not as odiqueue writes it)", INPUT_NAME)
        return {}
    return value  # type: ignore[no-any-return]


def _well_formed(value: object) -> bool:
    """Whether a recorded input has the shape :func:`record_input` writes."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("input"), str)
        and isinstance(value.get("columns"), list)
        and all(isinstance(column, str) for column in value["columns"])
        and isinstance(value.get("rows"), list)
        and all(
            isinstance(row, dict)
            and isinstance(row.get("key"), str)
            and isinstance(row.get("row"), int)
            and isinstance(row.get("cells"), dict)
            and isinstance(row.get("request"), (dict, type(None)))
            for row in value["rows"]
        )
    )


def _entry(
    out_dir: Path,
    key: str,
    state: KeyState | None,
    row: int | None,
    record: Mapping[str, Any] | None,
    cells: Mapping[str, Any] | None,
) -> Entry:
    status: Status
    if state is None:
        status = "not sent"
    elif state.stage == "saved":
        status = "saved" if files_present(out_dir, state) else "missing"
    elif state.stage == "intent":
        status = "uncertain"
    elif state.stage == "submitted":
        status = "submitted"
    else:
        status = "failed" if state.stage == "failed" else "cancelled"
    request = (state.request if state else None) or (record or {}).get("request") or {}
    handle = state.handle if state else None
    return Entry(
        key=key,
        row=row,
        status=status,
        request=request,
        model=request.get("model") or (_model_of(handle.status_url) if handle else None),
        files=tuple(str(f["name"]) for f in state.files) if state else (),
        error=state.error if state else None,
        error_type=state.error_type if state else None,
        request_id=handle.request_id if handle else None,
        estimated_cost=state.estimated_cost if state else None,
        cells=cells or {},
    )


def _model_of(status_url: str) -> str | None:
    """The model a job ran on, from its status URL (``.../queue/<model>/requests/...``)."""
    parts = urllib.parse.urlsplit(status_url).path.split("/")
    for before, part, after in zip(parts, parts[1:], parts[2:], strict=False):
        if before == "queue" and after == "requests":
            return urllib.parse.unquote(part)
    return None


def results_csv(report: Report) -> str:
    """One line per input row, in input order: the input's cells, then what became of it."""
    lower = {c.lower() for c in report.columns}
    # A shop's own "status" column keeps its name; ours steps aside.
    added = [f"odiqueue_{c}" if c in lower else c for c in RESULT_COLUMNS]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*report.columns, *added])
    for entry in report.entries:
        if entry.row is None:
            continue
        cost = "" if entry.estimated_cost is None else f"{entry.estimated_cost:.4f}"
        writer.writerow(
            [
                *(cell(entry.cells.get(column)) for column in report.columns),
                entry.status,
                "|".join(entry.files),
                _inert(entry.request_id or ""),
                _inert(_error_text(entry)),
                cost,
            ]
        )
    return buffer.getvalue()


def _error_text(entry: Entry) -> str:
    if entry.error is None:
        return ""
    return f"{entry.error_type}: {entry.error}" if entry.error_type else entry.error


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _inert(text: str) -> str:
    """A server's text as a spreadsheet cell that is never taken for a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def replace_file(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, renamed over it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # Not mkstemp: its files are private (0600), and these are for the user's other tools.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
