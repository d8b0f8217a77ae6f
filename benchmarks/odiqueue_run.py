"""odiqueue with default settings: ``generate_many`` into a folder."""

from __future__ import annotations

import time

import anyio

from benchmarks._common import KEY, parse, report
from odiqueue import AsyncClient, ImageRequest


async def main() -> None:
    job = parse()
    started = time.monotonic()
    saved = failed = 0
    async with AsyncClient(KEY, base_url=job.base_url) as client:
        items = (
            ImageRequest(job.prompt(i), n=job.n if job.n > 1 else None) for i in range(job.jobs)
        )
        with anyio.move_on_after(job.bound) as scope:
            async with client.generate_many(items, job.out) as outcomes:
                async for outcome in outcomes:
                    saved += len(outcome.paths)
                    failed += not outcome.ok
    report(started, saved, failed, stalled=scope.cancelled_caught)


if __name__ == "__main__":
    anyio.run(main)
