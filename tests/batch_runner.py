"""A batch run as its own process, for kill-and-resume tests: ``python batch_runner.py BASE OUT N``.

Prints one JSON line at the end: how many items were saved, failed, resumed and uncertain.
"""

from __future__ import annotations

import json
import sys

import anyio

from odiqueue import AsyncClient, RetryPolicy


async def main(base_url: str, out_dir: str, count: int) -> None:
    saved = failed = resumed = uncertain = 0
    async with AsyncClient(
        "sk-runner-key-0000", base_url=base_url, retry=RetryPolicy(attempts=20)
    ) as client:
        items = (f"product {i}" for i in range(count))
        async with client.generate_many(items, out_dir, max_in_flight=32) as outcomes:
            async for outcome in outcomes:
                saved += outcome.ok
                failed += not outcome.ok
                resumed += outcome.resumed
                uncertain += outcome.uncertain
    summary = {"saved": saved, "failed": failed, "resumed": resumed, "uncertain": uncertain}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
