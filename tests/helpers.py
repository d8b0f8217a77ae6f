"""What many tests share: reply bodies, an emulator with a client, waiting for a state,
running a batch to the end, and reading what it left in its folder. Imported by test
files; ``conftest.py`` holds only pytest's own fixtures."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from odiqueue import AsyncClient, Outcome, RetryPolicy
from odiqueue.testing import Emulator, EmulatorConfig

DATA = Path(__file__).parent / "data"
WAIT_BOUND = 15.0  # seconds a test waits for a state before giving up (never asserted)
IMAGE_SUFFIXES = (".png", ".jpg", ".webp")


def reply(name: str) -> Any:
    """Load one reply body from tests/data (copied from the shared fixtures)."""
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


#: The 1x1 PNG the documented inline-result reply carries.
PNG_1X1 = base64.b64decode(reply("result.openai_b64")["data"][0]["b64_json"])


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


async def collect(client: AsyncClient, items: Any, out: Path, **options: Any) -> list[Outcome]:
    """Run ``generate_many`` to its end; its outcomes in completion order."""
    async with client.generate_many(items, out, **options) as outcomes:
        return [outcome async for outcome in outcomes]


def manifest_lines(out: Path, *, torn_ok: bool = False) -> list[dict[str, Any]]:
    """The manifest's lines as objects. With ``torn_ok`` (a process killed mid-write), a
    missing manifest is empty and a last line cut short is left out."""
    manifest = out / "manifest.jsonl"
    if torn_ok and not manifest.exists():
        return []
    lines = manifest.read_text().splitlines()
    return [json.loads(line) for line in lines if not torn_ok or line.endswith("}")]


def manifest_events(out: Path) -> list[str]:
    """The manifest's events in order (intent, submitted, saved, ...)."""
    return [line["event"] for line in manifest_lines(out)]


def image_files(out: Path) -> list[Path]:
    """The image files in ``out``, sorted."""
    return sorted(p for p in out.iterdir() if p.suffix in IMAGE_SUFFIXES)
