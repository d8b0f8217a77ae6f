"""The batch's review page (``DIR/index.html``), written after every run and during it.

The page is one static file that works opened from the file system: no script, no server,
no CDN. It is made from the folder's report (``_report``). Every text from the input or a
server goes through Jinja2's autoescape, so a prompt holding ``<script>`` shows as text.
Files are replaced atomically (a temporary file renamed over the old one), so a browser or
a spreadsheet never reads half a page.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
import urllib.parse
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread

from odiqueue._batch._manifest import MANIFEST_NAME
from odiqueue._cli._args import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from odiqueue._cli._thumbs import Thumbnails

if TYPE_CHECKING:
    import jinja2

from odiqueue._cli._report import (
    RESULTS_NAME,
    Entry,
    Report,
    cell,
    load_report,
    replace_file,
    results_csv,
)

__all__ = ["INDEX_NAME", "GalleryUpdater", "run_report", "write_after_run", "write_report"]

log = logging.getLogger("odiqueue")

INDEX_NAME: Final = "index.html"
#: A prompt longer than this is folded on the page (its start stays visible).
FOLD_CHARS: Final = 160
#: Longer image references are no file names (base64 data, say): not looked up on disk.
_MAX_PATH: Final = 4096
_JINJA_HINT: Final = "pip install 'odiqueue[cli]'"
#: Seconds one writing of the page may spend making new thumbnails.
THUMB_SECONDS: Final = 20.0
#: Seconds between rewrites while a batch runs (at least; see GalleryUpdater).
REWRITE_EVERY: Final = 10.0


# --- writing ----------------------------------------------------------------------------------


def write_report(out_dir: Path, *, running: bool = False) -> list[Path]:
    """Rewrite ``index.html`` (and ``results.csv`` when the input is recorded) from the
    folder; returns the files written. ``running`` makes the page reload itself now and
    then, for a batch still in progress."""
    report = load_report(out_dir)
    written = []
    if report.source is not None:  # first: it needs no template engine
        written.append(out_dir / RESULTS_NAME)
        replace_file(written[-1], results_csv(report))
    written.append(out_dir / INDEX_NAME)
    replace_file(written[-1], render_page(report, running=running))
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
    params = [(k, cell(v)) for k, v in request.items() if k != "model" and v is not None]
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
