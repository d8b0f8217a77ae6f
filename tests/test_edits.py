"""Edits through the client against the emulator: references, inline data, uploads, models."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image as PILImage

from odiqueue import (
    AsyncClient,
    BatchItem,
    ImageRequest,
    InvalidParameterError,
    InvalidRequestError,
    JobFailedError,
    RetryPolicy,
)
from odiqueue._edits import INLINE_MAX_BYTES
from odiqueue.testing import Emulator, EmulatorConfig
from odiqueue.testing._images import render
from tests.helpers import collect, manifest_lines, serving

pytestmark = pytest.mark.anyio

KEY = "sk-edit-test-key-12345678"


def photo(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Path:
    """A small real image file of one colour (the format follows the suffix)."""
    PILImage.new("RGB", size, color).save(path)
    return path


def png_bytes(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (40, 30), color).save(buffer, "PNG")
    return buffer.getvalue()


@asynccontextmanager
async def edit_client(
    config: EmulatorConfig | None = None, **client: Any
) -> AsyncIterator[tuple[Emulator, AsyncClient]]:
    async with (
        Emulator(config or EmulatorConfig()) as emu,
        AsyncClient(KEY, base_url=emu.base_url, retry=RetryPolicy(attempts=3), **client) as session,
    ):
        yield emu, session


class FileHost:
    """A loopback server of the test's own: serves image files and takes uploads, and
    records the Authorization header of every request it gets."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.seen: list[tuple[str, str | None]] = []
        #: The User-Agent of every request, in order.
        self.agents: list[str] = []
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/files/{name}", self._get)
        app.router.add_post("/api/v1/storage/files", self._upload)
        return app

    async def _get(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, request.headers.get("Authorization")))
        self.agents.append(request.headers.get("User-Agent", ""))
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, request.headers.get("Authorization")))
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        name = f"up{len(self.files)}-{upload.filename}"
        self.files[name] = upload.file.read()
        return web.json_response({"url": f"{self.url}/files/{name}"})


@asynccontextmanager
async def file_host() -> AsyncIterator[FileHost]:
    host = FileHost()
    async with serving(host.app()) as host.url:
        yield host


def only_job(emu: Emulator) -> Any:
    (job,) = emu.stats.jobs.values()
    return job


async def test_a_local_file_is_sent_inline_as_plain_base64(tmp_path: Path) -> None:
    """A local input file goes in ``images`` as a plain base64 string of its exact bytes."""
    source = photo(tmp_path / "mug.png", (200, 30, 30))
    async with edit_client() as (emu, client):
        await client.submit(ImageRequest("studio shot", model="gpt_image_1_edit", images=[source]))
        job = only_job(emu)
    assert job.model == "gpt_image_1_edit"
    assert job.input_kinds == ("base64",)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert job.params["images"] == [
        f"<base64 image/png {source.stat().st_size} bytes sha256:{digest}>"
    ]


async def test_data_uri_style_and_urls_passed_through(tmp_path: Path) -> None:
    """With inline_images="data_uri" a file becomes a data: URI; an https/http URL is sent
    as the very text given, and the client itself never fetches it."""
    source = photo(tmp_path / "lamp.jpg", (30, 200, 30))
    async with file_host() as host, edit_client(inline_images="data_uri") as (emu, client):
        host.files["logo.png"] = png_bytes((0, 0, 255))
        url = f"{host.url}/files/logo.png?v=1&x=%20"
        await client.submit(ImageRequest("scene", model="gpt_image_2_edit", images=[source, url]))
        job = only_job(emu)
    assert job.input_kinds == ("data_uri", "url")
    assert job.params["images"][1] == url
    assert job.params["images"][0].startswith("<data_uri image/jpeg ")
    # The one fetch of the URL is the emulator's (to check it): none came from the client.
    assert host.seen == [("/files/logo.png", None)]
    assert not any(agent.startswith("odiqueue") for agent in host.agents)


