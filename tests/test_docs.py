"""The README tells the truth: its Quickstart runs, its commands are the ones CI runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from odiqueue.testing import Emulator

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quickstart_snippet_saves_an_image(tmp_path: Path) -> None:
    """The first Python block of the README generates and saves an image from the emulator."""
    snippet = re.search(r"```python\n(.*?)```", README, re.S)
    assert snippet is not None
    result = subprocess.run(
        [sys.executable, "-c", snippet.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "saved apple.png" in result.stdout
    assert (tmp_path / "apple.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.anyio
async def test_synchronous_example_runs_as_a_plain_script(tmp_path: Path) -> None:
    """The README's "From synchronous code" block runs, unchanged, in a plain script."""
    section = README.split("## From synchronous code", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None
    async with Emulator() as emu:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ODIQUEUE_")},
            "ODIQUEUE_API_KEY": "sk-readme-sync-key-2468",
            "ODIQUEUE_BASE_URL": emu.base_url,
        }
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [sys.executable, "-c", snippet.group(1)], cwd=tmp_path, env=env, check=False
            )
    assert done.returncode == 0, done.stderr.decode()
    assert "saved apple.png" in done.stdout.decode()
    assert (tmp_path / "apple.png").read_bytes().startswith(b"\x89PNG")
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    assert emu.stats.requests["submit"] == 3


def test_first_command_installs_and_runs_the_demo() -> None:
    """The README's first command makes a virtual environment (a system Python refuses
    installs, PEP 668), installs the package there and runs the keyless demo from it."""
    first = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first is not None
    command = first.group(1).strip()
    assert command.startswith("python3 -m venv .venv && .venv/bin/pip install ")
    assert command.endswith(
        ".venv/bin/odiqueue generate examples/products.csv --out out --emulator"
    )


def test_ci_runs_the_readme_commands() -> None:
    """.ci/run runs exactly the install and test commands the README gives, in a virtual
    environment, then the static checks with that environment's tools."""
    blocks = re.findall(r"```sh\n(.*?)```", README.split("## Development", 1)[1], re.S)
    install, test = (block.strip() for block in blocks[:2])
    assert install.startswith("python3 -m venv .venv && ")
    assert test.startswith(".venv/bin/")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install in ci
    assert test in ci
    assert ci.index(install) < ci.index(test)
    checks = ci[ci.index(test) + 1 :]
    assert checks
    assert all(line.startswith(".venv/bin/") for line in checks)


@pytest.mark.parametrize("args", [["--help"], ["emulator", "--help"]])
def test_command_line_help(args: list[str]) -> None:
    """``odiqueue --help`` and the emulator's help print and exit 0."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [sys.executable, "-m", "odiqueue", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
