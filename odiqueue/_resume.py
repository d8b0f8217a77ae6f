"""What an earlier run's manifest decides about an item, before anything is paid for.

An item whose images were saved (and are still on disk) is skipped; one that failed for
good is reported failed again; one whose job was submitted is followed by id instead of
being paid for twice; one whose submit went unanswered is submitted again and flagged
"uncertain". An item new to the folder must not overwrite files that the manifest does
not know, which is checked here too, up front.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from odiqueue._errors import ConfigurationError, JobFailedError, OdiqueueError, OutputFileError
from odiqueue._journal import KeyState, files_present
from odiqueue._models import JobHandle

__all__ = ["Decision", "decide", "first_taken"]

log = logging.getLogger("odiqueue")


@attrs.frozen
class Decision:
    """What to do with one item.

    ``verdict`` is ``submit`` (pay for a job), ``attach`` (follow ``handle``, already paid
    for), ``skip`` (its images are on disk: ``files`` names them) or ``fail`` (``error``).
    """

    verdict: Literal["submit", "attach", "skip", "fail"]
    #: Whether an earlier run recorded the item at all.
    resumed: bool = True
    attempts: int = 0
    handle: JobHandle | None = None
    uncertain: bool = False
    files: tuple[str, ...] = ()
    error: OdiqueueError | None = None


def decide(
    key: str, state: KeyState | None, out_dir: Path, request: Mapping[str, Any] | None = None
) -> Decision:
    """The decision for item ``key`` given what earlier runs recorded (``state``).

    ``request`` is the item's request as it would be sent: when an earlier run paid for a
    job of this key with another request, that job's images are not this item's, and
    paying again under the same key would hide the first job, so the item is refused.
    """
    if state is None:
        return Decision("submit", resumed=False)
    paid = state.stage in ("submitted", "saved") and state.handle is not None
    if (
        paid
        and request is not None
        and state.request is not None
        and _differ(state.request, request)
    ):
        assert state.handle is not None
        changed = ConfigurationError(
            f"item {key}: its request changed since an earlier run in this folder paid for "
            f"job {state.handle.request_id}: give the item a new key (or id) to generate "
            "it anew, or use another output folder",
            request_id=state.handle.request_id,
        )
        return Decision("fail", handle=state.handle, error=changed)
    if state.stage == "saved" and files_present(out_dir, state):
        return Decision("skip", handle=state.handle, files=tuple(f["name"] for f in state.files))
    if state.stage == "failed" and state.permanent:
        request_id = state.handle.request_id if state.handle else None
        error = JobFailedError(
            state.error or "failed", error_type=state.error_type, request_id=request_id
        )
        return Decision("fail", handle=state.handle, error=error)
    if paid:
        return Decision("attach", attempts=state.attempt, handle=state.handle)
    if state.stage == "intent":
        log.warning(
            "item %s: an earlier run's submit may have created a job it never heard back "
            "about; submitting again",
            key,
        )
        return Decision("submit", attempts=state.attempt, uncertain=True)
    return Decision("submit", attempts=state.attempt)


def first_taken(paths: list[Path]) -> OutputFileError | None:
    """The error for an item whose files would overwrite existing ones, else None."""
    for path in paths:
        if path.exists():
            return OutputFileError(
                f"{path} already exists and is not in this folder's manifest: pass "
                "overwrite=True, or use another output folder"
            )
    return None


def _differ(recorded: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    """Whether two requests differ as JSON: the recorded one has been through a JSON round
    trip (tuples came back as lists, number keys as strings, NaN unequal to itself)."""
    return _canonical(recorded) != _canonical(request)


def _canonical(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
