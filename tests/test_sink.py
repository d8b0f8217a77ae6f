"""Writing images to disk: small files inline, large ones through worker threads, both atomic."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from odiqueue._sink import (
    FLUSH_BYTES,
    INLINE_BYTES,
    ContentError,
    remove_parts,
    write_atomic,
)

pytestmark = pytest.mark.anyio

SIZES = [100, INLINE_BYTES, INLINE_BYTES + 1, 3 * FLUSH_BYTES + 7]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of(size: int, width: int = 1) -> bytes:
    """A whole grey PNG ``width`` pixels wide of exactly ``size`` bytes (padded with a
    private chunk that decoders skip)."""
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, 1, 8, 0, 0, 0, 0))
    body = _chunk(b"IDAT", zlib.compress(b"\x00" + b"\x80" * width))
    end = _chunk(b"IEND", b"")
    padding = size - len(head) - len(body) - len(end) - 12
    assert padding >= 0, f"{size} bytes is too small for a PNG"
    data = head + _chunk(b"paDd", b" " * padding) + body + end
    assert len(data) == size
    return data


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", SIZES)
async def test_written_whole_and_verified(tmp_path: Path, size: int) -> None:
    """Whatever the size (inline or threaded), the file holds every byte, its hash is the
    hash of those bytes, and no part file stays."""
    data = png_of(size)
    path = tmp_path / "new" / "a.png"  # the folder is created on first use
    saved = await write_atomic(path, chunks(data), expected_length=size)
    assert path.read_bytes() == data
    assert (saved.size, saved.format) == (size, "png")
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.parametrize("size", SIZES)
async def test_existing_file_kept_and_part_removed(tmp_path: Path, size: int) -> None:
    """A file that already exists is never replaced, and the part file is cleaned up."""
    path = tmp_path / "a.png"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        await write_atomic(path, chunks(png_of(size)))
    assert path.read_bytes() == b"mine"
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("size", SIZES)
async def test_existing_file_with_the_same_bytes_is_this_image(tmp_path: Path, size: int) -> None:
    """A file that already holds exactly these bytes (put there by an interrupted run) is
    taken as the saved image, not refused and not written again."""
    data = png_of(size)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    before = path.stat().st_ino
    saved = await write_atomic(path, chunks(data))
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert path.stat().st_ino == before
    assert list(tmp_path.iterdir()) == [path]


async def test_concurrent_writes_to_one_name_never_mix(tmp_path: Path) -> None:
    """Two large images written to one name at once: one wins whole, the other is refused
    whole, and the winner's file holds exactly its own bytes."""
    size = 3 * FLUSH_BYTES
    images = [png_of(size, width) for width in (1, 2)]
    path = tmp_path / "a.png"
    results: dict[int, object] = {}

    async def write(which: int) -> None:
        try:
            results[which] = await write_atomic(path, chunks(images[which], FLUSH_BYTES // 4))
        except FileExistsError as exc:
            results[which] = exc

    async with anyio.create_task_group() as group:
        for which in (0, 1):
            group.start_soon(write, which)
    (winner,) = [which for which, result in results.items() if not isinstance(result, Exception)]
    assert isinstance(results[1 - winner], FileExistsError)
    assert path.read_bytes() == images[winner]
    assert list(tmp_path.iterdir()) == [path]


def test_only_our_own_part_files_are_cleared(tmp_path: Path) -> None:
    """Clearing a killed run's leftovers leaves other programs' ``.part`` files alone."""
    (tmp_path / "a.png.123-4.odiqueue-part").write_bytes(b"ours")
    (tmp_path / "movie.mkv.part").write_bytes(b"a browser's download")
    remove_parts(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["movie.mkv.part"]


@pytest.mark.parametrize("size", SIZES)
async def test_cut_off_image_leaves_nothing(tmp_path: Path, size: int) -> None:
    """Fewer bytes than announced: ContentError, and nothing on disk."""
    with pytest.raises(ContentError, match="announced"):
        await write_atomic(tmp_path / "a.png", chunks(png_of(size)), expected_length=size + 1)
    assert list(tmp_path.iterdir()) == []
