"""Writing image bytes to disk: a ``.part`` file, verification, then an atomic rename.

A file at its final name is always complete and verified; anything else is a ``.part`` file
that is removed on failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import attrs

__all__ = ["SavedFile", "sniff_format", "write_atomic"]

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


class ContentError(ValueError):
    """Downloaded bytes that are not the image they claim to be (empty, cut off, wrong type)."""


@attrs.frozen
class SavedFile:
    """A verified image on disk."""

    path: Path
    size: int
    sha256: str
    format: str


def sniff_format(head: bytes) -> str | None:
    """The image format the first bytes announce: png, jpeg, webp, gif, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def part_path(path: Path) -> Path:
    """Where bytes for ``path`` are written until they are complete."""
    return path.with_name(path.name + ".part")


async def write_atomic(
    path: Path,
    chunks: AsyncIterator[bytes],
    *,
    expected_length: int | None = None,
    expected_format: str | None = None,
    overwrite: bool = False,
) -> SavedFile:
    """Stream ``chunks`` into ``path`` through ``path.part``, verify, then rename.

    Raises :class:`FileExistsError` when ``path`` exists and ``overwrite`` is false (checked
    before and at the rename), and :class:`ContentError` when the bytes are empty, shorter
    or longer than ``expected_length``, or not a known image format (or not
    ``expected_format``). The ``.part`` file never outlives a failure or a cancellation.
    """
    if not overwrite and await anyio.Path(path).exists():
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    part = part_path(path)
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        async with await anyio.open_file(part, "wb") as out:
            async for chunk in chunks:
                if len(head) < 16:
                    head += chunk[:16]
                digest.update(chunk)
                size += len(chunk)
                await out.write(chunk)
        found = _verify(size, head, expected_length, expected_format)
        _publish(part, path, overwrite=overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return SavedFile(path=path, size=size, sha256=digest.hexdigest(), format=found)


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


def _publish(part: Path, path: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(part, path)
        return
    # A hard link fails if the name is taken, so a file that appeared meanwhile is kept.
    try:
        os.link(part, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)") from None
    except OSError:
        if path.exists():
            raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)") from None
        os.replace(part, path)
        return
    part.unlink()
