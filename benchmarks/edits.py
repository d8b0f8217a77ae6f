"""``python -m benchmarks.edits``: 300 edit jobs, each with its own 2 MB local photo sent inline.

The emulator runs in its own process (``--job-seconds 1``, spread 0.3, as many workers as
jobs), the client in another (``benchmarks.edits_run``, 64 jobs in flight). Prints one
JSON row: jobs/s, CPU per job, the client's peak RSS (VmHWM), and the emulator's counts;
``--jobs``, ``--concurrency`` and ``--photo-mb`` change the sizes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from benchmarks.__main__ import _figures
from benchmarks._harness import ROOT, EmulatorProcess
from odiqueue.testing._images import render

SEED = 20261130
#: The scenario's bound on the client's peak memory, in MB (issue 15).
RSS_BOUND_MB = 150


def write_photos(folder: Path, count: int, size: int) -> None:
    """``count`` distinct PNG files of about ``size`` bytes each: a small picture of its own
    colour, padded with an ancillary chunk (what a camera's metadata does to a file)."""
    for i in range(count):
        data = render("png", 64, 48, False, size)
        # A per-file byte in the picture's own data makes each file (and its digest) distinct.
        mark = zlib.crc32(i.to_bytes(4, "big")).to_bytes(4, "big")
        (folder / f"photo-{i:04d}.png").write_bytes(data[:-12] + _chunk(b"odId", mark) + data[-12:])


def _chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(tag))
    return len(payload).to_bytes(4, "big") + tag + payload + crc.to_bytes(4, "big")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.edits")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--photo-mb", type=float, default=2.0)
    args = parser.parse_args()
    flags = ["--job-seconds", "1", "--duration-sigma", "0.3", "--seed", str(SEED)]
    with tempfile.TemporaryDirectory() as work, EmulatorProcess(flags) as emu:
        photos = Path(work) / "photos"
        photos.mkdir()
        write_photos(photos, args.jobs, int(args.photo_mb * 1024 * 1024))
        command = [
            sys.executable,
            "-m",
            "benchmarks.edits_run",
            "--base-url",
            emu.base_url,
            "--photos",
            str(photos),
            "--out",
            str(Path(work) / "out"),
            "--concurrency",
            str(args.concurrency),
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"edits_run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        run = json.loads(lines[-1])
        stats = emu.stats()
    table = _figures("odiqueue", run, stats, args.jobs, 1)
    row = {
        **table,
        "scenario": "edits",
        "jobs": args.jobs,
        "photo_mb": args.photo_mb,
        "concurrency": args.concurrency,
        "wall_s": round(run["wall"], 2),
        "jobs_per_s": round(args.jobs / run["wall"], 1),
        "cpu_ms_per_job": round(run["cpu"] / args.jobs * 1000, 2),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "rss_bound_mb": RSS_BOUND_MB,
        "within_bound": run["peak_rss_mb"] <= RSS_BOUND_MB,
        "images_saved": run["saved"],
        "failed": run["failed"],
        "submits": stats["requests"].get("submit", 0),
        "jobs_by_model": stats["jobs_by_model"],
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
