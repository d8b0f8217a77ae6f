"""Cut-off and corrupt images never reach their final names (issue 14, defect 2): an image
host that ends the body half-way with no Content-Length, one that sends a PNG signature and
noise, a result whose base64 holds half a PNG; through ``AsyncClient.download`` and through
a batch. Also: a result listing more images than asked for, and an image host that trickles.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from odiqueue import (
    AsyncClient,
    DecodeError,
    DownloadPolicy,
    Image,
    ImageRequest,
    Outcome,
    RequestTimeoutError,
    RetryPolicy,
    TransportError,
)
from tests.queue_server import GARBLED, PNG, ImageMode, QueueServer, base_url, queue_server

pytestmark = pytest.mark.anyio

KEY = "sk-broken-images-test-0000"
RETRY = RetryPolicy(attempts=3, initial=0.01, maximum=0.02)
HALF = PNG[: len(PNG) // 2]


def client_for(server: QueueServer, **kw: object) -> AsyncClient:
    return AsyncClient(KEY, base_url=base_url(server), retry=RETRY, **kw)  # type: ignore[arg-type]


def always(mode: ImageMode) -> object:
    return lambda ask: mode


def files(folder: Path) -> list[str]:
    """What a batch left in ``folder`` besides its own bookkeeping."""
    own = ("manifest.jsonl", ".odiqueue.lock")
    return sorted(p.name for p in folder.iterdir() if p.name not in own)


def saved_events(folder: Path) -> list[dict[str, object]]:
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return [event for event in map(json.loads, lines) if event["event"] == "saved"]


@pytest.mark.parametrize("mode", ["half", "noise"])
async def test_a_broken_image_is_never_saved_by_download(tmp_path: Path, mode: ImageMode) -> None:
    """An image host that always sends half a PNG (no Content-Length, a clean end) or a PNG
    signature and noise: every try is refused, nothing is left under the name or beside it."""
    async with queue_server() as server, client_for(server) as client:
        server.image_mode = always(mode)  # type: ignore[assignment]
        target = tmp_path / "a.png"
        image = Image(url=f"{server.url}/img/a.png", content_type="image/png")
        with pytest.raises(TransportError, match="bad image"):
            await client.download(image, target)
        assert server.asks["image a.png"] == RETRY.attempts
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["half", "noise"])
async def test_a_broken_image_is_fetched_again(tmp_path: Path, mode: ImageMode) -> None:
    """Like a download cut off short of its Content-Length, a broken one is retried: the
    whole image that comes next is saved."""
    async with queue_server() as server, client_for(server) as client:
        server.image_mode = lambda ask: mode if ask == 1 else "whole"
        target = tmp_path / "a.png"
        image = Image(url=f"{server.url}/img/a.png", content_type="image/png")
        saved = await client.download(image, target)
        assert server.asks["image a.png"] == 2
    assert target.read_bytes() == PNG
    assert saved.size == len(PNG)


async def test_decode_refuses_an_image_whole_in_structure_only(tmp_path: Path) -> None:
    """An image whose structure is whole but whose pixels do not decode is saved under the
    default check, and refused then fetched again under ``verify="decode"``."""
    pytest.importorskip("PIL")
    image_path = "/img/a.png"
    async with queue_server() as server:
        server.image_mode = lambda ask: "garbled" if ask == 1 else "whole"
        image = Image(url=server.url + image_path, content_type="image/png")
        async with client_for(server) as client:
            await client.download(image, tmp_path / "structure.png")
        assert (tmp_path / "structure.png").read_bytes() == GARBLED

        server.asks.clear()
        strict = DownloadPolicy(verify="decode")
        async with client_for(server, downloads=strict) as client:
            await client.download(image, tmp_path / "decoded.png")
        assert server.asks["image a.png"] == 2
    assert (tmp_path / "decoded.png").read_bytes() == PNG


async def test_an_inline_image_holding_half_a_png_is_refused(tmp_path: Path) -> None:
    """A base64 image that decodes to half a PNG is refused, and no file is written."""
    async with queue_server() as server, client_for(server) as client:
        image = Image(b64=base64.b64encode(HALF).decode(), content_type="image/png")
        with pytest.raises(DecodeError, match="cut off"):
            await client.download(image, tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


async def run_batch(client: AsyncClient, out: Path, count: int = 3) -> list[Outcome]:
    items = [(f"k{i}", ImageRequest(f"prompt {i}")) for i in range(count)]
    async with client.generate_many(items, out) as outcomes:
        return [outcome async for outcome in outcomes]


@pytest.mark.parametrize("broken", ["half", "noise", "inline"])
async def test_a_batch_never_records_a_broken_image_as_saved(tmp_path: Path, broken: str) -> None:
    """Through a batch, each broken image fails its item, nothing is recorded "saved", no
    file is left, and the job stays in the manifest: the rerun fetches it by id, unpaid."""
    async with queue_server() as server:
        if broken == "inline":
            server.inline = HALF
        else:
            server.image_mode = always(broken)  # type: ignore[assignment]
        async with client_for(server) as client:
            outcomes = await run_batch(client, tmp_path)
        assert server.submits == 3
        assert [o.ok for o in outcomes] == [False] * 3
        assert saved_events(tmp_path) == []
        assert files(tmp_path) == []

        server.inline = None if server.inline is None else PNG
        server.image_mode = always("whole")  # type: ignore[assignment]
        async with client_for(server) as client:
            outcomes = await run_batch(client, tmp_path)
        assert server.submits == 3
    assert all(o.ok for o in outcomes)
    assert len(saved_events(tmp_path)) == 3


async def test_a_batch_saves_the_image_sent_whole_on_a_retry(tmp_path: Path) -> None:
    """The image host sends half of every image once, then the whole: every item is saved,
    with the whole bytes."""
    async with queue_server() as server, client_for(server) as client:
        server.image_mode = lambda ask: "half" if ask == 1 else "whole"
        outcomes = await run_batch(client, tmp_path)
    assert all(o.ok for o in outcomes)
    for outcome in outcomes:
        (path,) = outcome.paths
        assert path.read_bytes() == PNG


async def test_more_images_than_asked_for_are_not_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A result listing 300 images for n=1 saves one, and says so in a warning."""
    async with queue_server() as server, client_for(server) as client:
        server.images_per_result = 300
        with caplog.at_level(logging.WARNING, logger="odiqueue"):
            outcomes = await run_batch(client, tmp_path, count=1)
        assert server.asks["image"] == 1
    (outcome,) = outcomes
    assert outcome.ok
    assert len(outcome.paths) == 1
    assert files(tmp_path) == [outcome.paths[0].name]
    assert "returned 300 images for n=1: saving only the first 1" in caplog.text


