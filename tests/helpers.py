"""What many tests share: reply bodies, an emulator with a client, waiting for a state,
running a batch to the end, and reading what it left in its folder. Imported by test
files; ``conftest.py`` holds only pytest's own fixtures."""

from __future__ import annotations

import base64
import csv
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web

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


CLI_KEY = "sk-cli-test-key-55555"
_SCRIPT = Path(sys.executable).with_name("odiqueue")
#: How tests run the console script (the installed one, else ``python -m odiqueue``).
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "odiqueue"]


def env(key: str | None = CLI_KEY) -> dict[str, str]:
    """This process's environment without ``ODIQUEUE_*``, with ``key`` as the API key."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("ODIQUEUE_")}
    if key is not None:
        values["ODIQUEUE_API_KEY"] = key
    return values


async def odiqueue(
    *args: str | Path, key: str | None = CLI_KEY, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run ``odiqueue ARGS``; its exit code, stdout and stderr."""
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [*COMMAND, *map(str, args)], env=env(key), cwd=cwd, check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A CSV file of ``header`` and ``rows`` at ``path``."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@asynccontextmanager
async def serving(app: web.Application, **runner_options: Any) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port for the ``with`` block; its base URL."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def job_created(queue_url: str, job: str) -> web.Response:
    """The documented submit reply for ``job`` of the queue at ``queue_url``."""
    base = f"{queue_url}/requests/{job}"
    return web.json_response(
        {
            "request_id": job,
            "status_url": f"{base}/status",
            "response_url": f"{base}/response",
            "cancel_url": f"{base}/cancel",
        }
    )
