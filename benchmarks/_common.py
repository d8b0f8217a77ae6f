"""What every contender shares: its command line, and the figures it reports about itself."""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

KEY = "sk-benchmark-key-0000"
SUBMIT_PATH = "/v1/queue/gpt_image_1"


@attrs.frozen(kw_only=True)
class Job:
    """The work of one run, the same for every contender."""

    base_url: str
    jobs: int
    n: int
    out: str
    poll: float
    bound: float
    semaphore: int

    def prompt(self, i: int) -> str:
        return f"bench product {i}"


def parse(argv: Sequence[str] | None = None) -> Job:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--poll", type=float, default=3.0, help="hand loop's fixed poll")
    parser.add_argument("--bound", type=float, default=60.0, help="give up (stalled) after")
    parser.add_argument("--semaphore", type=int, default=0, help="fal: 0 = plain gather")
    args = parser.parse_args(argv)
    global _CPU_AT_START
    _CPU_AT_START = time.process_time()
    return Job(**vars(args))


# The process's CPU time once its imports are done: a contender is charged for its work, not
# for importing its libraries (a fixed cost of about 0.1 to 0.2 s that would otherwise count
# as 0.1 to 0.2 ms per job at 1,000 jobs).
_CPU_AT_START = 0.0


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    over from the parent through fork and exec, which would charge a contender for the
    harness's own memory."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(started: float, saved: int, failed: int, stalled: bool = False, **extra: Any) -> None:
    """Print this process's own figures as one JSON line."""
    figures = {
        "wall": time.monotonic() - started,
        "started_at": started,
        "cpu": time.process_time() - _CPU_AT_START,
        "cpu_with_imports": time.process_time(),
        "peak_rss_mb": peak_rss_mb(),
        "saved": saved,
        "failed": failed,
        "stalled": stalled,
        **extra,
    }
    print(json.dumps(figures), flush=True)
