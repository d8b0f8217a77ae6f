"""The batch's review page (``DIR/index.html``) and results table (``DIR/results.csv``).

Both are made from the output folder alone: ``manifest.jsonl`` says what became of each key,
and ``.odiqueue-input.json`` (written by ``odiqueue generate`` once it holds the folder's
lock) says which input row each key came from, with the row's cells as written. Without that
file the page still shows every item the manifest knows, only without row numbers, and no
results table is written (there are no input rows to give back).

The page is one static file that works opened from the file system: no script, no server,
no CDN. Every text from the input or a server goes through Jinja2's autoescape, so a prompt
holding ``<script>`` shows as text. Files are replaced atomically (a temporary file renamed
over the old one), so a browser or a spreadsheet never reads half a page.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import secrets
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import anyio.to_thread
import attrs

from odiqueue import _wire
from odiqueue._batch._items import ItemKeys
from odiqueue._batch._manifest import MANIFEST_NAME, KeyState, files_present, read_manifest
from odiqueue._cli._args import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from odiqueue._cli._products import InputError, read_table
from odiqueue._cli._thumbs import Thumbnails
from odiqueue._models import BatchItem

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "INDEX_NAME",
    "INPUT_NAME",
    "RESULTS_NAME",
    "Entry",
    "GalleryUpdater",
    "Report",
    "load_report",
    "record_input",
    "run_report",
    "write_after_run",
    "write_report",
]

log = logging.getLogger("odiqueue")

INDEX_NAME: Final = "index.html"
RESULTS_NAME: Final = "results.csv"
INPUT_NAME: Final = ".odiqueue-input.json"
#: A prompt longer than this is folded on the page (its start stays visible).
FOLD_CHARS: Final = 160
#: Longer image references are no file names (base64 data, say): not looked up on disk.
_MAX_PATH: Final = 4096
#: The columns results.csv adds after the input's own.
RESULT_COLUMNS: Final = ("status", "files", "request_id", "error", "estimated_cost")
_JINJA_HINT: Final = "pip install 'odiqueue[cli]'"
#: Seconds one writing of the page may spend making new thumbnails.
THUMB_SECONDS: Final = 20.0
#: Seconds between rewrites while a batch runs (at least; see GalleryUpdater).
REWRITE_EVERY: Final = 10.0

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


def record_input(out_dir: Path, source: Path, rows: Sequence[tuple[int, BatchItem]]) -> None:
    """Write which input row each key comes from, with its request and its cells, so that
    the page and the table can be rebuilt from the folder alone (``odiqueue report``).

    Keys are assigned exactly as the batch assigns them (the same :class:`ItemKeys`, in the
    same order). Call it only while holding the folder's lock: another batch's record must
    not be replaced. A failure is logged, never raised: the batch matters more."""
    try:
        _record_input(out_dir, source, rows)
    except (OSError, InputError) as exc:
        log.warning("cannot record the input rows in %s: %s", out_dir / INPUT_NAME, exc)


def _record_input(out_dir: Path, source: Path, rows: Sequence[tuple[int, BatchItem]]) -> None:
    columns, table = read_table(source)
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
    _replace(out_dir / INPUT_NAME, json.dumps(document, ensure_ascii=False))


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


# --- writing ----------------------------------------------------------------------------------


def write_report(out_dir: Path, *, running: bool = False) -> list[Path]:
    """Rewrite ``index.html`` (and ``results.csv`` when the input is recorded) from the
    folder; returns the files written. ``running`` makes the page reload itself now and
    then, for a batch still in progress."""
    report = load_report(out_dir)
    written = []
    if report.source is not None:  # first: it needs no template engine
        written.append(out_dir / RESULTS_NAME)
        _replace(written[-1], results_csv(report))
    written.append(out_dir / INDEX_NAME)
    _replace(written[-1], render_page(report, running=running))
    return written


def write_after_run(out_dir: Path) -> str:
    """Write both files after a run; one line for the user, never an exception: the batch
    is done and its images are saved whatever happens to its page."""
    try:
        written = write_report(out_dir)
    except ImportError:
        return f"No review page: it needs Jinja2 ({_JINJA_HINT})."
    except OSError as exc:
        return f"Could not write the review page: {exc}"
    return "Review: " + " and ".join(str(path) for path in written)


def run_report(out_dir: Path) -> int:
    """``odiqueue report DIR``: rebuild the page and the table; returns the exit code."""
    if not (out_dir / MANIFEST_NAME).is_file():
        print(
            f"odiqueue report: {out_dir}: no {MANIFEST_NAME} here (give the --out folder of "
            "`odiqueue generate`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        written = write_report(out_dir)
    except ImportError:
        print(f"odiqueue report: the page needs Jinja2 ({_JINJA_HINT})", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"odiqueue report: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for path in written:
        print(path)
    return EXIT_OK


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
                *(_cell(entry.cells.get(column)) for column in report.columns),
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


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _inert(text: str) -> str:
    """A server's text as a spreadsheet cell that is never taken for a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def render_page(report: Report, *, running: bool = False) -> str:
    """The page's HTML. Every value goes into the template as data; the template escapes it."""
    thumbs = Thumbnails(report.out_dir, THUMB_SECONDS)
    # Relative image references are relative to the input file, as on the command line.
    base = Path(report.source).parent if report.source else report.out_dir
    cards = [_card(entry, report.out_dir, base, thumbs) for entry in report.entries]
    cost = report.estimated_cost
    return _template().render(
        title=f"odiqueue: {report.out_dir.name or report.out_dir.resolve().name}",
        source=report.source,
        counts=report.counts,
        total=len(report.entries),
        images=report.images,
        attention=sum(1 for entry in report.entries if entry.attention),
        failed=sum(1 for entry in report.entries if entry.status == "failed"),
        cost=None if cost is None else f"{cost:.2f}",
        cards=cards,
        running=running,
        made=time.strftime("%Y-%m-%d %H:%M:%S"),
        manifest=MANIFEST_NAME,
        out=str(report.out_dir),
        pending=thumbs.pending,
    )


