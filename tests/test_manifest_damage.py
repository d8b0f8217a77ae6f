"""A hand-damaged manifest: each unreadable line is skipped, counted and reported; the rerun
goes on (its item is treated as one the manifest does not know)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from odiqueue import ImageRequest
from tests.helpers import collect, emulated, image_files

pytestmark = pytest.mark.anyio

DAMAGED = {
    "nested": '{"event": "intent", "key": "nested", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "null": json.dumps({"event": "intent", "key": "null", "attempt": None}),
    "text": json.dumps({"event": "intent", "key": "text", "attempt": "1"}),
    "number-url": json.dumps(
        {
            "event": "submitted",
            "key": "number-url",
            "attempt": 1,
            "request_id": "x",
            "status_url": "{base}/v1/queue/gpt_image_1/requests/x/status",
            "response_url": 5,
            "cancel_url": "{base}/v1/queue/gpt_image_1/requests/x/cancel",
        }
    ),
}


@pytest.mark.parametrize("key", sorted(DAMAGED))
async def test_a_damaged_line_is_skipped_and_reported(
    key: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The rerun does not crash on the line: it is skipped with a warning that counts it, and
    its item is generated."""
    async with emulated() as (emu, client):
        line = DAMAGED[key].replace("{base}", emu.base_url)
        (tmp_path / "manifest.jsonl").write_text(line + "\n")
        outcomes = await collect(client, [(key, ImageRequest("a kite"))], tmp_path)
    assert [o.ok for o in outcomes] == [True], outcomes[0].error
    assert emu.stats.jobs_created == 1
    assert len(image_files(tmp_path)) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipping unreadable line 1" in w for w in warnings), warnings
    assert any("1 unreadable line(s)" in w for w in warnings), warnings
