"""The review page (DIR/index.html) and results table (DIR/results.csv) of a batch.

Batches run through the ``odiqueue`` command against the emulator; the page's behaviour in a
real browser is in ``test_gallery_browser.py``.
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from PIL import Image

from odiqueue import AsyncClient, ImageRequest
from odiqueue._batch._manifest import Journal
from odiqueue._cli import _gallery, _report
from odiqueue._cli._gallery import INDEX_NAME, GalleryUpdater
from odiqueue._cli._products import read_items
from odiqueue._cli._report import INPUT_NAME, RESULTS_NAME, load_report
from odiqueue._cli._thumbs import THUMB_PX, THUMBS_DIR
from odiqueue.testing import Emulator, EmulatorConfig
from odiqueue.testing._images import look_of, render
from tests.helpers import until

pytestmark = pytest.mark.anyio

KEY = "sk-gallery-test-key-7777"
_SCRIPT = Path(sys.executable).with_name("odiqueue")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "odiqueue"]
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)> & a mug"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(workers=4, job_seconds=0.05)) as running:
        yield running


async def odiqueue(*args: str | Path) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ODIQUEUE_")}
    environment["ODIQUEUE_API_KEY"] = KEY
    with anyio.fail_after(60):
        done = await anyio.run_process([*COMMAND, *map(str, args)], env=environment, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def write_products(path: Path) -> Path:
    """Five rows as a shop writes them: its own column names, one hostile, two failing."""
    rows = [
        ["SKU", "Name", "Prompt"],
        ["mug-1", "Mug", "A sage green mug"],
        ["lamp-1", "Lamp", "A brass lamp [fail:CONTENT_BLOCKED]"],
        ["tote-1", "Tote", HOSTILE],
        ["vase-1", "Vase", "A tall vase [fail:INFERENCE_FAILURE]"],
        ["cup-1", "Cup", "An espresso cup " + "with a long description " * 12],
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def table(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


async def test_every_run_writes_the_page_and_the_table_in_input_order(
    emu: Emulator, tmp_path: Path
) -> None:
    """After a run, results.csv has one line per input row in input order (the input's own
    columns as written, then status, files, request id and error) and index.html one card
    per row with its row number."""
    source = write_products(tmp_path / "products.csv")
    out = tmp_path / "out"
    code, stdout, _ = await odiqueue(
        "generate", source, "--out", out, "--base-url", emu.base_url, "--max-retries", "0"
    )
    assert code == 1
    assert f"Review: {out / RESULTS_NAME} and {out / INDEX_NAME}" in stdout
    rows = table(out / RESULTS_NAME)
    assert list(rows[0]) == ["SKU", "Name", "Prompt", *_ADDED]
    assert [(r["SKU"], r["status"]) for r in rows] == [
        ("mug-1", "saved"),
        ("lamp-1", "failed"),
        ("tote-1", "saved"),
        ("vase-1", "failed"),
        ("cup-1", "saved"),
    ]
    assert rows[2]["Prompt"] == HOSTILE
    jobs = {job.params["prompt"]: job.request_id for job in emu.stats.jobs.values()}
    for row in rows:
        assert row["request_id"] == jobs[row["Prompt"]]
        if row["status"] == "saved":
            assert row["error"] == ""
            assert (out / row["files"]).is_file()
        else:
            assert row["files"] == ""
    assert rows[1]["error"].startswith("CONTENT_BLOCKED: ")
    assert rows[3]["error"].startswith("INFERENCE_FAILURE: ")
    page = (out / INDEX_NAME).read_text(encoding="utf-8")
    assert re.findall(r"<span class=\"row\">row (\d+)</span>", page) == ["2", "3", "4", "5", "6"]
    assert "<b>5</b> items" in page
    assert "<b>3</b> saved" in page
    assert "<b>2</b> failed" in page


_ADDED = ["status", "files", "request_id", "error", "estimated_cost"]


async def test_hostile_text_is_escaped_everywhere_on_the_page(
    emu: Emulator, tmp_path: Path
) -> None:
    """A prompt, an id and a server's words holding markup appear as text: the page holds
    no script element and no attribute the input wrote."""
    source = tmp_path / "p.jsonl"
    source.write_text(
        '{"id": "<b>bold</b>\\"quote", "prompt": "' + HOSTILE.replace('"', '\\"') + '"}\n'
    )
    out = tmp_path / "out"
    code, _, _ = await odiqueue("generate", source, "--out", out, "--base-url", emu.base_url)
    assert code == 0
    page = (out / INDEX_NAME).read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert not re.search(r"<[^>]*\bonerror", page)
    (prompt,) = re.findall(r'<p class="prompt">(.*?)</p>', page, re.S)
    assert html.unescape(prompt) == HOSTILE
    (key,) = re.findall(r'<span class="key">(.*?)</span>', page, re.S)
    assert html.unescape(key) == '<b>bold</b>"quote'
    assert "<b>bold</b>" not in page


async def test_report_rebuilds_both_files_from_the_folder_alone(
    emu: Emulator, tmp_path: Path
) -> None:
    """`odiqueue report DIR` remakes results.csv exactly and the page with the same cards,
    without the input file (the folder records the rows)."""
    source = write_products(tmp_path / "products.csv")
    out = tmp_path / "out"
    await odiqueue("generate", source, "--out", out, "--base-url", emu.base_url)
    before_csv = (out / RESULTS_NAME).read_text(encoding="utf-8")
    before_page = (out / INDEX_NAME).read_text(encoding="utf-8")
    (out / RESULTS_NAME).unlink()
    (out / INDEX_NAME).unlink()
    source.unlink()
    code, stdout, _ = await odiqueue("report", out)
    assert code == 0
    assert stdout.split() == [str(out / RESULTS_NAME), str(out / INDEX_NAME)]
    assert (out / RESULTS_NAME).read_text(encoding="utf-8") == before_csv
    cards = re.compile(r"<article.*?</article>", re.S)
    assert cards.findall((out / INDEX_NAME).read_text(encoding="utf-8")) == cards.findall(
        before_page
    )


async def test_report_of_a_python_batch_shows_every_key_without_a_table(
    emu: Emulator, tmp_path: Path
) -> None:
    """A folder made by generate_many (no input rows recorded) still gets a page with every
    item, its model and its prompt; there is no results.csv (no input rows to give back)."""
    async with AsyncClient(KEY, base_url=emu.base_url) as client:
        items = [("a-red-kite", ImageRequest("a red kite")), ("blue", ImageRequest("a blue bowl"))]
        async with client.generate_many(items, tmp_path) as outcomes:
            assert all([outcome.ok async for outcome in outcomes])
    code, _, _ = await odiqueue("report", tmp_path)
    assert code == 0
    assert not (tmp_path / RESULTS_NAME).exists()
    page = (tmp_path / INDEX_NAME).read_text(encoding="utf-8")
    assert page.count("<article") == 2
    assert "a red kite" in page
    assert "a blue bowl" in page
    assert "<dt>model</dt><dd>gpt_image_1</dd>" in page
    assert 'class="row"' not in page


async def test_report_refuses_a_folder_without_a_manifest(tmp_path: Path) -> None:
    """`odiqueue report` on a folder that is not a batch's output says so and exits 2."""
    code, _, err = await odiqueue("report", tmp_path)
    assert code == 2
    assert "no manifest.jsonl" in err
    assert not (tmp_path / INDEX_NAME).exists()


