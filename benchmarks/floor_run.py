"""A reference, not a contender: the least a client that cannot lose a paid job must do,
written as bare aiohttp with nothing else.

Per job: one line saying a submit is about to go out (so that a crash mid-submit leaves a
trace), the submit, one line with the job's id, the result asked for directly, the image
written to a ``.part`` file and hashed, linked to its name, and one line saying it is saved.
64 jobs in flight, like odiqueue's default. No retries, no checks of the replies, no
progress, no cancelling: whatever a real client adds costs more than this, so scenario 1's
figure for this loop is the most a safe client can reach on the machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._common import KEY, SUBMIT_PATH, parse, report

IN_FLIGHT = 64


async def main() -> None:
    job = parse()
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {KEY}"}
    out = Path(job.out)
    manifest = os.open(out / "manifest.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    slots = asyncio.Semaphore(IN_FLIGHT)

    def line(**fields: Any) -> None:
        os.write(manifest, (json.dumps(fields, separators=(",", ":")) + "\n").encode())

    async def one(session: aiohttp.ClientSession, i: int) -> int:
        async with slots:
            body: dict[str, Any] = {"prompt": job.prompt(i)}
            if job.n > 1:
                body["n"] = job.n
            key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
            line(event="intent", key=key)
            async with session.post(job.base_url + SUBMIT_PATH, json=body, headers=headers) as r:
                handle = await r.json()
            line(event="submitted", key=key, id=handle["request_id"], urls=handle, request=body)
            while True:
                async with session.get(handle["response_url"], headers=headers) as r:
                    if r.status == 200:
                        result = await r.json()
                        break
                await asyncio.sleep(job.poll)
            files = []
            for k, image in enumerate(result["outputs"]):
                async with session.get(image["url"]) as r:
                    data = await r.read()
                name = out / f"{key}_{k}.png"
                part = f"{name}.part"
                fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, data)
                os.close(fd)
                os.link(part, name)
                os.unlink(part)
                files.append({"name": name.name, "sha256": hashlib.sha256(data).hexdigest()})
            line(event="saved", key=key, files=files)
            return len(files)

    async with aiohttp.ClientSession() as session:
        tasks = [one(session, i) for i in range(job.jobs)]
        done = await asyncio.gather(*tasks, return_exceptions=True)
    os.close(manifest)
    saved = sum(d for d in done if isinstance(d, int))
    failed = sum(1 for d in done if not isinstance(d, int))
    report(started, saved, failed)


if __name__ == "__main__":
    asyncio.run(main())
