"""How the command line shows a batch: a live bar, plain periodic lines, or JSON lines.

The batch calls :meth:`View.progress` at every change; views throttle what they print.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Final, TextIO

from odiqueue._batch._progress import Progress
from odiqueue._models import Outcome

__all__ = ["View", "make_view"]

PLAIN_EVERY: Final = 2.0
JSON_EVERY: Final = 1.0


def _eta(progress: Progress, total: int) -> str:
    left = total - progress.done
    if left <= 0:
        return "0s"
    rate = progress.rate
    if rate <= 0:
        return "?"
    seconds = int(left / rate)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def describe(progress: Progress, total: int) -> str:
    """One human line of counts: the same words for every view."""
    return (
        f"{progress.saved}/{total} saved, {progress.failed} failed, "
        f"{progress.running} running, {progress.queued} queued, "
        f"{progress.rate:.1f}/s, ETA {_eta(progress, total)}"
    )


class View:
    """Plain lines every few seconds (what a log file or CI wants)."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self._last = 0.0

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def progress(self, progress: Progress) -> None:
        """Called at every change of the batch's counts."""
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY:
            self._last = now
            print(describe(progress, self.total), file=self.out, flush=True)

    def outcome(self, outcome: Outcome, row: int) -> None:
        """Called once per finished item."""
        if not outcome.ok:
            print(f"row {row} ({outcome.key}) failed: {outcome.error}", file=self.out, flush=True)

    def message(self, text: str) -> None:
        """A line for the user, outside the progress display."""
        print(text, file=self.out, flush=True)

    def summary(self, fields: dict[str, Any]) -> None:
        """The closing figures."""
        print(
            "done: {saved} saved, {failed} failed, {retried} retried, {polls_per_job:.1f} "
            "polls per job, {elapsed:.1f}s, estimated cost ${estimated_cost:,.2f}".format(**fields),
            file=self.out,
            flush=True,
        )


class JsonView(View):
    """One JSON object per line: outcomes, progress every second, the summary."""

    def _emit(self, event: str, **fields: Any) -> None:
        print(json.dumps({"event": event, **fields}), file=self.out, flush=True)

    def progress(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last >= JSON_EVERY:
            self._last = now
            self._emit(
                "progress",
                total=self.total,
                **{k: getattr(progress, k) for k in ("saved", "failed", "queued", "running")},
                rate=round(progress.rate, 3),
            )

    def outcome(self, outcome: Outcome, row: int) -> None:
        self._emit(
            "outcome",
            row=row,
            key=outcome.key,
            ok=outcome.ok,
            request_id=outcome.request_id,
            paths=[str(p) for p in outcome.paths],
            error=None if outcome.error is None else str(outcome.error),
            error_type=getattr(outcome.error, "error_type", None),
        )

    def message(self, text: str) -> None:
        self._emit("message", text=text)

    def summary(self, fields: dict[str, Any]) -> None:
        self._emit("summary", **fields)


class BarView(View):
    """A live progress bar on a terminal (rich)."""

    def __init__(self, total: int, out: TextIO) -> None:
        super().__init__(total, out)
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._escape = escape

        self._console = Console(file=out)
        self._bar = Progress(
            TextColumn("[bold]odiqueue"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=self._console,
            transient=False,
        )
        self._task = self._bar.add_task("batch", total=total, counts="starting")

    def __enter__(self) -> View:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def progress(self, progress: Progress) -> None:
        self._bar.update(self._task, completed=progress.done, counts=describe(progress, self.total))

    def outcome(self, outcome: Outcome, row: int) -> None:
        if not outcome.ok:
            # Keys and server messages are text, not markup: "[/]" in a row id must print.
            what = self._escape(f"row {row} ({outcome.key}) failed:")
            self._console.print(f"[red]{what}[/red] {self._escape(str(outcome.error))}")

    def message(self, text: str) -> None:
        self._console.print(text, markup=False)


def make_view(total: int, *, as_json: bool, out: TextIO | None = None) -> View:
    """The view for this terminal: JSON if asked, a bar on a TTY (with rich), else lines."""
    stream = out or sys.stdout
    if as_json:
        return JsonView(total, stream)
    if stream.isatty():
        try:
            return BarView(total, stream)
        except ImportError:
            pass
    return View(total, stream)
