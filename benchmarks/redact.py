"""``python -m benchmarks.redact``: what cutting the key out of every reply costs.

Every API reply body and its headers pass ``_redact.Redactor`` before anything reads them.
This measures that pass on replies as they come (no key in them, the usual case) and on
replies that quote the key, for a status reply, a submit reply and a 2 MB inline result;
and, beside it, the statvfs call a batch makes before each submit. Each figure is the best
of several rounds of many calls.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Callable

from multidict import CIMultiDict, CIMultiDictProxy

from odiqueue._account import Secret
from odiqueue._redact import Redactor

KEY = "sk-live/bench+key=0123456789abcdef0123456789"


def _per_call(work: Callable[[], object], calls: int, rounds: int = 5) -> float:
    """The fastest round's time per call, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e6


def main() -> None:
    """Print one line per measured case."""
    redactor = Redactor(Secret(KEY))
    status = json.dumps({"status": "IN_PROGRESS", "request_id": "mmsu_01hxyz", "logs": []}).encode()
    submit = json.dumps(
        {
            "request_id": "mmsu_01hxyz",
            "status_url": "https://odirouter.ai/model/v1/queue/gpt_image_1/requests/x/status",
            "response_url": "https://odirouter.ai/model/v1/queue/gpt_image_1/requests/x/response",
            "cancel_url": "https://odirouter.ai/model/v1/queue/gpt_image_1/requests/x/cancel",
        }
    ).encode()
    image = base64.b64encode(os.urandom(1_500_000)).decode()
    inline = json.dumps({"data": [{"b64_json": image}]}).encode()
    quoted = json.dumps({"status": "COMPLETED", "error": f"token {KEY} refused"}).encode()
    headers = CIMultiDictProxy(
        CIMultiDict(
            {
                "Content-Type": "application/json",
                "Content-Length": "120",
                "Date": "Mon, 30 Nov 2026 21:00:00 GMT",
                "X-Request-Id": "gw_0001",
                "Server": "nginx",
            }
        )
    )
    cases = [
        ("status reply body (no key)", lambda: redactor.body(status), 20_000),
        ("submit reply body (no key)", lambda: redactor.body(submit), 20_000),
        ("2 MB inline result body (no key)", lambda: redactor.body(inline), 20),
        ("status body quoting the key", lambda: redactor.body(quoted), 20_000),
        ("5 reply headers (no key)", lambda: redactor.headers(headers), 20_000),
    ]
    with tempfile.TemporaryDirectory() as folder:
        cases.append(("os.statvfs of the output folder", lambda: os.statvfs(folder), 20_000))
        for name, work, calls in cases:
            print(f"{name:40s} {_per_call(work, calls):10.2f} µs per call")


if __name__ == "__main__":
    main()
