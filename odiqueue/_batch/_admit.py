"""Admitting a batch's items: each becomes work, or an outcome that needs no request.

A batch's first step for each item: from what the caller gave to work for a worker, or
straight to an outcome that needs no request (an item that is no valid request, one an
earlier run already finished, one whose file names are taken).

Nothing is paid for here: this is where an item is refused before paying.

What an earlier run's manifest decides about an item, before anything is paid for.

An item whose images were saved (and are still on disk) is skipped; one that failed for
good is reported failed again; one whose job was submitted is followed by id instead of
being paid for twice; one whose submit went unanswered is submitted again and flagged
"uncertain". An item new to the folder must not overwrite files that the manifest does
not know, which is checked here too, up front. An item the batch's ``redo`` chooses is
submitted again, its earlier images to be moved aside once the new ones are saved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs

from odiqueue import _backoff, _edits, _wire
from odiqueue._batch._items import ItemKeys, bad_item, request_of
from odiqueue._batch._jobs import LiveJobs, Work
from odiqueue._batch._progress import Tally
from odiqueue._batch._records import KeyState, files_present
from odiqueue._batch._redo import chosen, in_place
from odiqueue._batch._save import Collector
from odiqueue._config import BatchOptions, RedoChoice
from odiqueue._errors import (
    ConfigurationError,
    Fix,
    InvalidParameterError,
    JobFailedError,
    OdiqueueError,
    OutputFileError,
)
from odiqueue._models import BatchItem, Item, JobHandle, Outcome
from odiqueue._naming import literal_template, name_key
from odiqueue._request import ImageRequest

__all__ = ["Decision", "Intake", "decide", "first_taken"]


class Intake:
    """Turns each input item into :class:`Work` or an :class:`Outcome`, in input order."""

    def __init__(
        self,
        out_dir: Path,
        options: BatchOptions,
        collector: Collector,
        live: LiveJobs,
        tally: Tally,
        model: str,
    ) -> None:
        self._out_dir = out_dir
        self._model = model
        # Items with local files are hashed off the event loop, one at a time, so that
        # identical items still get their occurrence numbers in input order.
        self._hashing = anyio.Lock()
        self._options = options
        self._collector = collector
        self._live = live
        self._tally = tally
        self._keys = ItemKeys()
        #: What earlier runs recorded, by key (set once the manifest is read).
        self.states: dict[str, KeyState] = {}
        # File names (as name_key compares them) claimed by this run's items, with the item's index.
        self._claimed: dict[str, int] = {}

    async def take(self, item: Item, index: int) -> Work | Outcome:
        """The item as work, or as an outcome an earlier run (or a check) already decided.

        Raises ``TypeError`` or ``ValueError`` for an item of the wrong shape or a repeated
        key (see :class:`ItemKeys`).
        """
        carried = request_of(item)
        if carried is not None and carried.files:
            async with self._hashing:
                try:
                    record = await anyio.to_thread.run_sync(_edits.record, carried)
                except InvalidParameterError as exc:  # an input file that cannot be read
                    key, _ = self._keys.identify(item, index, {"unreadable": str(exc)})
                    self._tally.bump("failed")
                    return Outcome(key=key, index=index, request=carried, error=exc)
                identity = _edits.identity(carried, record)
                key, request = self._keys.identify(item, index, identity)
        else:
            key, request = self._keys.identify(item, index)
            record = None
        if request is None:
            self._tally.bump("failed")
            return Outcome(key=key, index=index, request=ImageRequest("?"), error=bad_item(item))
        model = request.model or self._model
        state = self.states.pop(key, None)
        sent = None
        if state is not None:
            sent = record if record is not None else _wire.request_to_json(request)
        decision = decide(key, state, self._out_dir, sent, model, redo=self._options.redo)
        if decision.verdict == "skip":
            self._tally.bump("saved")
            self._tally.bump("skipped")
            for name in decision.files:  # its files are this item's: no later item's
                self._claimed.setdefault(name_key(name), index)
        elif decision.verdict == "fail":
            self._tally.bump("failed")
        if decision.verdict in ("skip", "fail"):
            return Outcome(
                key=key,
                index=index,
                request=request,
                request_id=decision.handle.request_id if decision.handle else None,
                paths=tuple(self._out_dir / name for name in decision.files),
                error=decision.error,
                resumed=True,
            )
        work = Work(
            key=key,
            index=index,
            request=request,
            model=model,
            resumed=decision.resumed,
            uncertain=decision.uncertain,
            attempts=decision.attempts,
        )
        if isinstance(item, BatchItem) and item.name:
            work.template = literal_template(item.name)
        if state is not None:
            self._replacing(work, state, decision)
        if decision.handle is not None:  # attach: already paid for, followed by id
            work.handle, work.submitted_at = decision.handle, _backoff.now()
            work.inherited = True
            self._live.add(key, decision.handle)
        elif decision.uncertain:
            self._tally.bump("uncertain")
        return self._check_free(work)

    def _replacing(self, work: Work, state: KeyState, decision: Decision) -> None:
        """The item's earlier images its new ones will replace: its saved ones when it is
        redone now, or those of an earlier run's redo that has not finished."""
        if decision.redo and state.stage == "saved":
            files, work.replaced_id = state.files, state.handle.request_id if state.handle else None
        else:
            files, work.replaced_id = state.earlier, state.earlier_id
        work.replaces = in_place(self._out_dir, files)
        work.redo = decision.redo or bool(work.replaces)

    def _check_free(self, work: Work) -> Work | Outcome:
        """Refuse, before paying, an item whose files would overwrite existing ones or an
        earlier item's (names compared as saved, ignoring case). A job already paid for is
        never refused: should its name be taken, its image is kept under a second name."""
        template = work.template or self._options.name_template
        if "{request_id}" in template:
            return work
        paths = [
            self._collector.path(template, work.key, work.request, i, "")
            for i in range(work.request.count)
        ]
        names = [name_key(path.name) for path in paths]
        # The item's own earlier images are in the way only until its new ones are saved.
        own = {name_key(str(record["name"])) for record in work.replaces}
        error: OutputFileError | None = None
        if work.handle is not None:
            # Paid for already, so never refused; but a name another item holds is left
            # to that item, even with ``overwrite``: the image goes beside it.
            work.keep_apart = any(name in self._claimed for name in names)
        else:
            clash = next((i for i, name in enumerate(names) if name in self._claimed), None)
            if clash is not None:
                error = OutputFileError(
                    f"item {work.index}: its image would be saved as {paths[clash].name}, like "
                    f"item {self._claimed[names[clash]]}'s: give the items names of their own"
                )
            elif not self._options.overwrite:
                error = first_taken([path for path in paths if name_key(path.name) not in own])
        if error is None:
            for name in names:
                self._claimed.setdefault(name, work.index)
            return work
        self._tally.bump("failed")
        return Outcome(key=work.key, index=work.index, request=work.request, error=error)


