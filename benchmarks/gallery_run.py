"""``python -m benchmarks.gallery_run --jobs 2000``: what the review page costs.

Runs a batch of distinct emulator images into a temporary folder, then times writing the
page and the table: cold (every thumbnail made) and warm (thumbnails reused, as every
rewrite during a batch after the first), and the manifest read alone. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import anyio

from odiqueue import AsyncClient, RetryPolicy
from odiqueue._cli._gallery import INDEX_NAME, load_report, write_report
from odiqueue.testing import Emulator, EmulatorConfig


async def _batch(out: Path, jobs: int) -> float:
    async with (
        Emulator(EmulatorConfig()) as emu,
        AsyncClient(
            "sk-gallery-bench-0000", base_url=emu.base_url, retry=RetryPolicy(attempts=10)
        ) as c,
    ):
        started = time.perf_counter()
        items = (f"Studio photo of product {i} on a white table" for i in range(jobs))
        async with c.generate_many(items, out, max_in_flight=64) as outcomes:
            async for outcome in outcomes:
                assert outcome.ok, outcome.error
        return time.perf_counter() - started


def _timed(step: object) -> float:
    started = time.perf_counter()
    step()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        batch = anyio.run(_batch, out, args.jobs)
        cold = _timed(lambda: write_report(out))
        warm = _timed(lambda: write_report(out))
        read = _timed(lambda: load_report(out))
        figures = {
            "jobs": args.jobs,
            "batch_s": round(batch, 2),
            "page_cold_s": round(cold, 2),
            "page_warm_s": round(warm, 3),
            "manifest_read_s": round(read, 3),
            "page_kb": round((out / INDEX_NAME).stat().st_size / 1024, 1),
            "thumbs_kb": round(sum(p.stat().st_size for p in (out / ".thumbs").iterdir()) / 1024),
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
