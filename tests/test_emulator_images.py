"""The emulator's placeholder images: each job's can be told apart from the others'."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from PIL import Image, ImageChops

from odiqueue.testing import Emulator, EmulatorConfig
from odiqueue.testing._images import Look, look_of, render
from tests.helpers import until

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer test-key"}
ROOT = Path(__file__).resolve().parents[1]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


async def images_of(config: EmulatorConfig, bodies: list[dict[str, object]]) -> list[bytes]:
    """Run one job per body and download each job's first image from the CDN."""
    async with (
        Emulator(config) as emu,
        aiohttp.ClientSession(headers=AUTH) as session,
    ):
        jobs = []
        for body in bodies:
            async with session.post(f"{emu.base_url}/v1/queue/gpt_image_1", json=body) as reply:
                jobs.append(await reply.json())
        await until(lambda: all(job.completed_at for job in emu.stats.jobs.values()))
        files = []
        for job in jobs:
            async with session.get(job["response_url"]) as reply:
                url = (await reply.json())["outputs"][0]["url"]
            async with session.get(url) as reply:
                files.append(await reply.read())
        return files


async def test_each_job_gets_its_own_colours_and_caption() -> None:
    """Two prompts give visibly different images (another colour at the top, the prompt's
    start in the caption bar); the same request gives the same image again."""
    bodies: list[dict[str, object]] = [
        {"prompt": "a sage green mug"},
        {"prompt": "a brass lamp"},
        {"prompt": "a sage green mug"},
    ]
    first, second, again = await images_of(EmulatorConfig(), bodies)
    assert first == again
    assert first != second
    one, two = decode(first), decode(second)
    assert one.size == two.size == (1024, 1024)
    assert one.getpixel((512, 10)) != two.getpixel((512, 10))
    # The caption: white ink on a dark bar at the bottom.
    caption = one.crop((0, 900, 1024, 1024))
    assert (255, 255, 255) in {colour for _, colour in caption.getcolors(1 << 16) or []}


async def test_same_images_gives_every_job_one_picture() -> None:
    """With same_images (benchmarks), every job of a size serves the very same file."""
    bodies: list[dict[str, object]] = [{"prompt": "a mug"}, {"prompt": "a lamp"}]
    first, second = await images_of(EmulatorConfig(same_images=True), bodies)
    assert first == second


def test_a_changed_parameter_changes_the_colours() -> None:
    """The colours come from the whole request, not only the prompt."""
    assert look_of({"prompt": "a mug"}).top != look_of({"prompt": "a mug", "quality": "high"}).top


@pytest.mark.parametrize(
    ("output_format", "alpha"),
    [("png", False), ("png", True), ("jpeg", False), ("webp", False), ("webp", True)],
)
def test_the_caption_is_only_in_the_bottom_band(output_format: str, alpha: bool) -> None:
    """Two labels on the same colours change only the caption band, in every format."""
    top, bottom = (30, 60, 120), (220, 180, 100)
    a = decode(render(output_format, 1024, 1536, alpha, None, Look(top, bottom, "first words")))
    b = decode(render(output_format, 1024, 1536, alpha, None, Look(top, bottom, "other text")))
    assert a.size == (1024, 1536)
    difference = ImageChops.difference(a, b)
    # Lossy formats smear a little across their blocks; PNG is exact.
    slack = 0 if output_format == "png" else 24
    above = difference.crop((0, 0, 1024, 1300)).getextrema()
    assert max(high for _, high in above) <= slack
    band = difference.crop((0, 1300, 1024, 1536)).getextrema()
    assert max(high for _, high in band) > 128


def test_png_without_pillow_still_differs_per_job() -> None:
    """Without Pillow the emulator still draws PNGs, each job in its own colours (no
    caption), and they decode."""
    script = (
        "import sys; sys.modules['PIL'] = None\n"
        "from odiqueue.testing._images import look_of, render\n"
        "a = render('png', 1024, 1024, False, None, look_of({'prompt': 'a mug'}))\n"
        "b = render('png', 1024, 1024, True, None, look_of({'prompt': 'a lamp'}))\n"
        "sys.stdout.buffer.write(len(a).to_bytes(4, 'big') + a + b)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, cwd=ROOT)
    size = int.from_bytes(done.stdout[:4], "big")
    a, b = done.stdout[4 : 4 + size], done.stdout[4 + size :]
    mug, lamp = decode(a), decode(b)
    assert mug.getpixel((512, 10)) != lamp.getpixel((512, 10))
    with Image.open(io.BytesIO(b)) as translucent:
        assert translucent.mode == "RGBA"
    # No caption without Pillow: the bottom row is the gradient's last colour.
    assert (255, 255, 255) not in {c for _, c in mug.crop((0, 900, 1024, 1024)).getcolors(1 << 16)}
