"""Writing image bytes to disk: a part file, verification, then an atomic rename.

A file at its final name is always complete and verified; anything else is a part file
(``<name>.<writer>.odiqueue-part``) that is removed on failure. Each write has a part file
of its own, so two writes aimed at one name never mix their bytes, and the suffix is ours
alone, so clearing a killed run's leftovers never touches anybody else's ``.part`` files.

File I/O runs in worker threads, batched: bytes are gathered up to ``FLUSH_BYTES`` and handed
to a thread in one go, which also hashes them (off the event loop), and the last piece, the
close and the rename share one trip, so a large image costs a couple of thread hops and a
download never holds much more than ``FLUSH_BYTES`` of it in memory. A file of at most
``INLINE_BYTES`` is written on the event loop instead: its open, write and rename cost the
loop less than handing them to a thread would, much like a manifest append.

Before the rename, the whole file is checked to be an image (``_imagecheck``: every PNG
chunk's CRC through ``IEND``, a JPEG's markers through ``EOI``, a WebP's RIFF length): the
check is fed each piece where it is hashed, in the same worker thread, so it costs one more
pass over bytes already in memory (see ``benchmarks/imagecheck.py``). With
``verify="decode"`` Pillow also decodes the finished part file, always in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final, Literal

import anyio
import attrs
from anyio.lowlevel import RunVar

from odiqueue._imagecheck import ContentError, ImageCheck, decode, sniff_format

__all__ = [
    "FLUSH_BYTES",
    "INLINE_BYTES",
    "PART_SUFFIX",
    "ContentError",
    "SavedFile",
    "remove_parts",
    "sniff_format",
    "write_atomic",
]

FLUSH_BYTES: Final = 1024 * 1024
INLINE_BYTES: Final = 64 * 1024
PART_SUFFIX: Final = ".odiqueue-part"
# O_BINARY: on Windows a descriptor is otherwise opened in text mode, which rewrites bytes.
_CREATE: Final = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


@attrs.frozen
class SavedFile:
    """A verified image on disk."""

    path: Path
    size: int
    sha256: str
    format: str


def part_path(path: Path) -> str:
    """Where bytes for ``path`` are written until they are complete: a name no other write
    uses (this process's id and a count), so concurrent writes to one name stay apart."""
    return f"{os.fspath(path)}.{os.getpid()}-{next(_WRITES)}{PART_SUFFIX}"


_WRITES = itertools.count()


async def write_atomic(
    path: Path,
    chunks: AsyncIterator[bytes],
    *,
    expected_length: int | None = None,
    expected_format: str | None = None,
    overwrite: bool = False,
    verify: Literal["structure", "decode"] = "structure",
) -> SavedFile:
    """Stream ``chunks`` into ``path`` through a part file, verify, then rename.

    Raises :class:`FileExistsError` when ``path`` exists with other bytes and ``overwrite``
    is false (checked at the rename, so a file that appears meanwhile is kept too; a file
    with the very same bytes is this image already, and is kept as it is), and
    :class:`ContentError` when the bytes are empty, shorter or longer than
    ``expected_length``, not a known image format (or not ``expected_format``), or not a
    whole image (cut off, damaged: see ``_imagecheck``; with ``verify="decode"``, also
    when Pillow cannot decode it). The parent folder is created if needed. The part file
    never outlives a failure or a cancellation.
    """
    writer = _PartWriter(path, decode=verify == "decode")
    pending: list[bytes] = []
    pending_size = size = 0
    head = b""
    try:
        async for chunk in chunks:
            if len(head) < 16:
                head += chunk[:16]
            size += len(chunk)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= FLUSH_BYTES:
                await anyio.to_thread.run_sync(writer.write, b"".join(pending), limiter=_disk())
                pending, pending_size = [], 0
        found = _verify(size, head, expected_length, expected_format)
        rest = b"".join(pending)
        if size <= INLINE_BYTES and verify == "structure":
            writer.finish(rest, path, overwrite)
        else:
            await anyio.to_thread.run_sync(writer.finish, rest, path, overwrite, limiter=_disk())
    except BaseException:
        writer.discard()
        raise
    return SavedFile(path=path, size=size, sha256=writer.digest.hexdigest(), format=found)


def remove_parts(out_dir: Path) -> None:
    """Remove the part files a killed run left in ``out_dir`` (call under its lock)."""
    for part in out_dir.glob(f"*{PART_SUFFIX}"):
        part.unlink(missing_ok=True)


def _disk() -> anyio.CapacityLimiter:
    """Two writer threads per event loop: the disk is no faster with more, and every extra
    thread costs the event loop time in fights for the GIL."""
    try:
        return _DISK.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(2)
        _DISK.set(limiter)
        return limiter


_DISK: RunVar[anyio.CapacityLimiter] = RunVar("odiqueue_disk")


class _PartWriter:
    """The part file, touched from one worker thread at a time (or, for a small file,
    only from the event loop). Plain descriptors and text paths: no buffered file object or
    ``Path`` per image on the hot path."""

    def __init__(self, path: Path, *, decode: bool = False) -> None:
        self.part = part_path(path)
        self._fd: int | None = None
        # Hashed and checked where it is written: for a large image, in the worker thread
        # (hashlib and zlib.crc32 let go of the GIL), not on the event loop.
        self.digest = hashlib.sha256()
        self.check = ImageCheck()
        self._decode = decode

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.check.feed(data)
        if self._fd is None:
            try:
                self._fd = os.open(self.part, _CREATE, 0o666)
            except FileNotFoundError:
                # Only the first file of a new folder pays for creating it.
                os.makedirs(os.path.dirname(self.part), exist_ok=True)
                self._fd = os.open(self.part, _CREATE, 0o666)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def finish(self, data: bytes, path: Path, overwrite: bool) -> None:
        self.write(data)
        self.check.finish()
        fd, self._fd = self._fd, None
        assert fd is not None
        os.close(fd)
        if self._decode:
            decode(self.part)
        _publish(self.part, os.fspath(path), overwrite=overwrite, digest=self.digest)

    def discard(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            os.unlink(self.part)


def _verify(
    size: int, head: bytes, expected_length: int | None, expected_format: str | None
) -> str:
    if size == 0:
        raise ContentError("the image is empty")
    if expected_length is not None and size != expected_length:
        raise ContentError(f"got {size} bytes, the server announced {expected_length}")
    found = sniff_format(head)
    if found is None:
        raise ContentError(f"not an image (starts with {head[:8]!r})")
    if expected_format is not None and found != expected_format:
        raise ContentError(f"expected a {expected_format} image, got {found}")
    return found


def _publish(part: str, path: str, *, overwrite: bool, digest: hashlib._Hash) -> None:
    if overwrite:
        os.replace(part, path)
        return
    # A hard link fails if the name is taken, so a file that appeared meanwhile is kept.
    try:
        os.link(part, path)
    except FileExistsError:
        _taken(part, path, digest)
        return
    except OSError:
        if os.path.exists(path):
            _taken(part, path, digest)
            return
        os.replace(part, path)
        return
    os.unlink(part)


def _taken(part: str, path: str, digest: hashlib._Hash) -> None:
    """``path`` exists: fine if it holds these very bytes (a rerun fetching an image that an
    interrupted run had already put in place), else the existing file is kept and this
    write refused."""
    try:
        same_size = os.stat(path).st_size == os.stat(part).st_size
    except OSError:
        same_size = False
    # Sizes first: a large file that differs is never read (this may run on the event loop).
    if not same_size or _sha256_of(path) != digest.hexdigest():
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    os.unlink(part)


def _sha256_of(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(FLUSH_BYTES):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
