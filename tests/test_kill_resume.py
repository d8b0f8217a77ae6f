"""A batch killed with SIGKILL halfway, run again: everything saved, nothing paid twice."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import anyio
import pytest
from PIL import Image as PILImage

from odiqueue.testing import Emulator, EmulatorConfig

pytestmark = pytest.mark.anyio

RUNNER = Path(__file__).with_name("batch_runner.py")
ITEMS = 300


def saved_lines(out: Path) -> int:
    manifest = out / "manifest.jsonl"
    if not manifest.exists():
        return 0
    return manifest.read_text().count('"event":"saved"')


async def test_sigkill_halfway_then_resume(tmp_path: Path) -> None:
    """After a SIGKILL at about half way, a rerun saves all 300 and submits only the rest."""
    config = EmulatorConfig(workers=8, job_seconds=0.05, duration_sigma=0.5, seed=7)
    async with Emulator(config) as emu:
        command = [sys.executable, str(RUNNER), emu.base_url, str(tmp_path), str(ITEMS)]
        first = await anyio.open_process(command)
        with anyio.fail_after(60):
            while saved_lines(tmp_path) < ITEMS // 2:
                assert first.returncode is None, "the first run ended before it was killed"
                await anyio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await first.aclose()
        killed_at = saved_lines(tmp_path)
        assert killed_at < ITEMS

        with anyio.fail_after(90):
            second = await anyio.run_process(command)
        summary = json.loads(second.stdout.decode().strip().splitlines()[-1])

        assert summary["saved"] == ITEMS
        assert summary["failed"] == 0
        assert summary["resumed"] >= killed_at
        # The API has no idempotency key: a POST in flight at the kill may have created a
        # job the manifest never heard of. Those, and only those, are submitted again.
        assert emu.stats.requests["submit"] == ITEMS + summary["uncertain"]

    images = sorted(tmp_path.glob("*.png"))
    assert len(images) == ITEMS
    for path in images:
        with PILImage.open(path) as img:
            img.verify()
    assert not list(tmp_path.glob("*.part"))
