"""A batch's first step for each item: from what the caller gave to work for a worker, or
straight to an outcome that needs no request (an item that is no valid request, one an
earlier run already finished, one whose file names are taken).

Nothing is paid for here: this is where an item is refused before paying.
"""

from __future__ import annotations

from pathlib import Path

from odiqueue import _backoff, _wire
from odiqueue._collector import Collector
from odiqueue._errors import OutputFileError
from odiqueue._journal import KeyState
from odiqueue._keys import Item, ItemKeys, bad_item
from odiqueue._live import LiveJobs
from odiqueue._models import BatchItem, ImageRequest, Outcome
from odiqueue._naming import literal_template
from odiqueue._options import BatchOptions
from odiqueue._progress import Tally
from odiqueue._resume import decide, first_taken
from odiqueue._work import Work

__all__ = ["Intake"]


class Intake:
    """Turns each input item into :class:`Work` or an :class:`Outcome`, in input order."""

    def __init__(
        self,
        out_dir: Path,
        options: BatchOptions,
        collector: Collector,
        live: LiveJobs,
        tally: Tally,
    ) -> None:
        self._out_dir = out_dir
        self._options = options
        self._collector = collector
        self._live = live
        self._tally = tally
        self._keys = ItemKeys()
        #: What earlier runs recorded, by key (set once the manifest is read).
        self.states: dict[str, KeyState] = {}
        # Lower-cased file names claimed by this run's items, with the item's index.
        self._claimed: dict[str, int] = {}

    def take(self, item: Item, index: int) -> Work | Outcome:
        """The item as work, or as an outcome an earlier run (or a check) already decided.

        Raises ``TypeError`` or ``ValueError`` for an item of the wrong shape or a repeated
        key (see :class:`ItemKeys`).
        """
        key, request = self._keys.identify(item, index)
        if request is None:
            self._tally.bump("failed")
            return Outcome(key=key, index=index, request=ImageRequest("?"), error=bad_item(item))
        state = self.states.pop(key, None)
        sent = None if state is None else _wire.request_to_json(request)
        decision = decide(key, state, self._out_dir, sent)
        if decision.verdict == "skip":
            self._tally.bump("saved")
            self._tally.bump("skipped")
            for name in decision.files:  # its files are this item's: no later item's
                self._claimed.setdefault(name.lower(), index)
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
            resumed=decision.resumed,
            uncertain=decision.uncertain,
            attempts=decision.attempts,
        )
        if isinstance(item, BatchItem) and item.name:
            work.template = literal_template(item.name)
        if decision.handle is not None:  # attach: already paid for, followed by id
            work.handle, work.submitted_at = decision.handle, _backoff.now()
            work.inherited = True
            self._live.add(key, decision.handle)
        elif decision.uncertain:
            self._tally.bump("uncertain")
        return self._check_free(work)

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
        names = [path.name.lower() for path in paths]
        error: OutputFileError | None = None
        if work.handle is not None:
            # Paid for already, so never refused; but a name another item holds is left
            # to that item, even with ``overwrite``: the image goes beside it.
            work.keep_apart = any(name in self._claimed for name in names)
        else:
            clash = next((name for name in names if name in self._claimed), None)
            if clash is not None:
                error = OutputFileError(
                    f"item {work.index}: its image would be saved as {clash}, like item "
                    f"{self._claimed[clash]}'s: give the items names of their own"
                )
            elif not self._options.overwrite:
                error = first_taken(paths)
        if error is None:
            for name in names:
                self._claimed.setdefault(name, work.index)
            return work
        self._tally.bump("failed")
        return Outcome(key=work.key, index=work.index, request=work.request, error=error)
