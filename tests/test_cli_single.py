"""The single-job commands with ``--emulator``, and ``-v``/``-vv`` on every command."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from odiqueue.testing import Emulator
from tests.helpers import until
from tests.test_cli import KEY, emu, odiqueue

pytestmark = pytest.mark.anyio

__all__ = ["emu"]  # the fixture, shared with test_cli


async def test_single_job_commands_on_a_running_emulator(emu: Emulator, tmp_path: Path) -> None:
    """submit, status, result and cancel take --emulator and need no key."""
    url = ("--emulator", "--base-url", emu.base_url)
    code, stdout, err = await odiqueue("submit", "a kite", *url, "--output", "id", key=None)
    assert code == 0, err
    request_id = stdout.strip()
    assert request_id in emu.stats.jobs
    await until(lambda: emu.stats.jobs[request_id].completed_at is not None)
    code, stdout, err = await odiqueue("status", request_id, *url, "--output", "json", key=None)
    assert (code, json.loads(stdout)["state"]) == (0, "succeeded"), err
    code, stdout, err = await odiqueue(
        "result", request_id, *url, "--out", tmp_path, "--output", "json", key=None
    )
    assert code == 0, err
    (image,) = json.loads(stdout)["images"]
    assert Path(image["path"]).exists()
    code, stdout, err = await odiqueue("cancel", request_id, *url, key=None)
    assert code == 0, err
    assert "already completed" in stdout


async def test_emulator_that_is_not_running_is_named() -> None:
    """--emulator with nobody listening says how to start one, quickly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}/model"
    code, _, err = await odiqueue("status", "mmsu_x", "--emulator", "--base-url", base, key=None)
    assert code == 1
    assert f"no emulator answers at {base}" in err
    assert "odiqueue emulator" in err


async def test_verbosity_levels(emu: Emulator) -> None:
    """No flag prints no log; -v shows milestones (INFO); -vv every call (DEBUG), never the key."""
    url = ("--base-url", emu.base_url)
    code, stdout, quiet = await odiqueue("submit", "a quiet kite", *url, "--output", "id")
    assert (code, quiet) == (0, "")
    code, _, info = await odiqueue("submit", "a kite", *url, "-v")
    assert code == 0
    assert "INFO odiqueue: submitted request " in info
    assert "DEBUG" not in info
    request_id = stdout.strip()
    code, _, debug = await odiqueue("status", request_id, *url, "-vv")
    assert code == 0
    assert f"DEBUG odiqueue: status of request {request_id}: GET " in debug
    assert KEY not in info + debug


async def test_generate_verbose(tmp_path: Path) -> None:
    """generate -vv logs each call of the batch on stderr."""
    products = tmp_path / "p.txt"
    products.write_text("a red mug\n")
    code, _, err = await odiqueue(
        "generate", products, "--out", tmp_path / "out", "--emulator", "--json", "-vv", key=None
    )
    assert code == 0, err
    assert "DEBUG odiqueue: submit of request (new): POST " in err
