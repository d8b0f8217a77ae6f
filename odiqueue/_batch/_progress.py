"""Batch progress as counters, for progress bars and users' own UIs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import attrs

from odiqueue import _backoff

__all__ = ["Counter", "Progress", "Stage", "Tally"]

#: Where an item is in a batch; each stage is a counter of :class:`Progress`.
Stage = Literal["waiting", "queued", "running", "saved", "failed"]
#: Everything :class:`Progress` counts.
Counter = Literal[
    "waiting",
    "queued",
    "running",
    "saved",
    "failed",
    "skipped",
    "retried",
    "uncertain",
    "polls",
    "bytes",
]


@attrs.frozen(kw_only=True)
class Progress:
    """A snapshot of a batch's counts.

    ``waiting``: read from the input, not yet submitted. ``queued``/``running``: submitted
    jobs by their last known status. ``saved``/``failed``: finished items (``skipped``
    counts items an earlier run had already saved, included in ``saved``). ``polls`` and
    ``bytes`` are totals of status requests and image bytes written. ``elapsed`` is seconds
    since the batch started; ``rate`` is items saved per second.
    """

    waiting: int = 0
    queued: int = 0
    running: int = 0
    saved: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    uncertain: int = 0
    polls: int = 0
    bytes: int = 0
    elapsed: float = 0.0
    #: Estimated US dollars of the jobs paid for, this run's and the folder's earlier runs'.
    cost: float = 0.0

    @property
    def done(self) -> int:
        """Items finished either way."""
        return self.saved + self.failed

    @property
    def rate(self) -> float:
        """Items saved per second so far."""
        return (self.saved - self.skipped) / self.elapsed if self.elapsed > 0 else 0.0


class Tally:
    """A running batch's counts, kept as items move, told to ``on_progress`` at each change."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self._on_progress = on_progress
        self._counts: dict[str, int] = dict.fromkeys(get_args(Counter), 0)
        self.started = 0.0
        self.cost = 0.0

    def snapshot(self) -> Progress:
        """The counts right now."""
        return Progress(
            **self._counts, elapsed=_backoff.now() - self.started, cost=round(self.cost, 6)
        )

    def bump(self, counter: Counter, by: int = 1) -> None:
        """Add to a counter, without telling anyone yet (see :meth:`changed`)."""
        self._counts[counter] += by

    def move(self, old: Stage, new: Stage) -> None:
        """An item moved from stage ``old`` to stage ``new``; told at once."""
        self._counts[old] -= 1
        self._counts[new] += 1
        self.changed()

    def changed(self) -> None:
        """Tell ``on_progress`` the counts as they are now."""
        if self._on_progress is not None:
            self._on_progress(self.snapshot())
