"""Peak memory of one batch: 300 jobs of 4 images of 2 MB each, streamed to a temporary folder.

Run: ``python -m benchmarks.batch_memory``. The emulator runs in its own process so only the
client's memory is measured. Prints one JSON line with the figures.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from odiqueue import AsyncClient, ImageRequest

JOBS = 300
IMAGES = 4
IMAGE_BYTES = 2_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(base_url: str, out: Path) -> dict[str, float]:
    started = time.monotonic()
    saved = 0
    async with AsyncClient("sk-bench-key-000000", base_url=base_url) as client:
        items = ((f"p{i}", ImageRequest(f"product {i}", n=IMAGES)) for i in range(JOBS))
        async with client.generate_many(items, out) as outcomes:
            async for outcome in outcomes:
                saved += len(outcome.paths)
    written = sum(
        [(await anyio.Path(p).stat()).st_size async for p in anyio.Path(out).glob("*.png")]
    )
    return {
        "jobs": JOBS,
        "images_saved": saved,
        "bytes_written": written,
        "seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    port = free_port()
    command = [sys.executable, "-m", "odiqueue.testing", "--port", str(port)]
    command += ["--image-bytes", str(IMAGE_BYTES), "--workers", "16", "--job-seconds", "0.05"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        server.stdout.readline()  # the emulator prints its URL once it listens
        with tempfile.TemporaryDirectory() as out:
            figures = anyio.run(run, f"http://127.0.0.1:{port}/model", Path(out))
        print(json.dumps(figures))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
