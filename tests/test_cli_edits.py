"""``odiqueue generate`` with the model family: edit batches, their checks, and their reruns."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image as PILImage

from odiqueue.testing import Emulator, EmulatorConfig
from tests.helpers import image_files, manifest_lines
from tests.test_cli import odiqueue, write_csv
from tests.test_edits import file_host, png_bytes

pytestmark = pytest.mark.anyio


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(workers=8, job_seconds=0.02)) as running:
        yield running


def photo(
    path: Path,
    color: tuple[int, int, int],
    *,
    alpha: bool = False,
    size: tuple[int, int] = (48, 32),
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "RGBA" if alpha else "RGB"
    PILImage.new(mode, size, (*color, 0) if alpha else color).save(path)
    return path


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


async def test_an_edit_batch_with_files_urls_a_mask_and_mixed_models(
    emu: Emulator, tmp_path: Path
) -> None:
    """A product list with a photo column (files relative to the list, a URL), a mask
    column and a model column runs each row against its model with its inputs."""
    catalog = tmp_path / "catalog"
    photo(catalog / "photos" / "mug.jpg", (200, 30, 30))
    photo(catalog / "photos" / "lamp.png", (30, 200, 30))
    photo(catalog / "masks" / "lamp.png", (0, 0, 0), alpha=True)
    async with file_host() as host:
        host.files["vase.png"] = png_bytes((30, 30, 200))
        source = write_csv(
            catalog / "products.csv",
            ["id", "prompt", "photo", "mask", "model"],
            [
                ["mug", "Studio shot of this mug", "photos/mug.jpg", "", ""],
                ["lamp", "The lamp in a living room", "photos/lamp.png", "masks/lamp.png", ""],
                ["vase", "The vase on marble", f"{host.url}/files/vase.png", "", ""],
                ["poster", "A wide poster of a vase", "", "", "gpt_image_2"],
            ],
        )
        out = tmp_path / "out"
        code, _, stderr = await odiqueue(
            "generate",
            source,
            "--out",
            out,
            "--base-url",
            emu.base_url,
            "--model",
            "gpt_image_2_edit",
            "--image-column",
            "photo",
            "--size",
            "1536x1024",
            cwd=tmp_path,  # not the list's folder: its paths are relative to the list
        )
    assert code == 0, stderr
    assert [p.name for p in image_files(out)] == [
        "lamp.png",
        "mug.png",
        "poster.png",
        "vase.png",
    ]
    jobs = {job.params["prompt"].split()[1]: job for job in emu.stats.jobs.values()}
    assert emu.stats.jobs_by_model == {"gpt_image_2_edit": 3, "gpt_image_2": 1}
    assert jobs["shot"].input_kinds == ("base64",)
    assert jobs["lamp"].input_kinds == ("base64", "base64")  # the photo, then the mask
    assert jobs["vase"].params["images"] == [f"{host.url}/files/vase.png"]
    assert "images" not in jobs["wide"].params
    with PILImage.open(out / "mug.png") as image:
        assert image.size == (1536, 1024)
        red = image.convert("RGB").getpixel((768, 512))
    assert red[0] > 150 > red[1]


async def test_a_rerun_after_changing_one_photo_resubmits_exactly_that_row(
    emu: Emulator, tmp_path: Path
) -> None:
    """Rows keyed by their request: a changed photo is a changed request, so the rerun
    submits that one row again and skips the others (counted on the emulator)."""
    photos = [photo(tmp_path / f"p{i}.png", (40 * i, 90, 90)) for i in range(3)]
    source = write_csv(
        tmp_path / "list.csv",
        ["prompt", "photo"],
        [[f"Product {i} on white", f"p{i}.png"] for i in range(3)],
    )
    out = tmp_path / "out"
    command = [
        "generate",
        source,
        "--out",
        out,
        "--base-url",
        emu.base_url,
        "--model",
        "gpt_image_1_edit",
        "--image-column",
        "photo",
    ]
    code, _, stderr = await odiqueue(*command)
    assert code == 0, stderr
    assert emu.stats.requests["submit"] == 3
    code, _, stderr = await odiqueue(*command)
    assert code == 0, stderr
    assert emu.stats.requests["submit"] == 3  # nothing changed: nothing sent
    photo(photos[1], (250, 250, 0))
    code, _, stderr = await odiqueue(*command)
    assert code == 0, stderr
    assert emu.stats.requests["submit"] == 4
    last = list(emu.stats.jobs.values())[-1]
    assert last.params["prompt"] == "Product 1 on white"
    digest = sha(photos[1]).removeprefix("sha256:")
    assert last.params["images"] == [
        f"<base64 image/png {photos[1].stat().st_size} bytes sha256:{digest}>"
    ]
    submitted = [line for line in manifest_lines(out) if line["event"] == "submitted"]
    assert [line["request"]["images"] for line in submitted][-1] == [sha(photos[1])]
    assert {line["model"] for line in submitted} == {"gpt_image_1_edit"}


async def test_a_changed_photo_of_a_row_with_an_id_is_refused_like_a_changed_prompt(
    emu: Emulator, tmp_path: Path
) -> None:
    """A row with its own id whose photo changed after its job was paid for is refused
    (the earlier job is that id's), exactly as a changed prompt is: nothing is sent."""
    photos = [photo(tmp_path / f"p{i}.png", (90, 40 * i, 90)) for i in range(2)]
    source = write_csv(
        tmp_path / "list.csv",
        ["id", "prompt", "images"],
        [[f"sku{i}", f"Product {i}", f"p{i}.png"] for i in range(2)],
    )
    out = tmp_path / "out"
    command = ["generate", source, "--out", out, "--base-url", emu.base_url]
    command += ["--model", "gpt_image_2_edit"]
    assert (await odiqueue(*command))[0] == 0
    photo(photos[0], (1, 2, 3))
    code, stdout, stderr = await odiqueue(*command)
    assert code == 1
    assert emu.stats.requests["submit"] == 2
    assert "sku0" in stdout + stderr
    assert "its request changed" in stdout + stderr


async def test_bad_edit_rows_are_all_reported_before_anything_is_sent(
    emu: Emulator, tmp_path: Path
) -> None:
    """Every bad row is named with its column and reason, and nothing is submitted."""
    photo(tmp_path / "ok.png", (1, 2, 3))
    (tmp_path / "notes.png").write_text("not an image")
    photo(tmp_path / "flat.png", (1, 2, 3))  # no alpha: not a mask
    photo(tmp_path / "wide.png", (0, 0, 0), alpha=True, size=(64, 32))  # not ok.png's size
    many = "|".join(["ok.png"] * 17)
    source = write_csv(
        tmp_path / "list.csv",
        ["prompt", "photo", "mask", "model", "input_fidelity", "size"],
        [
            ["missing file", "gone.png", "", "", "", ""],
            ["not an image", "notes.png", "", "", "", ""],
            ["ftp", "ftp://host/x.png", "", "", "", ""],
            ["seventeen", many, "", "", "", ""],
            ["mask on a text model", "", "ok.png", "gpt_image_2", "", ""],
            ["fidelity on 2", "ok.png", "", "", "high", ""],
            ["size refused", "ok.png", "", "", "", "2000x1000"],
            ["mask without alpha", "ok.png", "flat.png", "", "", ""],
            ["mask of another size", "ok.png", "wide.png", "", "", ""],
            ["fine", "ok.png", "", "", "", "2048x1152"],
        ],
    )
    code, _, stderr = await odiqueue(
        "generate",
        source,
        "--out",
        tmp_path / "out",
        "--base-url",
        emu.base_url,
        "--model",
        "gpt_image_2_edit",
        "--image-column",
        "photo",
    )
    assert code == 2
    assert emu.stats.requests["submit"] == 0
    expected = [
        ("row 2, column 'photo'", "no such file"),
        ("row 3, column 'photo'", "not a png, jpeg or webp image"),
        ("row 4, column 'photo'", "neither an http(s) URL nor a local file"),
        ("row 5, column 'photo'", "at most 16"),
        ("row 6, column 'mask'", "a mask needs an edit model"),
        ("row 7, column 'input_fidelity'", "not taken by this model"),
        ("row 8, column 'size'", "multiples of 16"),
        ("row 9, column 'mask'", "no alpha channel"),
        ("row 10, column 'mask'", "a mask has the first image's size"),
    ]
    lines = stderr.splitlines()
    for where, why in expected:
        assert any(where in line and why in line for line in lines), (where, stderr)
    assert "row 11" not in stderr
    assert "9 row(s) need fixing" in stderr


async def test_a_model_rule_broken_by_an_option_names_the_option(
    emu: Emulator, tmp_path: Path
) -> None:
    """``--model gpt_image_2 --background transparent`` is refused before sending, naming
    the option; a custom ``--size`` gpt_image_2 takes is accepted and sent as given."""
    source = tmp_path / "list.txt"
    source.write_text("A red mug\n")
    base = ["generate", source, "--base-url", emu.base_url, "--model", "gpt_image_2"]
    code, _, stderr = await odiqueue(*base, "--out", tmp_path / "a", "--background", "transparent")
    assert code == 2
    assert "column '--background'" in stderr
    assert "for model gpt_image_2" in stderr
    assert emu.stats.requests["submit"] == 0
    code, _, stderr = await odiqueue(*base, "--out", tmp_path / "b", "--size", "2048x1152")
    assert code == 0, stderr
    (job,) = emu.stats.jobs.values()
    assert (job.model, job.params["size"]) == ("gpt_image_2", "2048x1152")


async def test_inline_refusal_is_retried_through_the_upload_option(tmp_path: Path) -> None:
    """Against a server refusing inline data, --upload-url makes the batch upload the
    photos and succeed; without it the rows fail with a message naming --upload-url."""
    photo(tmp_path / "p.png", (10, 200, 10))
    source = write_csv(tmp_path / "l.csv", ["prompt", "photo"], [["Shoe on grass", "p.png"]])
    async with Emulator(EmulatorConfig(accept_inline=False)) as strict:
        base = ["generate", source, "--base-url", strict.base_url]
        base += ["--model", "gpt_image_2_edit", "--image-column", "photo"]
        code, stdout, stderr = await odiqueue(*base, "--out", tmp_path / "a")
        assert code == 1
        assert "--upload-url" in stdout + stderr
        code, _, stderr = await odiqueue(
            *base, "--out", tmp_path / "b", "--upload-url", strict.upload_url
        )
        assert code == 0, stderr
        stats = strict.stats
    assert stats.uploads == 1
    assert stats.jobs_created == 1
    assert stats.refused_by_model == {"gpt_image_2_edit": 2}


async def test_image_mask_and_fidelity_options_apply_to_every_row(
    emu: Emulator, tmp_path: Path
) -> None:
    """``--image`` (after a row's own), ``--mask`` and ``--input-fidelity`` go with every
    row; ``--input-fidelity`` for gpt_image_2_edit is refused naming the option."""
    logo = photo(tmp_path / "logo.png", (0, 0, 0))
    mask = photo(tmp_path / "mask.png", (0, 0, 0), alpha=True)
    photo(tmp_path / "list" / "shoe.jpg", (120, 60, 30))
    source = write_csv(
        tmp_path / "list" / "l.csv", ["prompt", "images"], [["Shoe ad", "shoe.jpg"], ["Logo", ""]]
    )
    options = ["--image", logo, "--mask", mask, "--input-fidelity", "high"]
    base = ["generate", source, "--base-url", emu.base_url, *options]
    code, _, stderr = await odiqueue(
        *base, "--out", tmp_path / "a", "--model", "gpt_image_1_edit", cwd=tmp_path
    )
    assert code == 0, stderr
    jobs = sorted(emu.stats.jobs.values(), key=lambda job: job.params["prompt"])
    assert [job.input_kinds for job in jobs] == [
        ("base64", "base64"),
        ("base64", "base64", "base64"),
    ]
    assert all(job.params["input_fidelity"] == "high" for job in jobs)
    assert jobs[1].params["images"][1].endswith(f"sha256:{sha(logo).removeprefix('sha256:')}>")
    code, _, stderr = await odiqueue(
        *base, "--out", tmp_path / "b", "--model", "gpt_image_2_edit", cwd=tmp_path
    )
    assert code == 2
    assert "column '--input-fidelity'" in stderr
    assert emu.stats.requests["submit"] == 2


async def test_submit_sends_one_edit_with_its_image(emu: Emulator, tmp_path: Path) -> None:
    """``odiqueue submit --model gpt_image_2_edit --image FILE`` sends one edit with the
    file inline and prints its id; without --image the model's rule is named."""
    source = photo(tmp_path / "chair.png", (10, 120, 200))
    base = ["submit", "A chair on a terrace", "--base-url", emu.base_url]
    base += ["--model", "gpt_image_2_edit", "--output", "id"]
    code, stdout, stderr = await odiqueue(*base, "--image", "chair.png", cwd=tmp_path)
    assert code == 0, stderr
    (job,) = emu.stats.jobs.values()
    assert stdout.strip() == job.request_id
    assert (job.model, job.input_kinds) == ("gpt_image_2_edit", ("base64",))
    assert job.params["images"][0].endswith(f"{sha(source).removeprefix('sha256:')}>")
    code, _, stderr = await odiqueue(*base)
    assert code == 2
    assert "images=None is not allowed for model gpt_image_2_edit" in stderr
    assert emu.stats.requests["submit"] == 1