async def test_the_output_is_drawn_from_the_first_input_image(tmp_path: Path) -> None:
    """An edit's saved image shows its first input (scaled into a frame), so a before/after
    is visible; a second edit of another photo gives another image."""
    red = photo(tmp_path / "red.png", (220, 20, 20))
    blue = photo(tmp_path / "blue.png", (20, 20, 220))
    items = [
        BatchItem(ImageRequest("a", model="gpt_image_2_edit", images=[red]), key="red"),
        BatchItem(ImageRequest("b", model="gpt_image_2_edit", images=[blue]), key="blue"),
    ]
    async with edit_client() as (_, client):
        outcomes = await collect(client, items, tmp_path / "out")
    centres = {}
    for outcome in outcomes:
        assert outcome.ok, outcome.error
        with PILImage.open(outcome.paths[0]) as image:
            centres[outcome.key] = image.convert("RGB").getpixel((512, 512))
    red_centre, blue_centre = centres["red"], centres["blue"]
    assert red_centre[0] > 150 > red_centre[2]
    assert blue_centre[2] > 100 > blue_centre[0]


async def test_a_url_input_is_fetched_by_the_emulator_from_loopback(tmp_path: Path) -> None:
    """The emulator fetches an http(s) reference from a loopback host (without the key)
    and draws the output from it; one it cannot fetch fails the job with a clear error."""
    async with file_host() as host, edit_client() as (_emu, client):
        host.files["green.png"] = png_bytes((10, 230, 10))
        good = ImageRequest("a", model="gpt_image_2_edit", images=[f"{host.url}/files/green.png"])
        gone = ImageRequest("b", model="gpt_image_2_edit", images=[f"{host.url}/files/nope.png"])
        result = await client.generate(good)
        await client.download(result.images[0], tmp_path / "green.png")
        with pytest.raises(JobFailedError, match=r"nope\.png answered HTTP 404"):
            await client.generate(gone)
        far = ImageRequest(
            "c", model="gpt_image_2_edit", images=[good.images[0], "https://example.com/x.png"]
        )
        with pytest.raises(JobFailedError, match=r"images\[1\]: example\.com is not a loopback"):
            await client.generate(far)
    assert [auth for _, auth in host.seen] == [None, None, None]
    with PILImage.open(tmp_path / "green.png") as image:
        assert image.convert("RGB").getpixel((512, 512))[1] > 150


async def test_inline_refused_falls_back_to_the_upload_endpoint(tmp_path: Path) -> None:
    """When the server refuses inline data (422, no job), the files are uploaded to the
    named endpoint (with the key: it was named) and the job is submitted once with URLs."""
    source = photo(tmp_path / "mug.png", (200, 30, 30))
    config = EmulatorConfig(accept_inline=False)
    async with file_host() as host:
        upload_url = f"{host.url}/api/v1/storage/files"
        async with edit_client(config, upload_url=upload_url) as (emu, client):
            await client.submit(ImageRequest("s", model="gpt_image_2_edit", images=[source]))
            stats = emu.stats
            job = only_job(emu)
    assert stats.refused_by_model["gpt_image_2_edit"] == 1
    assert stats.jobs_created == 1
    assert job.input_kinds == ("url",)
    assert job.params["images"][0].startswith(f"{host.url}/files/up0-mug.png")
    assert host.files["up0-mug.png"] == source.read_bytes()
    assert host.seen[0] == ("/api/v1/storage/files", f"Bearer {KEY}")
    assert host.seen[1] == ("/files/up0-mug.png", None)  # the emulator's fetch


async def test_inline_refused_without_an_upload_endpoint_names_the_option(tmp_path: Path) -> None:
    """Without an upload endpoint, a refusal of inline data is an error that says to set
    upload_url (--upload-url); nothing was created."""
    source = photo(tmp_path / "mug.png", (200, 30, 30))
    async with edit_client(EmulatorConfig(accept_inline=False)) as (emu, client):
        with pytest.raises(InvalidRequestError, match=r"upload_url= \(--upload-url\)"):
            await client.submit(ImageRequest("s", model="gpt_image_2_edit", images=[source]))
        assert emu.stats.jobs_created == 0


async def test_a_large_file_goes_straight_to_the_emulators_upload(tmp_path: Path) -> None:
    """A file over the inline limit is uploaded first (the emulator's own endpoint) and
    sent as its URL; without an upload endpoint it is refused before anything is sent."""
    big = tmp_path / "big.png"
    big.write_bytes(render("png", 32, 32, False, INLINE_MAX_BYTES + 4096))
    request = ImageRequest("s", model="gpt_image_2_edit", images=[big])
    async with edit_client() as (emu, client):
        with pytest.raises(InvalidParameterError, match="upload_url"):
            await client.submit(request)
        assert emu.stats.requests["submit"] == 0
        async with AsyncClient(KEY, base_url=emu.base_url, upload_url=emu.upload_url) as uploading:
            await uploading.submit(request)
        stats = emu.stats
        job = only_job(emu)
    assert stats.uploads == 1
    assert stats.requests["submit"] == 1
    assert job.input_kinds == ("url",)
    assert job.thumbnail is not None


