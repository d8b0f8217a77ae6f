"""The public API as a type checker sees it: never run, checked by ``mypy --strict`` in CI.

Each line that must be refused carries ``# type: ignore[code]``. ``--strict`` includes
``warn_unused_ignores``, so a line that stops being an error (a type widened back to
``object`` or ``str``) fails the check as surely as a good line that starts failing.
"""

from __future__ import annotations

from pathlib import Path

from typing_extensions import assert_type  # never run: only mypy reads this file

from odiqueue import (
    AsyncClient,
    Background,
    Client,
    CustomSize,
    ImageRequest,
    ImageResult,
    JobHandle,
    JobStatus,
    Moderation,
    Outcome,
    OutputFormat,
    Quality,
    SavedFile,
    Size,
)

# --- the request's choices: the documented strings or the enums ---------------------------

ImageRequest("a mug", size="1024x1024", quality="high", background="transparent")
ImageRequest("a mug", size="auto", output_format="webp", output_compression=80)
ImageRequest("a mug", moderation="low", n=2, user="shop-42")
ImageRequest("a mug", size=Size.LANDSCAPE, quality=Quality.LOW, background=Background.OPAQUE)
ImageRequest("a mug", output_format=OutputFormat.JPEG, moderation=Moderation.AUTO)
ImageRequest("a mug", size=None, quality=None, background=None, output_format=None)

# gpt_image_2's custom sizes are built explicitly, so a typo is never one.
ImageRequest("a mug", size=CustomSize(2048, 1152))
ImageRequest("a mug", size=(2048, 1152))
ImageRequest("a mug", size=CustomSize.parse("2048x1152"))

ImageRequest("a mug", size="512x512")  # type: ignore[arg-type]
ImageRequest("a mug", size="2048x1152")  # type: ignore[arg-type]
ImageRequest("a mug", size=1024)  # type: ignore[arg-type]
ImageRequest("a mug", size=(2048, 1152, 3))  # type: ignore[arg-type]
ImageRequest("a mug", quality="ultra")  # type: ignore[arg-type]
ImageRequest("a mug", background="clear")  # type: ignore[arg-type]
ImageRequest("a mug", output_format="gif")  # type: ignore[arg-type]
ImageRequest("a mug", moderation="high")  # type: ignore[arg-type]
ImageRequest("a mug", n="2")  # type: ignore[arg-type]
ImageRequest("a mug", colour="red")  # type: ignore[call-arg]

text_from_a_form: str = "1024x1024"
ImageRequest("a mug", size=text_from_a_form)  # type: ignore[arg-type]
ImageRequest("a mug", size=Size(text_from_a_form))  # run-time text: through the enum

# The stored values are the enums, whatever was passed.
request = ImageRequest("a mug", quality="high")
assert_type(request.quality, Quality | None)
assert_type(request.format, OutputFormat)


# --- the two clients: the same calls, awaited or not ----------------------------------------


async def with_async_client(client: AsyncClient, out: Path) -> None:
    handle = await client.submit(ImageRequest("a lamp"))
    assert_type(handle, JobHandle)
    async for status in client.poll(handle):
        assert_type(status, JobStatus)
    result = await client.generate("a lamp", deadline=60, keep_remote=True)
    assert_type(result, ImageResult)
    assert_type(await client.download(result.images[0], out / "lamp.png"), SavedFile)
    await client.wait(handle, keep_remote=True)
    client.generate("a lamp")  # type: ignore[unused-coroutine]
    async with client.generate_many(["a", "b"], out) as outcomes:
        async for outcome in outcomes:
            assert_type(outcome, Outcome)


def with_client(client: Client, out: Path) -> None:
    handle = client.submit(ImageRequest("a lamp", size=(1536, 1024)))
    assert_type(handle, JobHandle)
    for status in client.poll(handle):
        assert_type(status, JobStatus)
    result = client.generate("a lamp", deadline=60, keep_remote=True)
    assert_type(result, ImageResult)
    assert_type(client.download(result.images[0], out / "lamp.png"), SavedFile)
    client.wait(handle, kept=True)  # type: ignore[call-arg]
    with client.generate_many(["a", "b"], out) as outcomes:
        for outcome in outcomes:
            assert_type(outcome, Outcome)
    with Client(base_url="http://127.0.0.1:8000/model") as opened:
        opened.cancel(handle)