async def test_a_trickling_image_host_is_cut_off(tmp_path: Path) -> None:
    """An image host sending a byte at a time is given up on once under the minimum rate
    (after the grace period), not held on to until the read timeout."""
    policy = DownloadPolicy(min_rate=1000, grace=0.3)
    async with queue_server() as server, client_for(server, downloads=policy) as client:
        server.image_mode = always("trickle")  # type: ignore[assignment]
        server.trickle = 0.05
        image = Image(url=f"{server.url}/img/a.png", content_type="image/png")
        with pytest.raises(RequestTimeoutError, match="too slowly"):
            await client.download(image, tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


async def test_an_image_download_is_bounded_in_total(tmp_path: Path) -> None:
    """With no minimum rate, the total bound still ends a download that never finishes."""
    policy = DownloadPolicy(min_rate=None, total=0.5)
    async with queue_server() as server, client_for(server, downloads=policy) as client:
        server.image_mode = always("trickle")  # type: ignore[assignment]
        server.trickle = 0.05
        image = Image(url=f"{server.url}/img/a.png", content_type="image/png")
        with pytest.raises(RequestTimeoutError, match=r"took over 0\.5s"):
            await client.download(image, tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_download_policy_refuses_bad_values_by_name() -> None:
    """A verify mode other than the two, or a bound that is not above 0, is refused at once,
    naming the parameter."""
    from odiqueue import ConfigurationError

    with pytest.raises(ConfigurationError, match="verify must be 'structure' or 'decode'"):
        DownloadPolicy(verify="pixels")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="min_rate must be > 0"):
        DownloadPolicy(min_rate=0)
    with pytest.raises(ConfigurationError, match="total must be > 0"):
        DownloadPolicy(total=-1)
