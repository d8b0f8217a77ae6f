"""Shared test setup: anyio on asyncio only, fixtures for the emulator and reply bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from odiqueue import AsyncClient, RetryPolicy
from odiqueue.testing import Emulator, EmulatorConfig

DATA = Path(__file__).parent / "data"
WAIT_BOUND = 15.0  # seconds a test waits for a state before giving up (never asserted)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """aiohttp runs only on asyncio, so every async test does too."""
    return "asyncio"


def reply(name: str) -> Any:
    """Load one reply body from tests/data (copied from the shared fixtures)."""
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


@asynccontextmanager
async def emulated(
    key: str = "sk-test-key-0123456789", **config: Any
) -> AsyncIterator[tuple[Emulator, AsyncClient]]:
    """An emulator configured with ``config`` and a client pointed at it."""
    async with (
        Emulator(EmulatorConfig(**config)) as emu,
        AsyncClient(key, base_url=emu.base_url, retry=RetryPolicy(attempts=10)) as client,
    ):
        yield emu, client


async def until(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds; the bound only stops a broken test."""
    with anyio.fail_after(WAIT_BOUND):
        while not check():
            await anyio.sleep(0.005)