async def test_keys_from_digests_match_their_rows(emu: Emulator, tmp_path: Path) -> None:
    """Rows without an id (keys from request digests, identical prompts included) are each
    matched to their own row: no card is left "not sent" beside a card without a row."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\n\n# a comment\na kite\na boat\n")
    out = tmp_path / "out"
    code, _, _ = await odiqueue("generate", source, "--out", out, "--base-url", emu.base_url)
    assert code == 0
    report = load_report(out)
    assert [(e.row, e.status) for e in report.entries] == [
        (1, "saved"),
        (4, "saved"),
        (5, "saved"),
    ]
    assert [r["prompt"] for r in table(out / RESULTS_NAME)] == ["a kite", "a kite", "a boat"]


async def test_thumbnails_are_small_jpegs_in_the_thumbs_folder(
    emu: Emulator, tmp_path: Path
) -> None:
    """Each saved image is shown through a JPEG thumbnail of at most THUMB_PX pixels that
    links to the full image; a transparent image's thumbnail decodes too."""
    source = tmp_path / "p.jsonl"
    source.write_text(
        '{"id": "a", "prompt": "a mug", "size": "1024x1536"}\n'
        '{"id": "b", "prompt": "a lamp", "background": "transparent", "n": 2}\n'
    )
    out = tmp_path / "out"
    code, _, _ = await odiqueue("generate", source, "--out", out, "--base-url", emu.base_url)
    assert code == 0
    page = (out / INDEX_NAME).read_text(encoding="utf-8")
    pictures = re.findall(r'<a href="([^"]+)"><img class="output" [^>]*src="([^"]+)"', page)
    assert sorted(href for href, _ in pictures) == ["a.png", "b_0.png", "b_1.png"]
    for _, src in pictures:
        assert src.startswith(f"{THUMBS_DIR}/")
        with Image.open(out / src) as thumb:
            assert thumb.format == "JPEG"
            assert max(thumb.size) == THUMB_PX


