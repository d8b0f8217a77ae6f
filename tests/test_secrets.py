"""The API key shows up nowhere: not in logs at DEBUG, reprs, errors or files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from odiqueue import AsyncClient, ImageRequest, OdiqueueError, RetryPolicy, instant_waits
from odiqueue.testing import Emulator, EmulatorConfig, Faults
from tests.scripted import Scripted, scripted_server

pytestmark = pytest.mark.anyio

KEY = "sk-live-SECRET-0123456789-tail"


async def test_key_never_leaks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A batch with faults and failures, logged at DEBUG, never writes the key anywhere."""
    faults = Faults(rate_429=0.1, rate_503=0.1, rate_reset=0.05, retry_after=0.01)
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with (
            Emulator(EmulatorConfig(faults=faults, seed=3)) as emu,
            AsyncClient(KEY, base_url=emu.base_url, retry=RetryPolicy(attempts=20)) as client,
        ):
            errors.append(repr(client))
            items = [f"p{i}" for i in range(20)] + ["bad [fail:CONTENT_BLOCKED]"]
            with instant_waits():
                async with client.generate_many(items, tmp_path) as outcomes:
                    async for outcome in outcomes:
                        errors.append(repr(outcome))
                        if outcome.error is not None:
                            errors.extend((str(outcome.error), repr(outcome.error)))
            try:
                await client.status("no-such-job")
            except OdiqueueError as exc:
                errors.extend((str(exc), repr(exc)))
            errors.append(repr(ImageRequest("x")))
    assert any("CONTENT_BLOCKED" in e for e in errors)
    produced = caplog.text + "\n".join(errors)
    produced += "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.jsonl"))
    assert "retrying" in caplog.text  # the DEBUG lines were produced, and checked
    assert KEY not in produced
    assert "SECRET" not in produced


async def test_key_quoted_back_by_the_server_is_cut_out(caplog: pytest.LogCaptureFixture) -> None:
    """A gateway that quotes the key in its error ("invalid token sk-...") does not put it
    in the error's message, repr or body, nor in the debug log."""
    caplog.set_level(logging.DEBUG, logger="odiqueue")
    async with scripted_server() as server:

        async def echo() -> None:
            async with AsyncClient(KEY, base_url=server.url + "/model") as client:
                await client.submit("a mug")

        body = {"error": {"code": "UNAUTHORIZED", "message": f"invalid token {KEY}"}}
        server.script("POST", "/model/v1/queue/gpt_image_1", Scripted(401, body))
        with pytest.raises(OdiqueueError) as caught:
            await echo()
    error = caught.value
    shown = [str(error), repr(error), str(getattr(error, "body", "")), caplog.text]
    assert not [text for text in shown if KEY in text]
    assert "invalid token …tail" in str(error)