log = logging.getLogger("odiqueue")


@attrs.frozen
class Decision:
    """What to do with one item.

    ``verdict`` is ``submit`` (pay for a job), ``attach`` (follow ``handle``, already paid
    for), ``skip`` (its images are on disk: ``files`` names them) or ``fail`` (``error``).
    ``redo``: submitted again because the batch's ``redo`` chose it.
    """

    verdict: Literal["submit", "attach", "skip", "fail"]
    #: Whether an earlier run recorded the item at all.
    resumed: bool = True
    attempts: int = 0
    handle: JobHandle | None = None
    uncertain: bool = False
    files: tuple[str, ...] = ()
    error: OdiqueueError | None = None
    redo: bool = False


def decide(
    key: str,
    state: KeyState | None,
    out_dir: Path,
    request: Mapping[str, Any] | None = None,
    model: str | None = None,
    *,
    redo: RedoChoice = None,
) -> Decision:
    """The decision for item ``key`` given what earlier runs recorded (``state``).

    ``request`` is the item's request as it would be sent (its input files as digests) and
    ``model`` its queue: when an earlier run paid for a job of this key with another
    request or model, that job's images are not this item's, and paying again under the
    same key would hide the first job, so the item is refused unless ``redo`` chooses it.
    ``redo`` (the batch's option) submits a saved or failed item again; a job paid for and
    not saved yet is followed by id, never paid twice.
    """
    if state is None:
        return Decision("submit", resumed=False)
    paid = state.stage in ("submitted", "saved") and state.handle is not None
    changed_model = model is not None and state.model is not None and state.model != model
    changed = changed_model or (
        request is not None and state.request is not None and _differ(state.request, request)
    )
    if changed and paid and state.stage == "submitted":
        assert state.handle is not None
        # Paying again under the same key would hide this job, which is paid for.
        unsaved = ConfigurationError(
            f"item {key}: its request changed, but job {state.handle.request_id}, paid for "
            "with its earlier request, is not saved yet: run once with the earlier request "
            "to fetch it (then redo the item), give the item a new key, or use another "
            "output folder",
            request_id=state.handle.request_id,
        )
        return Decision("fail", handle=state.handle, error=unsaved)
    again = chosen(redo, key, state, changed)
    if changed and not again and (paid or (state.stage == "failed" and state.permanent)):
        return Decision("fail", handle=state.handle, error=_changed(key, state))
    if again and state.stage in ("saved", "failed", "cancelled"):
        return Decision("submit", attempts=state.attempt, redo=True)
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
                f"{path} already exists and is not in this folder's manifest",
                fix=Fix("overwrite", True, "pass {setting}, or use another output folder"),
            )
    return None


def _changed(key: str, state: KeyState) -> ConfigurationError:
    """The error for an item whose request changed since an earlier run's job, met without
    ``redo``: naming the fix, never paying for it unasked."""
    request_id = state.handle.request_id if state.handle else None
    if state.stage == "failed":
        what = f"whose job {request_id} failed ({state.error or 'failed'})"
    else:
        what = f"which saved the image of job {request_id}"
    return ConfigurationError(
        f"item {key}: its request changed since an earlier run in this folder, {what}",
        request_id=request_id,
        fix=Fix(
            "redo",
            "changed",
            "generate it anew with {setting} (an earlier image is kept in previous/), "
            "or give the item a new key",
        ),
    )


def _differ(recorded: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    """Whether two requests differ as JSON: the recorded one has been through a JSON round
    trip (tuples came back as lists, number keys as strings, NaN unequal to itself)."""
    return _wire.canonical_json(recorded) != _wire.canonical_json(request)