def _card(
    entry: Entry, out_dir: Path, base: Path, thumb: Callable[[Path], str | None]
) -> dict[str, Any]:
    request = dict(entry.request)
    prompt = str(request.pop("prompt", "") or "")
    inputs = [_reference(ref, base, thumb) for ref in _references(request.pop("images", None))]
    mask = request.pop("mask", None)
    if isinstance(mask, str):
        inputs.append({**_reference(mask, base, thumb), "label": "mask"})
    outputs = []
    for name in entry.files:
        href = urllib.parse.quote(name)
        small = thumb(out_dir / name) if entry.status == "saved" else None
        outputs.append({"name": name, "href": href, "src": small or href})
    params = [(k, _cell(v)) for k, v in request.items() if k != "model" and v is not None]
    return {
        "key": entry.key,
        "row": entry.row,
        "status": entry.status,
        "words": entry.words,
        "attention": entry.attention,
        "prompt": prompt,
        "prompt_start": prompt[:FOLD_CHARS] if len(prompt) > FOLD_CHARS else None,
        "model": entry.model,
        "params": params,
        "error": entry.error,
        "error_type": entry.error_type,
        "request_id": entry.request_id,
        "cost": None if entry.estimated_cost is None else f"{entry.estimated_cost:.4f}",
        "inputs": inputs,
        "outputs": outputs,
    }


def _references(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _reference(ref: str, base: Path, thumb: Callable[[Path], str | None]) -> dict[str, Any]:
    """An input image as the page links it: http(s) URLs as they are, local files through
    a thumbnail, anything else (inline data, a digest) as text only. Never another scheme:
    a ``javascript:`` reference must not become a link."""
    label = "input"
    scheme = urllib.parse.urlsplit(ref).scheme.lower()
    if scheme in ("http", "https"):
        return {"label": label, "text": ref, "href": ref, "src": ref}
    if scheme == "data":
        return {"label": label, "text": "inline image data", "href": None, "src": None}
    try:
        full = (base / ref).resolve()  # an absolute ref stays itself
        found = len(ref) < _MAX_PATH and full.is_file()
    except (OSError, ValueError):
        found = False
    if found:
        href = full.as_uri()
        return {"label": label, "text": ref, "href": href, "src": thumb(full) or href}
    return {"label": label, "text": ref, "href": None, "src": None}


@functools.cache
def _template() -> jinja2.Template:
    # Imported here: Jinja2 comes with the ``cli`` extra, and the batch runs without it.
    import jinja2

    source = resources.files(__package__).joinpath("_gallery.html.j2").read_text("utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(source)


def _replace(path: Path, text: str) -> None:
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


class GalleryUpdater:
    """Rewrites the page while a batch runs, now and then, in a worker thread.

    At most one rewrite at a time, and the next one waits at least ``every`` seconds and at
    least twenty times what the last one took, so a large batch spends at most about 5% of
    one core on its page. A rewrite that fails (a full disk) is logged once, never raised:
    the batch matters more than its page.
    """

    def __init__(self, out_dir: Path, *, every: float = REWRITE_EVERY) -> None:
        self.out_dir = out_dir
        self.every = every
        self._due = time.monotonic() + every
        self._busy = False
        self._warned = False

    @property
    def busy(self) -> bool:
        """Whether a rewrite is running now."""
        return self._busy

    def poke(self, group: anyio.abc.TaskGroup) -> None:
        """Start a rewrite in ``group`` if one is due and none is running."""
        if self._busy or time.monotonic() < self._due:
            return
        self._busy = True
        group.start_soon(self._rewrite)

    async def _rewrite(self) -> None:
        started = time.monotonic()
        try:
            await anyio.to_thread.run_sync(
                functools.partial(write_report, self.out_dir, running=True)
            )
        except (OSError, ImportError) as exc:
            if not self._warned:
                log.warning("cannot update %s: %s", self.out_dir / INDEX_NAME, exc)
                self._warned = True
        finally:
            took = time.monotonic() - started
            self._due = time.monotonic() + max(self.every, 20 * took)
            self._busy = False
