"""The README tells the truth: its Quickstart runs, its commands are the ones CI runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_first_command_installs_and_runs_the_demo() -> None:
    """The README's first command installs the package and runs the keyless demo."""
    first = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first is not None
    command = first.group(1).strip()
    assert command.startswith("python3 -m pip install")
    assert command.endswith("odiqueue generate examples/products.csv --out out --emulator")


def test_ci_runs_the_readme_commands() -> None:
    """.ci/run runs exactly the install and test commands the README gives."""
    blocks = re.findall(r"```sh\n(.*?)```", README.split("## Development", 1)[1], re.S)
    install, test = (block.strip() for block in blocks[:2])
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install in ci
    assert test in ci
    assert ci.index(install) < ci.index(test)


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
