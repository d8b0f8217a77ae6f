"""Batch progress as counters, for progress bars and users' own UIs."""

from __future__ import annotations

import attrs

__all__ = ["Progress"]


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

    @property
    def done(self) -> int:
        """Items finished either way."""
        return self.saved + self.failed

    @property
    def rate(self) -> float:
        """Items saved per second so far."""
        return (self.saved - self.skipped) / self.elapsed if self.elapsed > 0 else 0.0
