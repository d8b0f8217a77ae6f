"""What Ctrl-C costs: a 40-row batch interrupted twice, then run to the end.

Runs ``odiqueue generate`` (the package on ``PYTHONPATH``) in a subprocess against the
emulator (4 workers, jobs of about 0.6 s), sends SIGINT each time 8 more rows are saved,
then reruns to completion, and prints the jobs the emulator created and the jobs that ran
(started on a worker: billed). Usage::

    PYTHONPATH=$PWD python3 benchmarks/interrupt_cost.py
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from pathlib import Path

import anyio

from odiqueue.testing import Emulator, EmulatorConfig

ROWS = 40
INTERRUPTS = 2
STEP = 8


def _saved(out: Path) -> int:
    manifest = out / "manifest.jsonl"
    if not manifest.exists():
        return 0
    return manifest.read_text().count('"event":"saved"')


async def main() -> None:
    config = EmulatorConfig(workers=4, job_seconds=0.6, duration_sigma=0.3, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "p.txt", Path(tmp) / "o"
        source.write_text("".join(f"product {i}\n" for i in range(ROWS)))
        async with Emulator(config) as emu:
            args = [sys.executable, "-m", "odiqueue", "generate", str(source), "--out", str(out)]
            args += ["--base-url", emu.base_url, "--concurrency", "8"]
            env = {"ODIQUEUE_API_KEY": "sk-benchmark-key-0000", "PATH": "/usr/bin:/bin"}
            env["PYTHONPATH"] = ":".join(sys.path)
            for _ in range(INTERRUPTS):
                process = await anyio.open_process(args, env=env)
                target = min(_saved(out) + STEP, ROWS - 1)
                while _saved(out) < target:  # noqa: ASYNC110 - a file another process writes
                    await anyio.sleep(0.01)
                process.send_signal(signal.SIGINT)
                await process.wait()
                await process.aclose()
            done = await anyio.run_process(args, env=env, check=False)
            jobs = list(emu.stats.jobs.values())
            print(
                json.dumps(
                    {
                        "rows": ROWS,
                        "interrupts": INTERRUPTS,
                        "last_run_exit": done.returncode,
                        "jobs_created": emu.stats.jobs_created,
                        "jobs_ran": sum(1 for j in jobs if j.started_at is not None),
                        "cancelled_running": sum(
                            1 for j in jobs if j.cancelled and j.started_at is not None
                        ),
                        "cancelled_queued": sum(
                            1 for j in jobs if j.cancelled and j.started_at is None
                        ),
                    }
                )
            )


if __name__ == "__main__":
    anyio.run(main)
