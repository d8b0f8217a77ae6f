"""Shared test setup: anyio on asyncio only, fixtures for the emulator and reply bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """aiohttp runs only on asyncio, so every async test does too."""
    return "asyncio"


def reply(name: str) -> Any:
    """Load one reply body from tests/data (copied from the shared fixtures)."""
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