async def test_a_file_that_is_not_an_image_is_refused_before_sending(tmp_path: Path) -> None:
    """A local file that is not png/jpeg/webp by its bytes raises before any request."""
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    async with edit_client() as (emu, client):
        with pytest.raises(InvalidParameterError) as caught:
            await client.submit(ImageRequest("s", model="gpt_image_2_edit", images=[text]))
        assert emu.stats.requests["submit"] == 0
    assert caught.value.field == "images[0]"
    assert "png, jpeg or webp" in str(caught.value)


async def test_the_clients_model_is_checked_before_sending() -> None:
    """A request without a model is checked against the client's model: a size gpt_image_1
    refuses is never sent; the same request goes out to a gpt_image_2 client."""
    request = ImageRequest("wide banner", size="2048x1152")
    async with edit_client() as (emu, client):
        with pytest.raises(InvalidParameterError, match="for model gpt_image_1"):
            await client.submit(request)
        assert emu.stats.requests["submit"] == 0
        async with AsyncClient(KEY, base_url=emu.base_url, model="gpt_image_2") as second:
            await second.submit(request)
        job = only_job(emu)
    assert (job.model, job.params["size"]) == ("gpt_image_2", "2048x1152")


async def test_the_emulator_refuses_each_models_rules_with_a_detail_list() -> None:
    """The emulator answers 422 with every broken rule of the model, as the providers do;
    an unknown model gets the common checks only."""
    async with Emulator() as emu, aiohttp.ClientSession() as http:
        body = {"prompt": "x", "size": "2000x1000", "background": "transparent", "mask": "m"}
        async with http.post(
            f"{emu.base_url}/v1/queue/gpt_image_2", json=body, headers={"Authorization": "Key k"}
        ) as response:
            assert response.status == 422
            detail = (await response.json())["detail"]
        async with http.post(
            f"{emu.base_url}/v1/queue/some_new_model",
            json={"prompt": "x", "size": "640x480"},
            headers={"Authorization": "Key k"},
        ) as response:
            assert response.status == 200
        stats = emu.stats
    fields = sorted(tuple(item["loc"][1:]) for item in detail)
    assert fields == [("background",), ("mask",), ("mask",), ("size",)]
    assert all("gpt_image_2" in item["msg"] for item in detail if item["loc"][1] != "mask")
    assert stats.refused_by_model == {"gpt_image_2": 1}
    assert stats.jobs_by_model == {"some_new_model": 1}


async def test_a_mixed_model_batch_goes_to_each_models_queue(tmp_path: Path) -> None:
    """Items naming their models go to those queues; items without one to the client's;
    the manifest records each item's model and its input files as digests."""
    source = photo(tmp_path / "cup.webp", (90, 90, 200))
    items = [
        BatchItem(ImageRequest("text one"), key="plain"),
        BatchItem(ImageRequest("wide", model="gpt_image_2", size="2048x1152"), key="wide"),
        BatchItem(
            ImageRequest("edit", model="gpt_image_1_edit", images=[source], input_fidelity="high"),
            key="edit",
        ),
    ]
    async with edit_client() as (emu, client):
        outcomes = await collect(client, items, tmp_path / "out")
        stats = emu.stats
    assert all(outcome.ok for outcome in outcomes)
    assert stats.jobs_by_model == {"gpt_image_1": 1, "gpt_image_2": 1, "gpt_image_1_edit": 1}
    submitted = {
        line["key"]: line
        for line in manifest_lines(tmp_path / "out")
        if line["event"] == "submitted"
    }
    assert {key: line["model"] for key, line in submitted.items()} == {
        "plain": "gpt_image_1",
        "wide": "gpt_image_2",
        "edit": "gpt_image_1_edit",
    }
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert submitted["edit"]["request"]["images"] == [f"sha256:{digest}"]
    assert "/gpt_image_2/" in submitted["wide"]["status_url"]
    assert (
        json.dumps(submitted).count(base64.b64encode(source.read_bytes()[:30]).decode()[:20]) == 0
    )
