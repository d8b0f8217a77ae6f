"""One item on its way through a batch: what the pipeline knows of it, and its outcome."""

from __future__ import annotations

from typing import Any

import attrs

from odiqueue._models import ImageRequest, ImageResult, JobHandle, Outcome

__all__ = ["Work"]


@attrs.define
class Work:
    """One item's state between reading it and delivering its outcome (mutable, owned by
    the one worker that carries it)."""

    key: str
    index: int
    request: ImageRequest
    handle: JobHandle | None = None
    resumed: bool = False
    #: Whether ``handle`` is an earlier run's job (not yet replaced by a submit of this run).
    inherited: bool = False
    #: Whether another item of this run holds one of its file names (saved beside it).
    keep_apart: bool = False
    uncertain: bool = False
    attempts: int = 0
    polls: int = 0
    submitted_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    stage: str = "waiting"
    template: str | None = None
    result: ImageResult | None = None

    def outcome(self, **fields: Any) -> Outcome:
        """The item's outcome: what the work knows, plus ``fields`` (paths or error)."""
        return Outcome(
            key=self.key,
            index=self.index,
            request=self.request,
            request_id=self.handle.request_id if self.handle else None,
            attempts=self.attempts,
            polls=self.polls,
            submitted_at=self.submitted_at,
            started_at=self.started_at,
            completed_at=self.completed_at,
            resumed=self.resumed,
            uncertain=self.uncertain,
            **fields,
        )
