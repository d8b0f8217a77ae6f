"""The append-only ``manifest.jsonl`` that makes a batch resumable, and its lock.

One JSON object per line, each with an ``event``:

``intent``     written *before* a submit POST: if no ``submitted`` line follows, the POST's
               fate is unknown (the process died or the reply was lost): "uncertain".
``submitted``  key, attempt, request_id, the three URLs and the request.
``saved``      key, request_id, and each file's name, size and sha256.
``failed``     key, request_id (if any), error class, message, error_type, permanent.
``cancelled``  key, request_id: cancelled by this client (an interrupted batch).

Lines are appended with one ``os.write`` on an ``O_APPEND`` descriptor: small appends land in
the page cache at once, so the intent line is in the file before the POST leaves, and a
killed process never leaves half a line except the very last, which loading tolerates.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from odiqueue import _wire
from odiqueue._errors import ConfigurationError, OdiqueueError
from odiqueue._models import JobHandle

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MANIFEST_NAME",
    "Journal",
    "KeyState",
    "failure_fields",
    "read_manifest",
    "unusable_folder",
]

log = logging.getLogger("odiqueue")

MANIFEST_NAME: Final = "manifest.jsonl"
LOCK_NAME: Final = ".odiqueue.lock"

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
    #: The job's estimated cost, when a line recorded one.
    estimated_cost: float | None = None


def failure_fields(error: OdiqueueError, permanent: bool) -> dict[str, Any]:
    """The fields of a "failed" line: enough for a rerun to tell whether to try again."""
    return {
        "request_id": error.request_id,
        "error_class": type(error).__name__,
        "error": error.message,
        "error_type": getattr(error, "error_type", None),
        "permanent": permanent,
    }


class Journal:
    """The manifest of one ``out_dir``: loaded on open, appended to as jobs progress."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST_NAME
        self._fd: int | None = None
        self._lock_fd: int | None = None
        #: The last error the disk gave when a line was written, if any.
        self.failure: OSError | None = None

    def open(self, *, fresh: bool = False) -> dict[str, KeyState]:
        """Take the lock, read what earlier runs recorded, and open for appending.

        ``fresh`` first renames an earlier manifest out of the way (``resume=False``): under
        the lock, so a manifest another process is still writing is never moved.
        """
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as exc:
            raise unusable_folder(self.out_dir, exc) from None
        try:
            if fresh and self.path.exists():
                self.path.rename(self._set_aside_name())
            states = dict(self._load())
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            self.close()
            raise unusable_folder(self.out_dir, exc) from None
        except BaseException:
            self.close()
            raise
        return states

    def close(self) -> None:
        """Close the manifest and release the lock."""
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)

    def write(self, event: Event, key: str, **fields: Any) -> bool:
        """Append one event line; False when the disk refuses it (a full disk, a removed
        folder). That is logged once and kept in :attr:`failure`, never raised: the jobs
        already paid for must go on to be saved whatever the manifest can still hold."""
        if self._fd is None:
            raise RuntimeError("journal is not open")
        line = {"event": event, "key": key, "t": round(time.time(), 3), **fields}
        try:
            os.write(self._fd, (_wire.dumps(line) + "\n").encode())
        except OSError as exc:
            if self.failure is None:
                log.error("cannot write %s (%s): no more jobs are submitted", self.path, exc)
            self.failure = exc
            return False
        return True

    def _set_aside_name(self) -> Path:
        """A name no earlier set-aside manifest has (two fresh starts can share a second):
        each may list jobs that are paid for. Checked under the lock, so no other batch
        takes the name meanwhile."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        candidate = self.path.with_name(f"manifest-{stamp}.jsonl")
        tries = itertools.count(1)
        while candidate.exists():
            candidate = self.path.with_name(f"manifest-{stamp}-{next(tries)}.jsonl")
        return candidate

    def _lock(self) -> None:
        fd = os.open(self.out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ConfigurationError(
                    f"another odiqueue process (pid {holder}) is writing to {self.out_dir}: "
                    "wait for it to finish, or use another output folder"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _load(self) -> Iterator[tuple[str, KeyState]]:
        if not self.path.exists():
            return
        with self.path.open("rb+") as f:
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                # A torn last line from a killed process: drop it so appends start clean.
                log.warning("dropping a torn last line of %s", self.path)
                f.truncate(end)
        yield from _parse(data[:end], self.path).items()


def read_manifest(out_dir: Path) -> dict[str, KeyState]:
    """What the manifest of ``out_dir`` records, read without the lock and without changing
    the file, so that a report can be made while a batch is still writing it (a line being
    appended just now is left for the next read). Empty when there is no manifest."""
    path = out_dir / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    return _parse(data[: data.rfind(b"\n") + 1], path)


def _parse(data: bytes, path: Path) -> dict[str, KeyState]:
    states: dict[str, KeyState] = {}
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            line = json.loads(raw)
            _apply(states, line)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable line %d of %s: %s", number, path, exc)
    return states


def unusable_folder(out_dir: Path, exc: OSError) -> ConfigurationError:
    """One line on why ``out_dir`` cannot hold a batch (raised before anything is sent)."""
    if out_dir.is_symlink() and not out_dir.exists():
        reason = f"is a symbolic link to {os.readlink(out_dir)}, which does not exist"
    elif (parent := _file_above(out_dir)) is not None:
        reason = f"{parent} is a file, not a folder"
    else:
        where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != out_dir else ""
        reason = f"cannot be used as the output folder: {exc.strerror or exc}{where}"
    return ConfigurationError(f"out_dir {out_dir} {reason}")


def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a folder."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _apply(states: dict[str, KeyState], line: Mapping[str, Any]) -> None:
    key, event = line["key"], line["event"]
    state = states.get(key)
    cost = line.get("estimated_cost", state.estimated_cost if state else None)
    if event == "intent":
        if state is None:
            states[key] = KeyState("intent", attempt=line.get("attempt", 1), estimated_cost=cost)
        else:
            state.stage, state.attempt = "intent", line.get("attempt", state.attempt + 1)
            state.estimated_cost = cost
    elif event == "submitted":
        handle = JobHandle(
            request_id=line["request_id"],
            status_url=line["status_url"],
            response_url=line["response_url"],
            cancel_url=line["cancel_url"],
        )
        states[key] = KeyState(
            "submitted",
            attempt=line.get("attempt", 1),
            handle=handle,
            request=line.get("request"),
            estimated_cost=cost,
        )
    elif event == "saved":
        prior = state.handle if state else None
        request = state.request if state else None
        states[key] = KeyState(
            "saved", handle=prior, files=tuple(line["files"]), request=request, estimated_cost=cost
        )
    elif event in ("failed", "cancelled"):
        prior_attempt = state.attempt if state else 0
        states[key] = KeyState(
            event,
            attempt=prior_attempt,
            handle=state.handle if state else None,
            error=line.get("error"),
            error_type=line.get("error_type"),
            permanent=bool(line.get("permanent")),
            request=state.request if state else None,
            estimated_cost=cost,
        )
    else:
        raise ValueError(f"unknown event {event!r}")


def files_present(out_dir: Path, state: KeyState) -> bool:
    """Whether every file a ``saved`` line lists is still on disk at its recorded size."""
    try:
        return bool(state.files) and all(
            (out_dir / f["name"]).stat().st_size == f["size"] for f in state.files
        )
    except (OSError, KeyError, TypeError):
        return False