async def test_uncertain_and_unfinished_items_are_named_as_such(tmp_path: Path) -> None:
    """An item whose submit may have been made (only its intent recorded) is "uncertain"
    and counted for the failed-or-uncertain filter; a submitted one is not yet saved."""
    journal = Journal(tmp_path)
    journal.open()
    journal.write("intent", "maybe", attempt=1)
    journal.write("intent", "sent", attempt=1)
    journal.write(
        "submitted",
        "sent",
        attempt=1,
        request_id="req-1",
        status_url="http://127.0.0.1:9/v1/queue/gpt_image_2/requests/req-1/status",
        response_url="http://127.0.0.1:9/v1/queue/gpt_image_2/requests/req-1",
        cancel_url="http://127.0.0.1:9/v1/queue/gpt_image_2/requests/req-1/cancel",
        request={"prompt": "a chair"},
    )
    journal.close()
    report = load_report(tmp_path)
    assert [(e.key, e.status, e.attention) for e in report.entries] == [
        ("maybe", "uncertain", True),
        ("sent", "submitted", False),
    ]
    assert report.entries[1].model == "gpt_image_2"


async def test_a_failed_item_keeps_its_prompt_and_estimated_cost(tmp_path: Path) -> None:
    """A failed line does not lose what the submitted line recorded: the prompt and the
    job's estimated cost (when the manifest has one) still show."""
    journal = Journal(tmp_path)
    journal.open()
    journal.write(
        "submitted",
        "k",
        attempt=1,
        request_id="req-9",
        status_url="http://127.0.0.1:9/v1/queue/gpt_image_1/requests/req-9/status",
        response_url="http://127.0.0.1:9/v1/queue/gpt_image_1/requests/req-9",
        cancel_url="http://127.0.0.1:9/v1/queue/gpt_image_1/requests/req-9/cancel",
        request={"prompt": "a green vase", "quality": "high"},
        estimated_cost=0.167,
    )
    journal.write("failed", "k", request_id="req-9", error="=HYPERLINK(1)", permanent=True)
    journal.close()
    (entry,) = load_report(tmp_path).entries
    assert (entry.status, entry.request["prompt"], entry.estimated_cost) == (
        "failed",
        "a green vase",
        0.167,
    )
    code, _, _ = await odiqueue("report", tmp_path)
    assert code == 0
    page = (tmp_path / INDEX_NAME).read_text(encoding="utf-8")
    assert "estimated cost <b>0.17</b>" in page
    assert "<dt>est. cost</dt><dd>0.1670</dd>" in page


async def test_the_page_is_rewritten_while_a_batch_runs(emu: Emulator, tmp_path: Path) -> None:
    """The updater rewrites the page from the manifest as the batch goes (a page that says
    it reloads), one rewrite at a time."""
    out = tmp_path / "out"
    async with AsyncClient(KEY, base_url=emu.base_url) as client:
        items = [f"item {i} [duration:{0.05 if i == 0 else 30}]" for i in range(3)]
        async with (
            client.generate_many(items, out) as outcomes,
            anyio.create_task_group() as group,
        ):
            page = GalleryUpdater(out, every=0)
            first = await outcomes.__anext__()
            page.poke(group)
            page.poke(group)  # while the first rewrite runs: not a second one
            assert page.busy
            await until(lambda: not page.busy)
            text = (out / INDEX_NAME).read_text(encoding="utf-8")
            assert "this page reloads" in text
            assert text.count('class="card status-saved') == 1
            assert text.count('class="card status-submitted') == 2
            assert first.key in text
            group.cancel_scope.cancel()
    assert not list(out.glob(f".{INDEX_NAME}.*.tmp"))


async def test_a_rerun_records_its_own_input(emu: Emulator, tmp_path: Path) -> None:
    """The input record is the last run's: a second list in the same folder shows its rows
    with row numbers, and the first list's items stay on the page without them."""
    out = tmp_path / "out"
    first = tmp_path / "first.txt"
    first.write_text("a kite\n")
    second = tmp_path / "second.txt"
    second.write_text("# new products\na boat\n")
    for source in (first, second):
        code, _, _ = await odiqueue("generate", source, "--out", out, "--base-url", emu.base_url)
        assert code == 0
    assert str(second.resolve()) in (out / INPUT_NAME).read_text(encoding="utf-8")
    report = load_report(out)
    assert [(e.row, e.request["prompt"]) for e in report.entries] == [
        (2, "a boat"),
        (None, "a kite"),
    ]
    assert [r["prompt"] for r in table(out / RESULTS_NAME)] == ["a boat"]


