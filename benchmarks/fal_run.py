"""fal-client's async API with its defaults (0.1 s poll), pointed at the emulator; images
downloaded the way its users do (httpx, whole body in memory, then written)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import fal_client
import fal_client.client
import httpx

from benchmarks._common import KEY, SUBMIT_PATH, parse, report


async def main() -> None:
    job = parse()
    base, _, prefix = job.base_url.partition("/model")
    # Its environment variables force https; the module constant is what it builds URLs from.
    fal_client.client.QUEUE_URL_FORMAT = base + "/"
    application = ("model" + prefix + SUBMIT_PATH).lstrip("/")
    client = fal_client.AsyncClient(key=KEY)
    out = Path(job.out)
    started = time.monotonic()
    gate = asyncio.Semaphore(job.semaphore) if job.semaphore else contextlib.nullcontext()

    async with httpx.AsyncClient() as http:

        async def one(i: int) -> int:
            arguments: dict[str, object] = {"prompt": job.prompt(i)}
            if job.n > 1:
                arguments["n"] = job.n
            async with gate:
                handle = await client.submit(application, arguments=arguments)
                result = await handle.get()
                for k, image in enumerate(result["outputs"]):
                    response = await http.get(image["url"])
                    response.raise_for_status()
                    (out / f"{i}_{k}.png").write_bytes(response.content)
                return len(result["outputs"])

        tasks = [asyncio.ensure_future(one(i)) for i in range(job.jobs)]
        done, pending = await asyncio.wait(tasks, timeout=job.bound)
        gave_up = time.monotonic() - started
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    saved = sum(t.result() for t in done if not t.exception())
    failed = sum(1 for t in done if t.exception())
    # Cancelling what is left can take its pool far longer than the bound: both are reported.
    report(
        started,
        saved,
        failed,
        stalled=bool(pending),
        unfinished=len(pending),
        gave_up_after=round(gave_up, 1),
    )


if __name__ == "__main__":
    asyncio.run(main())
