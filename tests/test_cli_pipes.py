"""The command line as a Unix tool: a reader that leaves early, and the emulator's usage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from odiqueue._cli import main
from odiqueue.testing import Emulator

ROOT = Path(__file__).parent.parent


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIQUEUE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_generate_json_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`generate --json | head -1`: no traceback, exit 141; the manifest records the run."""
    rows = tmp_path / "rows.txt"
    rows.write_text("".join(f"a product photo number {i}\n" for i in range(40)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "odiqueue", "generate", str(rows), "--out", str(out)]
    command += ["--emulator", "--json"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment()
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        # The reader leaves, as `head -1` does, while the batch is still running.
        process.stdout.close()
        errors = process.stderr.read()
        code = process.wait(timeout=60)
    assert json.loads(first.splitlines()[0])["event"] == "message"
    assert b"Traceback" not in errors
    assert b"BrokenPipeError" not in errors
    assert errors == b""
    assert code == 141
    events = [
        json.loads(line)["event"]
        for line in (out / "manifest.jsonl").read_text().split("\n")
        if line
    ]
    assert "submitted" in events


@pytest.mark.anyio
async def test_single_job_output_into_a_closed_pipe() -> None:
    """`odiqueue submit ... | true`: the job is submitted, then a quiet exit 141."""
    async with Emulator() as emu:
        read, write = os.pipe()
        os.close(read)  # the reader is gone before anything is written
        env = {**environment(), "ODIQUEUE_API_KEY": "sk-pipes-key-0123456789"}
        command = [sys.executable, "-m", "odiqueue", "submit", "a red apple"]
        command += ["--base-url", emu.base_url, "--output", "id"]
        try:
            with anyio.fail_after(60):
                done = await anyio.run_process(command, stdout=write, env=env, check=False)
        finally:
            os.close(write)
        assert emu.stats.requests["submit"] == 1
    assert done.stderr == b"", done.stderr.decode()
    assert done.returncode == 141


def test_emulator_usage_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`odiqueue emulator --help` says `usage: odiqueue emulator`."""
    with pytest.raises(SystemExit) as leaving:
        main(["emulator", "--help"])
    assert leaving.value.code == 0
    assert capsys.readouterr().out.startswith("usage: odiqueue emulator ")
