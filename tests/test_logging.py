"""The ``odiqueue`` logger: each DEBUG line of a call names the call and the job, never the key;
``ODIQUEUE_LOG`` turns it on for scripts."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from odiqueue import AsyncClient, AuthenticationError, RetryPolicy, instant_waits
from odiqueue.testing import Emulator, EmulatorConfig, Faults
from tests.helpers import emulated

KEY = "sk-logging-test-key-424242"
CALLS = ("submit", "status", "result", "cancel", "image")
LINE = re.compile(r"^(submit|status|result|cancel|image) of request ([^\s:]+): ")


def debug_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("odiqueue") and r.levelno == logging.DEBUG
    ]


@pytest.mark.anyio
async def test_debug_lines_name_the_call_and_the_request(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Every DEBUG line of every call (retries and errors too) starts with the call's name and
    the request id, and no line holds the key."""
    faults = Faults(rate_503=0.5, calls=frozenset({"status", "result", "image", "cancel"}))
    caplog.set_level(logging.DEBUG, logger="odiqueue")
    async with emulated(KEY, faults=faults, seed=3) as (emu, client):
        with instant_waits():
            for other in ("a logged chair", "a logged table"):
                await client.generate(other)
            result = await client.generate("a logged lamp")
            await client.download(
                result.images[0], tmp_path / "lamp.png", request_id=result.request_id
            )
            slow = await client.submit("a slow one [duration:600]")
            await client.cancel(slow)
    lines = debug_lines(caplog)
    seen = {LINE.match(line).group(1) for line in lines if LINE.match(line)}  # type: ignore[union-attr]
    assert seen == set(CALLS)
    ids = set(emu.stats.jobs)
    for line in lines:
        match = LINE.match(line)
        assert match, f"a DEBUG line that does not name its call: {line!r}"
        call, request_id = match.groups()
        assert request_id in ids or (call == "submit" and request_id == "(new)"), line
    assert any("retrying" in line for line in lines)
    assert all(KEY not in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_an_error_reply_quoting_the_key_is_logged_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused key's DEBUG line names the call and never shows the key."""
    caplog.set_level(logging.DEBUG, logger="odiqueue")
    async with (
        Emulator(EmulatorConfig(api_key="the-right-key-000")) as emu,
        AsyncClient(KEY, base_url=emu.base_url, retry=RetryPolicy(attempts=2)) as client,
    ):
        with pytest.raises(AuthenticationError):
            await client.submit("a refused cup")
    lines = debug_lines(caplog)
    assert any(line.startswith("submit of request (new): ") and "401" in line for line in lines)
    assert all(KEY not in r.getMessage() for r in caplog.records)


SCRIPT = """
import anyio
from odiqueue import AsyncClient, instant_waits
from odiqueue.testing import Emulator

async def main():
    async with Emulator() as emu, AsyncClient("sk-env-log-key-1234", base_url=emu.base_url) as c:
        with instant_waits():
            await c.generate("a script's apple")
    print("done")

anyio.run(main)
"""


def run_script(level: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIQUEUE_")}
    if level is not None:
        env["ODIQUEUE_LOG"] = level
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_odiqueue_log_debug_prints_each_call_on_stderr() -> None:
    """ODIQUEUE_LOG=debug shows every call's line on stderr, the key never."""
    done = run_script("debug")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    assert re.search(r"DEBUG odiqueue: submit of request \(new\): POST ", done.stderr)
    assert re.search(r"DEBUG odiqueue: status of request \S+: GET ", done.stderr)
    assert "INFO odiqueue: submitted request " in done.stderr
    assert "sk-env-log-key-1234" not in done.stderr


def test_odiqueue_log_levels() -> None:
    """Unset prints nothing; info shows milestones without DEBUG lines; a bad value is named."""
    assert run_script(None).stderr == ""
    info = run_script("INFO").stderr
    assert "submitted request" in info
    assert "DEBUG" not in info
    bad = run_script("loud")
    assert bad.returncode == 0
    assert "ODIQUEUE_LOG='loud'" in bad.stderr
