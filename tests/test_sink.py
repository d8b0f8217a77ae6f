"""Writing images to disk: small files inline, large ones through worker threads, both atomic."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from odiqueue._sink import FLUSH_BYTES, INLINE_BYTES, ContentError, write_atomic

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n"

SIZES = [100, INLINE_BYTES, INLINE_BYTES + 1, 3 * FLUSH_BYTES + 7]


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", SIZES)
async def test_written_whole_and_verified(tmp_path: Path, size: int) -> None:
    """Whatever the size (inline or threaded), the file holds every byte, its hash is the
    hash of those bytes, and no .part stays."""
    data = PNG + bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    path = tmp_path / "new" / "a.png"  # the folder is created on first use
    saved = await write_atomic(path, chunks(data), expected_length=size)
    assert path.read_bytes() == data
    assert (saved.size, saved.format) == (size, "png")
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.parametrize("size", SIZES)
async def test_existing_file_kept_and_part_removed(tmp_path: Path, size: int) -> None:
    """A file that already exists is never replaced, and the .part file is cleaned up."""
    path = tmp_path / "a.png"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        await write_atomic(path, chunks(PNG + bytes(size - len(PNG))))
    assert path.read_bytes() == b"mine"
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("size", SIZES)
async def test_cut_off_image_leaves_nothing(tmp_path: Path, size: int) -> None:
    """Fewer bytes than announced: ContentError, and nothing on disk."""
    with pytest.raises(ContentError, match="announced"):
        await write_atomic(
            tmp_path / "a.png", chunks(PNG + bytes(size - len(PNG))), expected_length=size + 1
        )
    assert list(tmp_path.iterdir()) == []
