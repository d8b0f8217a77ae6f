"""What a manifest says: each key's last state, read back from the lines a batch wrote.

Every line is checked before it changes anything: a line edited by hand or damaged (not
JSON, nested too deeply, a field of the wrong type) is skipped and counted, never a reason
to stop, and its item is one the manifest does not know (or knows from its other lines).
The lines themselves are written by ``_manifest``'s :class:`~odiqueue._batch._manifest.Journal`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from odiqueue._models import JobHandle

__all__ = ["MANIFEST_NAME", "Event", "KeyState", "files_present", "parse_lines", "read_manifest"]

log = logging.getLogger("odiqueue")

MANIFEST_NAME: Final = "manifest.jsonl"
#: What a manifest line records.
Event = Literal["intent", "submitted", "saved", "failed", "cancelled"]


@attrs.define
class KeyState:
    """What earlier runs recorded about one key."""

    stage: Event
    attempt: int = 0
    handle: JobHandle | None = None
    files: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None
    error_type: str | None = None
    permanent: bool = False
    #: The request the job was submitted with (as sent), when a line recorded it; kept
    #: past a failure so that a report can still show what was asked.
    request: Mapping[str, Any] | None = None
    #: The model (queue) the job was submitted to, when a line recorded it.
    model: str | None = None
    #: The job's estimated cost, when a line recorded one.
    estimated_cost: float | None = None
    #: The files of the key's last ``saved`` line while a later job (a redo) has not been
    #: saved yet, and that line's request id: they are the item's until the new job's
    #: images take their place.
    earlier: tuple[Mapping[str, Any], ...] = ()
    earlier_id: str | None = None


def read_manifest(out_dir: Path) -> dict[str, KeyState]:
    """What the manifest of ``out_dir`` records, read without the lock and without changing
    the file, so that a report can be made while a batch is still writing it (a line being
    appended just now is left for the next read). Empty when there is no manifest."""
    path = out_dir / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    return parse_lines(data[: data.rfind(b"\n") + 1], path)


def parse_lines(data: bytes, path: Path) -> dict[str, KeyState]:
    states: dict[str, KeyState] = {}
    skipped = 0
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            _apply(states, json.loads(raw))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # A line edited by hand, or damaged: its item is one the manifest does not
            # know (or knows from its other lines), never a reason to stop.
            skipped += 1
            reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
            log.warning("skipping unreadable line %d of %s: %s", number, path, reason)
    if skipped:
        log.warning("%d unreadable line(s) of %s skipped", skipped, path)
    return states


def _apply(states: dict[str, KeyState], line: Any) -> None:
    """Apply one line to ``states``; ValueError, KeyError or TypeError for a line that is
    not one this module writes (checked before anything is changed)."""
    if not isinstance(line, Mapping):
        raise TypeError(f"a line is a JSON object, not {type(line).__name__}")
    key, event = _text(line, "key"), line["event"]
    state = states.get(key)
    cost = line.get("estimated_cost", state.estimated_cost if state else None)
    if cost is not None and (type(cost) not in (int, float) or cost != cost):
        raise TypeError(f"estimated_cost {cost!r:.40} is not a number")
    earlier, earlier_id = _earlier(state)
    if event == "intent":
        attempt = _count(line, state.attempt + 1 if state else 1)
        if state is None:
            states[key] = KeyState("intent", attempt=attempt, estimated_cost=cost)
        else:
            state.stage, state.attempt = "intent", attempt
            state.estimated_cost = cost
            state.earlier, state.earlier_id = earlier, earlier_id
    elif event == "submitted":
        handle = JobHandle(
            request_id=_text(line, "request_id"),
            status_url=_text(line, "status_url"),
            response_url=_text(line, "response_url"),
            cancel_url=_text(line, "cancel_url"),
        )
        request = line.get("request")
        if request is not None and not isinstance(request, Mapping):
            raise TypeError(f"request {request!r:.40} is not an object")
        states[key] = KeyState(
            "submitted",
            attempt=_count(line, 1),
            handle=handle,
            request=request,
            model=line.get("model"),
            estimated_cost=cost,
            earlier=earlier,
            earlier_id=earlier_id,
        )
    elif event == "saved":
        files = line["files"]
        if not isinstance(files, list) or not all(isinstance(f, Mapping) for f in files):
            raise TypeError(f"files {files!r:.40} is not a list of objects")
        prior = state.handle if state else None
        request = state.request if state else None
        model = state.model if state else None
        states[key] = KeyState(
            "saved",
            handle=prior,
            files=tuple(files),
            request=request,
            model=model,
            estimated_cost=cost,
        )
    elif event in ("failed", "cancelled"):
        prior_attempt = state.attempt if state else 0
        error, error_type = line.get("error"), line.get("error_type")
        if not all(value is None or isinstance(value, str) for value in (error, error_type)):
            raise TypeError("error and error_type are text")
        states[key] = KeyState(
            event,
            attempt=prior_attempt,
            handle=state.handle if state else None,
            error=error,
            error_type=error_type,
            permanent=bool(line.get("permanent")),
            request=state.request if state else None,
            estimated_cost=cost,
            earlier=earlier,
            earlier_id=earlier_id,
        )
    else:
        raise ValueError(f"unknown event {event!r:.40}")


def _text(line: Mapping[str, Any], name: str) -> str:
    value = line[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} {value!r:.40} is not text")
    return value


def _count(line: Mapping[str, Any], default: int) -> int:
    value = line.get("attempt", default)
    if type(value) is not int or value < 0:  # bool is an int, and no count
        raise TypeError(f"attempt {value!r:.40} is not a count")
    return value


def _earlier(state: KeyState | None) -> tuple[tuple[Mapping[str, Any], ...], str | None]:
    """The files a job of the key after ``state`` would replace, and their request id."""
    if state is None:
        return (), None
    if state.stage == "saved":
        return state.files, state.handle.request_id if state.handle else None
    return state.earlier, state.earlier_id


def files_present(out_dir: Path, state: KeyState) -> bool:
    """Whether every file a ``saved`` line lists is still on disk at its recorded size."""
    try:
        return bool(state.files) and all(
            (out_dir / f["name"]).stat().st_size == f["size"] for f in state.files
        )
    except (OSError, KeyError, TypeError):
        return False
