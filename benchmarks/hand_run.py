"""A loop such as a user writes by hand: aiohttp, gather over all jobs, a fixed poll interval,
whole image bodies read into memory, no retries (a failed job is counted, not retried)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._common import KEY, SUBMIT_PATH, parse, report


async def main() -> None:
    job = parse()
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {KEY}"}
    out = Path(job.out)

    async def one(session: aiohttp.ClientSession, i: int) -> int:
        body: dict[str, Any] = {"prompt": job.prompt(i)}
        if job.n > 1:
            body["n"] = job.n
        async with session.post(job.base_url + SUBMIT_PATH, json=body, headers=headers) as r:
            r.raise_for_status()
            handle = await r.json()
        while True:
            async with session.get(handle["status_url"], headers=headers) as r:
                r.raise_for_status()
                status = await r.json()
            if status["status"] == "COMPLETED":
                break
            await asyncio.sleep(job.poll)
        async with session.get(handle["response_url"], headers=headers) as r:
            r.raise_for_status()
            result = await r.json()
        for k, image in enumerate(result["outputs"]):
            async with session.get(image["url"]) as r:
                r.raise_for_status()
                data = await r.read()
            (out / f"{i}_{k}.png").write_bytes(data)
        return len(result["outputs"])

    async with aiohttp.ClientSession() as session:
        tasks = [one(session, i) for i in range(job.jobs)]
        try:
            done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), job.bound)
        except asyncio.TimeoutError:
            report(started, len(list(out.iterdir())), 0, stalled=True)
            return
    saved = sum(d for d in done if isinstance(d, int))
    failed = sum(1 for d in done if not isinstance(d, int))
    report(started, saved, failed)


if __name__ == "__main__":
    asyncio.run(main())
