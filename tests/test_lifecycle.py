"""The package's version, and a client opened and closed by hand (application lifespans)."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

import odiqueue
from odiqueue import AsyncClient, ClientClosedError, instant_waits
from odiqueue._cli import main
from odiqueue.testing import Emulator

KEY = "sk-lifecycle-key-0123456789"


def test_version_is_the_installed_distribution() -> None:
    """odiqueue.__version__ is the installed package's version, a PEP 440 string."""
    assert odiqueue.__version__ == version("odiqueue")
    assert re.fullmatch(r"\d+(\.\d+)*([.-]?(a|b|rc|dev|post)\d*)*(\+[\w.]+)?", odiqueue.__version__)


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`odiqueue --version` prints the name and version and exits 0."""
    with pytest.raises(SystemExit) as leaving:
        main(["--version"])
    assert leaving.value.code == 0
    assert capsys.readouterr().out.strip() == f"odiqueue {odiqueue.__version__}"


@pytest.mark.anyio
async def test_open_and_aclose_without_async_with(tmp_path: Path) -> None:
    """open() readies a client as `async with` does; aclose() ends it; calls then refuse."""
    async with Emulator() as emu:
        client = AsyncClient(KEY, base_url=emu.base_url)
        with pytest.raises(ClientClosedError, match=r"await client\.open\(\)"):
            await client.submit("too early")
        await client.open()
        try:
            with instant_waits():
                result = await client.generate("a red apple")
            await client.download(result.images[0], tmp_path / "apple.png")
        finally:
            await client.aclose()
        assert emu.stats.requests["submit"] == 1
        with pytest.raises(ClientClosedError, match="closed"):
            await client.submit("too late")


@pytest.mark.anyio
async def test_a_client_opens_once() -> None:
    """Opening an open or closed client raises ClientClosedError; entering it too."""
    client = AsyncClient(KEY, base_url="http://127.0.0.1:9/model")
    await client.open()
    try:
        with pytest.raises(ClientClosedError, match="open"):
            await client.open()
        with pytest.raises(ClientClosedError):
            await client.__aenter__()
    finally:
        await client.aclose()
    with pytest.raises(ClientClosedError, match="closed"):
        await client.open()
