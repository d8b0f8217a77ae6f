"""pytest's own fixtures; what tests share otherwise is in ``helpers.py``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """aiohttp runs only on asyncio, so every async test does too."""
    return "asyncio"
