"""Processes for the benchmark: the emulator, the ceiling server, and one contender run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorProcess:
    """``python -m odiqueue.testing`` in its own process, with its control endpoints."""

    def __init__(self, flags: list[str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/model"
        # --same-images: the figures are the clients' work, not the emulator drawing pictures.
        command = [
            sys.executable,
            "-m",
            "odiqueue.testing",
            "--port",
            str(self.port),
            "--same-images",
            *flags,
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def __enter__(self) -> EmulatorProcess:
        assert self._process.stdout is not None
        self._process.stdout.readline()  # it prints its URL once it listens
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)

    def _control(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def reset(self) -> None:
        self._control("POST", "/_emulator/reset")

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "/_emulator/stats")  # type: ignore[no-any-return]


def run_contender(
    module: str, base_url: str, *, jobs: int, n: int, out: str, **extra: Any
) -> dict[str, Any]:
    """Run one contender to the end in its own process; returns its own figures."""
    command = [
        sys.executable,
        "-m",
        f"benchmarks.{module}",
        "--base-url",
        base_url,
        "--jobs",
        str(jobs),
        "--n",
        str(n),
        "--out",
        out,
    ]
    for name, value in extra.items():
        command += [f"--{name}", str(value)]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def measure_ceiling() -> float:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._ceiling", "serve", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks._ceiling", "measure", str(port)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        return float(json.loads(done.stdout)["requests_per_second"])
    finally:
        server.terminate()
        server.wait(timeout=10)


def time_manifest_open(lines: int) -> float:
    """Seconds to open (lock, read, index) a manifest of ``lines`` lines for resume."""
    from odiqueue._batch._manifest import MANIFEST_NAME, Journal

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        with (out / MANIFEST_NAME).open("w") as f:
            for i in range(lines // 2):
                key = f"{i:016x}-0"
                f.write(
                    json.dumps(
                        {
                            "event": "submitted",
                            "key": key,
                            "attempt": 1,
                            "request_id": f"mmsu_{i:026d}",
                            "status_url": "https://a/s",
                            "response_url": "https://a/r",
                            "cancel_url": "https://a/c",
                            "request": {"prompt": f"product {i}"},
                        }
                    )
                    + "\n"
                )
                f.write(
                    json.dumps(
                        {
                            "event": "saved",
                            "key": key,
                            "request_id": f"mmsu_{i:026d}",
                            "files": [{"name": f"{key}_0.png", "size": 1, "sha256": "0" * 64}],
                        }
                    )
                    + "\n"
                )
        journal = Journal(out)
        started = time.perf_counter()
        states = journal.open()
        elapsed = time.perf_counter() - started
        journal.close()
        assert len(states) == lines // 2
        return elapsed
