"""What the client's calls raise is an OdiqueueError: a taken or unwritable file, bad ids."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from odiqueue import (
    AsyncClient,
    Image,
    InvalidParameterError,
    OdiqueueError,
    OutputFileError,
    OutputFileExistsError,
    instant_waits,
)
from odiqueue.testing import Emulator, EmulatorConfig

KEY = "sk-output-errors-key-0123456789"


async def one_image(client: AsyncClient) -> Image:
    with instant_waits():
        result = await client.generate("a red apple")
    return result.images[0]


@pytest.mark.anyio
async def test_download_onto_an_existing_file(tmp_path: Path) -> None:
    """An existing file is kept and OutputFileExistsError raised: an OdiqueueError, a
    FileExistsError (as before), chained to the sink's own error."""
    target = tmp_path / "apple.png"
    target.write_bytes(b"the user's own file")
    async with Emulator() as emu, AsyncClient(KEY, base_url=emu.base_url) as client:
        image = await one_image(client)
        with pytest.raises(OdiqueueError) as caught:
            await client.download(image, target, request_id="req-1")
    error = caught.value
    assert isinstance(error, OutputFileExistsError)
    assert isinstance(error, OutputFileError)
    assert isinstance(error, FileExistsError)
    assert type(error.__cause__) is FileExistsError
    assert error.request_id == "req-1"
    assert str(target) in str(error)
    assert target.read_bytes() == b"the user's own file"


@pytest.mark.anyio
async def test_download_into_a_file_as_folder(tmp_path: Path) -> None:
    """A path under a file (not a folder) raises OutputFileError naming it, chained."""
    (tmp_path / "plain").write_text("not a folder")
    target = tmp_path / "plain" / "apple.png"
    async with Emulator() as emu, AsyncClient(KEY, base_url=emu.base_url) as client:
        image = await one_image(client)
        with pytest.raises(OutputFileError, match="could not write") as caught:
            await client.download(image, target)
    assert not isinstance(caught.value, OSError)
    assert isinstance(caught.value.__cause__, OSError)
    assert str(target) in str(caught.value)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MB tmpfs, filled up (skipped where mounting is not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        with (mount / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.anyio
async def test_download_onto_a_full_disk(full_disk: Path) -> None:
    """A full disk raises OutputFileError chained to the OSError, and leaves no file."""
    async with Emulator(EmulatorConfig(image_bytes=200_000)) as emu:
        async with AsyncClient(KEY, base_url=emu.base_url) as client:
            image = await one_image(client)
            with pytest.raises(OutputFileError, match="could not write") as caught:
                await client.download(image, full_disk / "apple.png")
    assert isinstance(caught.value.__cause__, OSError)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


@pytest.mark.anyio
@pytest.mark.parametrize("request_id", ["", "   "])
async def test_attach_needs_an_id(request_id: str) -> None:
    """An empty request id is an InvalidParameterError naming request_id (still a ValueError)."""
    async with AsyncClient(KEY, base_url="http://127.0.0.1:9/model") as client:
        with pytest.raises(InvalidParameterError, match="request_id") as caught:
            client.attach(request_id)
    assert isinstance(caught.value, ValueError)


@pytest.mark.anyio
async def test_download_of_an_empty_image(tmp_path: Path) -> None:
    """An Image with neither a URL nor inline data is an InvalidParameterError naming it."""
    async with AsyncClient(KEY, base_url="http://127.0.0.1:9/model") as client:
        with pytest.raises(InvalidParameterError, match="image"):
            await client.download(Image(), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []
