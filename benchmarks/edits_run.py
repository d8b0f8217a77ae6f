"""odiqueue editing local photos: ``generate_many`` of edit jobs, each with its own input file.

Run by ``python -m benchmarks.edits`` in a process of its own, so its peak memory is its own.
The files are read, base64-encoded and sent when each job is submitted: the process must not
hold the batch's photos at once.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anyio

from benchmarks._common import KEY, report
from odiqueue import AsyncClient, BatchItem, ImageRequest


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--bound", type=float, default=300.0)
    args = parser.parse_args()
    photos = sorted(args.photos.iterdir())
    started = time.monotonic()
    saved = failed = 0
    async with AsyncClient(KEY, base_url=args.base_url, model="gpt_image_2_edit") as client:
        items = (
            BatchItem(ImageRequest(f"studio shot of product {i}", images=[path]), key=path.stem)
            for i, path in enumerate(photos)
        )
        with anyio.move_on_after(args.bound) as scope:
            async with client.generate_many(
                items, args.out, max_in_flight=args.concurrency
            ) as outcomes:
                async for outcome in outcomes:
                    saved += len(outcome.paths)
                    failed += not outcome.ok
    report(started, saved, failed, stalled=scope.cancelled_caught)


if __name__ == "__main__":
    anyio.run(main)