async def test_thumbnails_past_the_time_budget_wait_for_the_next_rewrite(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a rewrite has no time left for new thumbnails, the page shows the images
    themselves and says so; the next rewrite with time makes the thumbnails."""
    async with AsyncClient(KEY, base_url=emu.base_url) as client:
        async with client.generate_many(["a mug", "a lamp"], tmp_path) as outcomes:
            assert all([outcome.ok async for outcome in outcomes])
    monkeypatch.setattr(_gallery, "THUMB_SECONDS", -1.0)
    _gallery.write_report(tmp_path)
    page = (tmp_path / INDEX_NAME).read_text(encoding="utf-8")
    sources = re.findall(r'<img class="output" [^>]*src="([^"]+)"', page)
    assert len(sources) == 2
    assert all(src.endswith(".png") for src in sources)
    assert "2 image(s) are shown at full size" in page
    monkeypatch.undo()
    _gallery.write_report(tmp_path)
    page = (tmp_path / INDEX_NAME).read_text(encoding="utf-8")
    sources = re.findall(r'<img class="output" [^>]*src="([^"]+)"', page)
    assert all(src.startswith(f"{THUMBS_DIR}/") for src in sources)
    assert "shown at full size" not in page


@pytest.mark.parametrize("damage", ["{not json", '{"input": "x", "columns": [], "rows": [1]}'])
async def test_a_damaged_input_record_leaves_the_page_without_row_numbers(
    emu: Emulator, tmp_path: Path, damage: str
) -> None:
    """A recorded input that is not what odiqueue wrote is ignored: the page still shows
    every item from the manifest, and no results table is made from it."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\na boat\n")
    out = tmp_path / "out"
    code, _, _ = await odiqueue("generate", source, "--out", out, "--base-url", emu.base_url)
    assert code == 0
    (out / INPUT_NAME).write_text(damage)
    (out / RESULTS_NAME).unlink()
    code, _, _ = await odiqueue("report", out)
    assert code == 0
    assert [(e.row, e.status) for e in load_report(out).entries] == [(None, "saved")] * 2
    assert not (out / RESULTS_NAME).exists()


def test_an_edit_shows_its_input_photos_beside_the_result(tmp_path: Path) -> None:
    """An edit's references show beside its result: a URL as itself, a local photo (relative
    to the input file) through a thumbnail, inline data and other schemes as text only."""
    folder = tmp_path / "shop"
    (folder / "photos").mkdir(parents=True)
    photo = render("png", 640, 480, False, None, look_of({"prompt": "the real mug"}))
    (folder / "photos" / "mug.png").write_bytes(photo)
    source = folder / "p.txt"
    source.write_text("a mug on oak\n")
    out = tmp_path / "out"
    out.mkdir()
    rows = read_items(source, defaults={})
    _report.record_input(out, source, rows)
    key = load_report(out).entries[0].key
    result = render("png", 1024, 1024, False, None, look_of({"prompt": "a mug on oak"}))
    (out / "result.png").write_bytes(result)
    references = ["http://127.0.0.1:9/photo.jpg", "photos/mug.png", "data:image/png;base64,AA"]
    journal = Journal(out)
    journal.open()
    journal.write(
        "submitted",
        key,
        attempt=1,
        request_id="req-3",
        status_url="http://127.0.0.1:9/v1/queue/gpt_image_1_edit/requests/req-3/status",
        response_url="http://127.0.0.1:9/v1/queue/gpt_image_1_edit/requests/req-3",
        cancel_url="http://127.0.0.1:9/v1/queue/gpt_image_1_edit/requests/req-3/cancel",
        request={"prompt": "a mug on oak", "images": references, "mask": "javascript:alert(1)"},
    )
    journal.write(
        "saved",
        key,
        request_id="req-3",
        files=[{"name": "result.png", "size": len(result), "sha256": "-"}],
    )
    journal.close()
    _gallery.write_report(out)
    page = (out / INDEX_NAME).read_text(encoding="utf-8")
    pictures = re.findall(r"<figure>(.*?)</figure>", page, re.S)
    assert len(pictures) == 5  # three inputs, the mask, the result
    assert 'src="http://127.0.0.1:9/photo.jpg"' in pictures[0]
    local = re.search(r'href="([^"]+)"><img [^>]*src="([^"]+)"', pictures[1])
    assert local is not None
    assert local.group(1) == (folder / "photos" / "mug.png").resolve().as_uri()
    assert local.group(2).startswith(f"{THUMBS_DIR}/")
    assert "<img" not in pictures[2]
    assert "inline image data" in pictures[2]
    assert "<img" not in pictures[3]
    assert "javascript:alert(1)" in pictures[3]
    assert 'href="javascript' not in page
    assert "<dt>model</dt><dd>gpt_image_1_edit</dd>" in page
