"""The append-only ``manifest.jsonl`` that makes a batch resumable, and its lock.

One JSON object per line, each with an ``event``:

``intent``     written *before* a submit POST: if no ``submitted`` line follows, the POST's
               fate is unknown (the process died or the reply was lost): "uncertain".
``submitted``  key, attempt, request_id, the three URLs, the model and the request (each
               local input file as its sha256 digest, so a changed photo is a changed
               request).
``saved``      key, request_id, and each file's name, size and sha256.
``failed``     key, request_id (if any), error class, message, error_type, permanent.
``cancelled``  key, request_id: cancelled by this client (an interrupted batch).

Lines are appended with one ``os.write`` on an ``O_APPEND`` descriptor: small appends land in
the page cache at once, so the intent line is in the file before the POST leaves, and a
killed process never leaves half a line except the very last, which loading tolerates.

A full disk: a line the kernel takes only part of (a short write) counts as not written and
is cut back off, so no torn line hides the next. A line that cannot be written is kept in
memory and written before any later one once there is room if it names a paid job (an
``intent`` line is dropped instead: its POST is never sent). While the manifest is open,
``RESERVE_NAME`` holds ``MANIFEST_RESERVE`` bytes of the disk; when the disk is full it is
given up, so the lines of the jobs already paid for still have room.
:meth:`Journal.room_problem` says when no new job may be paid for: a line was refused, the
reserve is spent, or less than ``MIN_FREE_BYTES`` is free.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from odiqueue import _wire
from odiqueue._batch._records import (
    MANIFEST_NAME,
    Event,
    KeyState,
    parse_lines,
)
from odiqueue._errors import ConfigurationError, OdiqueueError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MANIFEST_RESERVE",
    "MIN_FREE_BYTES",
    "RESERVE_NAME",
    "Journal",
    "failure_fields",
    "unusable_folder",
]

log = logging.getLogger("odiqueue")

LOCK_NAME: Final = ".odiqueue.lock"
RESERVE_NAME: Final = ".odiqueue.reserve"
#: Bytes of the disk set aside while a batch runs, for the manifest lines of jobs already
#: paid for (a "submitted" line is about 1 KB plus the prompt).
MANIFEST_RESERVE: Final = 256 * 1024
#: No job is submitted while the output folder's disk has less than this free (beyond the
#: reserve): its images and manifest lines need the room.
MIN_FREE_BYTES: Final = 1024 * 1024


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
        #: Lines the disk refused, oldest first: written before any later line.
        self._pending: deque[bytes] = deque()
        #: The manifest's length up to its last whole line.
        self._size = 0
        self._reserve = out_dir / RESERVE_NAME
        self._reserve_spent = False

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
            self._size = os.fstat(self._fd).st_size
            self._set_reserve_aside()
        except OSError as exc:
            self.close()
            raise unusable_folder(self.out_dir, exc) from None
        except BaseException:
            self.close()
            raise
        return states

    def close(self) -> None:
        """Close the manifest (a last try at the lines still waiting), release the lock."""
        if self._fd is not None and self._pending:
            self._flush()
            for data in self._pending:
                log.error(
                    "not in %s (the disk is full), keep this line: %s",
                    self.path,
                    data.decode().strip(),
                )
            self._pending.clear()
        with contextlib.suppress(OSError):
            self._reserve.unlink(missing_ok=True)
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)

    def write(self, event: Event, key: str, **fields: Any) -> bool:
        """Append one event line; False when the disk refuses it (a full disk, a removed
        folder). That is logged once and kept in :attr:`failure`, never raised: the jobs
        already paid for must go on to be saved whatever the manifest can still hold.

        A refused line that names a job (``request_id``: paid for) is kept and written
        before any later one; any other is dropped (an ``intent``'s POST is then not sent,
        and a failure without a job changes nothing for a rerun)."""
        if self._fd is None:
            raise RuntimeError("journal is not open")
        line = {"event": event, "key": key, "t": round(time.time(), 3), **fields}
        data = (_wire.dumps(line) + "\n").encode()
        self._pending.append(data)
        self._flush()
        if not self._pending:
            return True
        if not fields.get("request_id"):
            self._pending.pop()
        return False

    def room_problem(self) -> str | None:
        """Why no new job may be paid for now (the disk is full or nearly), or None."""
        if self.failure is not None or self._pending:
            return f"cannot write the manifest {self.path} ({self.failure})"
        if self._reserve_spent:
            return f"the disk of {self.out_dir} is full (the manifest's reserve is spent)"
        try:
            stats = os.statvfs(self.out_dir)
        except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
            return None
        free = stats.f_bavail * stats.f_frsize
        if free < MIN_FREE_BYTES:
            return (
                f"only {free} bytes are free on the disk of {self.out_dir}; a new job needs "
                f"{MIN_FREE_BYTES}"
            )
        return None

    def _flush(self) -> None:
        """Write the waiting lines in order, giving up the reserve if that makes room."""
        while self._pending:
            try:
                self._append(self._pending[0])
            except OSError as exc:
                if exc.errno == errno.ENOSPC and self._spend_reserve():
                    continue
                if self.failure is None:
                    log.error("cannot write %s (%s): no more jobs are submitted", self.path, exc)
                self.failure = exc
                return
            self._pending.popleft()

    def _append(self, data: bytes) -> None:
        assert self._fd is not None
        written = os.write(self._fd, data)
        if written < len(data):
            # A full disk took part of the line: cut it back off, or the torn line would
            # swallow the next one (a rerun would drop both, and pay for both again).
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                # Cannot cut it: end it instead, so only this (unreadable) line is lost.
                with contextlib.suppress(OSError):
                    self._size += written + os.write(self._fd, b"\n")
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (a short write)")
        self._size += written

    def _set_reserve_aside(self) -> None:
        """Claim ``MANIFEST_RESERVE`` bytes of the disk (best effort: a disk without that
        room refuses new jobs anyway, see :meth:`room_problem`)."""
        self._reserve_spent = False
        try:
            fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, MANIFEST_RESERVE)
            else:  # pragma: no cover - no posix_fallocate (macOS): write the bytes
                os.ftruncate(fd, 0)
                os.write(fd, bytes(MANIFEST_RESERVE))
        except OSError:
            with contextlib.suppress(OSError):
                self._reserve.unlink()
        finally:
            os.close(fd)

    def _spend_reserve(self) -> bool:
        """Give the reserve's room to the manifest; False when there is none left."""
        try:
            self._reserve.unlink()
        except OSError:
            return False
        self._reserve_spent = True
        log.error(
            "the disk of %s is full: the manifest's reserve is used for the jobs already "
            "paid for, and no more jobs are submitted",
            self.out_dir,
        )
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
        yield from parse_lines(data[:end], self.path).items()


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
