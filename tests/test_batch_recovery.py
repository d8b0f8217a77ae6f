"""A batch keeps paid jobs and saved images through failures that concern one job: an image
host refusing a link, a cancel nobody confirmed, an earlier run's job that can no longer
deliver, a job that completes without images."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from odiqueue import (
    AsyncClient,
    BatchItem,
    DeadlineExceededError,
    ImageDownloadError,
    ImageRequest,
    JobFailedError,
    OutputFileError,
    RetryPolicy,
    instant_waits,
)
from odiqueue._naming import safe_component
from odiqueue.testing import Faults
from odiqueue.testing._images import render
from tests.helpers import collect, emulated, manifest_events, until
from tests.scripted import Scripted, ScriptedServer, scripted_server

pytestmark = pytest.mark.anyio

QUEUE = "/model/v1/queue/gpt_image_1"
PNG = render("png", 64, 64, False, None)


def finished_job(api: ScriptedServer, job: str, *image_urls: str) -> None:
    """Script job ``job`` as completed, its result listing ``image_urls``."""
    outputs = [{"type": "image", "url": url, "content_type": "image/png"} for url in image_urls]
    api.script("GET", f"{QUEUE}/requests/{job}/status", Scripted(200, {"status": "COMPLETED"}))
    api.script("GET", f"{QUEUE}/requests/{job}/response", Scripted(200, {"outputs": outputs}))


async def test_image_host_refusing_one_link_fails_that_item_only(tmp_path: Path) -> None:
    """A 403 from the image host (an expired signed link) is not a bad API key: the batch
    goes on, and only that item fails, with its job kept for a rerun."""
    async with scripted_server() as api, scripted_server() as cdn:
        api.script("POST", QUEUE, *[Scripted(200, {"request_id": f"j{i}"}) for i in range(6)])
        for i in range(6):
            finished_job(api, f"j{i}", f"{cdn.url}/j{i}.png")
            cdn.script("GET", f"/j{i}.png", Scripted(200, PNG, {"Content-Type": "image/png"}))
        cdn.replies[("GET", "/j0.png")].clear()
        cdn.script("GET", "/j0.png", Scripted(403, b"<Error><Code>AccessDenied</Code></Error>"))
        items = [(f"k{i}", ImageRequest(f"p{i}")) for i in range(6)]
        async with AsyncClient("sk-test-key-0123", base_url=api.url + "/model") as client:
            async with client.generate_many(items, tmp_path, max_in_flight=1) as outcomes:
                got = {o.key: o async for o in outcomes}
        assert api.count("POST", QUEUE) == 6
    assert [key for key, o in got.items() if not o.ok] == ["k0"]
    error = got["k0"].error
    assert isinstance(error, ImageDownloadError)
    assert error.status == 403
    assert not error.fatal
    # No "failed" line for k0: its "submitted" line stays, so a rerun fetches it by id.
    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [line["event"] for line in lines if line["key"] == "k0"] == ["intent", "submitted"]


async def test_own_job_whose_image_is_gone_is_not_paid_for_again(tmp_path: Path) -> None:
    """An image that stays 404 fails its item without a second submit in the same run."""
    async with scripted_server() as api:
        api.script("POST", QUEUE, Scripted(200, {"request_id": "j1"}))
        finished_job(api, "j1", f"{api.url}/j1.png")
        api.script("GET", "/j1.png", Scripted(404, {"detail": "gone"}))
        async with AsyncClient("sk-test-key-0123", base_url=api.url + "/model") as client:
            with instant_waits():
                async with client.generate_many(["x"], tmp_path) as outcomes:
                    (outcome,) = [o async for o in outcomes]
        assert api.count("POST", QUEUE) == 1
    assert isinstance(outcome.error, ImageDownloadError)
    assert manifest_events(tmp_path) == ["intent", "submitted"]


async def test_earlier_runs_job_whose_images_are_gone_is_submitted_again(tmp_path: Path) -> None:
    """A rerun that finds an earlier job's images gone for good (and one of them saved before
    the rest failed) pays once more and keeps the image it already had."""
    async with scripted_server() as api:
        api.script(
            "POST", QUEUE, Scripted(200, {"request_id": "j1"}), Scripted(200, {"request_id": "j2"})
        )
        finished_job(api, "j1", f"{api.url}/j1-0.png", f"{api.url}/j1-1.png")
        finished_job(api, "j2", f"{api.url}/j2-0.png", f"{api.url}/j2-1.png")
        api.script("GET", "/j1-0.png", Scripted(200, PNG, {"Content-Type": "image/png"}))
        api.script("GET", "/j1-1.png", Scripted(404, {"detail": "expired"}))
        other = render("png", 32, 32, False, None)  # the new job draws another picture
        for name in ("j2-0", "j2-1"):
            api.script("GET", f"/{name}.png", Scripted(200, other, {"Content-Type": "image/png"}))
        items = [("sku", ImageRequest("x", n=2))]
        async with AsyncClient("sk-test-key-0123", base_url=api.url + "/model") as client:
            with instant_waits():
                async with client.generate_many(items, tmp_path) as outcomes:
                    (first,) = [o async for o in outcomes]
                async with client.generate_many(items, tmp_path) as outcomes:
                    (second,) = [o async for o in outcomes]
        assert api.count("POST", QUEUE) == 2
    assert not first.ok
    assert second.ok, second.error
    assert second.request_id == "j2"
    # The first job's image 0 is paid for too: it is kept beside the new job's.
    assert len(list(tmp_path.glob("sku_0*.png"))) == 2


async def test_deadline_whose_cancel_never_arrived_leaves_the_job_to_the_rerun(
    tmp_path: Path,
) -> None:
    """Past its deadline a job is cancelled; when the cancel cannot be delivered, the job may
    still finish and be billed, so a rerun fetches it rather than paying again."""
    async with emulated() as (emu, client):
        emu.set_faults(Faults(rate_503=1.0, calls=frozenset({"cancel"})))
        base = emu.base_url
        async with AsyncClient(
            "sk-test-key-0123", base_url=base, retry=RetryPolicy(attempts=2)
        ) as short:
            items = ["slow [duration:1.5]"]
            async with short.generate_many(items, tmp_path, deadline=0.3) as outcomes:
                (first,) = [o async for o in outcomes]
        assert isinstance(first.error, DeadlineExceededError)
        assert "failed" not in manifest_events(tmp_path)
        emu.set_faults(Faults())  # the job the cancel never reached goes on, and completes
        async with client.generate_many(items, tmp_path) as outcomes:
            (second,) = [o async for o in outcomes]
        assert second.ok, second.error
        assert second.request_id == first.request_id
        assert emu.stats.jobs_created == 1


async def test_job_cancelled_without_confirmation_is_submitted_again(tmp_path: Path) -> None:
    """A job the interrupted run cancelled, whose confirmation came too late to be recorded,
    is submitted again by the rerun instead of being reported as cancelled."""
    items = ["slow [duration:1.0]"]
    async with emulated() as (emu, client):
        emu.set_faults(Faults(rate_slow=1.0, slow_seconds=1.0, calls=frozenset({"cancel"})))
        async with client.generate_many(items, tmp_path, cancel_timeout=0.3):
            await until(lambda: emu.stats.jobs_created == 1)  # left while the job runs
        emu.set_faults(Faults())
        assert all(job.cancelled for job in emu.stats.jobs.values())
        assert "cancelled" not in manifest_events(tmp_path)
        async with client.generate_many(items, tmp_path) as outcomes:
            (outcome,) = [o async for o in outcomes]
        assert outcome.ok, outcome.error
        assert emu.stats.jobs_created == 2


async def test_completed_job_without_images_is_a_failure(tmp_path: Path) -> None:
    """A job that completes with an empty result is a failed item, not a saved one."""
    async with scripted_server() as api:
        api.script("POST", QUEUE, Scripted(200, {"request_id": "j1"}))
        finished_job(api, "j1")
        async with AsyncClient("sk-test-key-0123", base_url=api.url + "/model") as client:
            async with client.generate_many(["x"], tmp_path) as outcomes:
                (outcome,) = [o async for o in outcomes]
                progress = outcomes.progress
    assert isinstance(outcome.error, JobFailedError)
    assert (progress.saved, progress.failed) == (0, 1)
    assert manifest_events(tmp_path)[-1] == "failed"


async def test_items_whose_names_clash_once_cleaned_pay_for_one_only(tmp_path: Path) -> None:
    """``a/b`` and ``a:b`` would both be saved as ``a_b_0.png``: the later item is refused
    before it is paid for, even with overwrite, and the earlier one's image is whole."""
    items = [("a/b", ImageRequest("red mug")), ("a:b", ImageRequest("blue mug"))]
    async with emulated() as (emu, client):
        async with client.generate_many(items, tmp_path, overwrite=True) as outcomes:
            first, second = sorted([o async for o in outcomes], key=lambda o: o.index)
        assert emu.stats.jobs_created == 1
    assert first.ok
    assert [p.name for p in first.paths] == ["a_b_0.png"]
    assert isinstance(second.error, OutputFileError)
    assert "a_b_0.png" in str(second.error)


async def test_resumed_item_renamed_onto_a_users_file_keeps_both(tmp_path: Path) -> None:
    """An earlier run's job whose item is now named like a file the user has: the job is
    paid for, so its image is saved under a second name and the user's file stays as it is."""
    request = ImageRequest("a mug [duration:1.0]")
    async with emulated() as (emu, client):
        items = [BatchItem(request, key="sku1", name="draft")]
        async with client.generate_many(items, tmp_path, keep_remote=True):
            await until(lambda: emu.stats.jobs_created == 1)  # submitted, then left
        mine = tmp_path / "logo.png"
        mine.write_bytes(b"\x89PNG\r\n\x1a\n the user's own logo")
        items = [BatchItem(request, key="sku1", name="logo")]
        async with client.generate_many(items, tmp_path) as outcomes:
            (outcome,) = [o async for o in outcomes]
        assert emu.stats.jobs_created == 1
    assert mine.read_bytes() == b"\x89PNG\r\n\x1a\n the user's own logo"
    assert outcome.ok, outcome.error
    (saved,) = outcome.paths
    assert saved.name == f"logo.{outcome.request_id}.png"


async def test_invalid_prompt_is_counted_as_failed(tmp_path: Path) -> None:
    """An item that is not a valid request is a failed outcome in the counts too."""
    async with emulated() as (_, client):
        async with client.generate_many(["a mug", ""], tmp_path) as outcomes:
            results = [o async for o in outcomes]
            progress = outcomes.progress
    assert sorted(o.ok for o in results) == [False, True]
    assert (progress.saved, progress.failed, progress.done) == (1, 1, 2)


async def test_bad_item_late_in_the_input_lets_paid_jobs_finish(tmp_path: Path) -> None:
    """A repeated key read while jobs run stops the reading, not the jobs already paid for:
    they are saved and delivered (none cancelled), then the error is raised."""

    delivered: list[bool] = []
    async with emulated() as (emu, client):

        async def items() -> AsyncIterator[tuple[str, ImageRequest]]:
            for i in range(3):
                yield f"k{i}", ImageRequest(f"mug {i} [duration:1.0]")
            await until(lambda: emu.stats.jobs_created == 3)  # paid for and running
            yield "k0", ImageRequest("a repeat")

        with pytest.raises(ValueError, match="item 3: the key 'k0'"):
            async with client.generate_many(items(), tmp_path) as outcomes:
                async for outcome in outcomes:
                    delivered.append(outcome.ok)
        assert emu.stats.requests.get("cancel", 0) == 0
        assert emu.stats.jobs_created == 3
    assert delivered == [True, True, True]


async def test_item_whose_request_changed_since_its_paid_job_is_refused(tmp_path: Path) -> None:
    """A key whose earlier job was paid for with another request does not take that job's
    images as its own, nor pay again under the same key: it is refused, saying why, and the
    earlier job stays recorded for the request it was made for."""
    async with emulated() as (emu, client):
        before = [("sku1", ImageRequest("a red mug"))]
        (first,) = await collect(client, before, tmp_path)
        after = [("sku1", ImageRequest("a blue mug"))]
        (second,) = await collect(client, after, tmp_path)
        (third,) = await collect(client, before, tmp_path)
        assert emu.stats.jobs_created == 1
    assert first.ok
    assert not second.ok
    assert "request changed" in str(second.error)
    assert third.ok
    assert third.paths == first.paths


async def test_full_disk_for_the_manifest_stops_submitting_and_keeps_paid_jobs(
    tmp_path: Path,
) -> None:
    """When the manifest can no longer be written (here: its descriptor pointed at
    /dev/full, which answers every write with ENOSPC), nothing more is paid for, the jobs
    already paid for are still saved, and a rerun pays only for the items never paid for."""
    items = [f"mug {i} [duration:0.3]" for i in range(6)]
    async with emulated() as (emu, client):
        saved: list[bool] = []
        with pytest.raises(OutputFileError, match="cannot write the manifest"):
            async with client.generate_many(items, tmp_path, max_in_flight=2) as outcomes:
                async for outcome in outcomes:
                    saved.append(outcome.ok)
                    if len(saved) == 1:
                        full = os.open("/dev/full", os.O_WRONLY)
                        os.dup2(full, outcomes._journal._fd)  # type: ignore[arg-type]
                        os.close(full)
        paid = emu.stats.jobs_created
        assert paid < len(items)
        assert emu.stats.requests.get("cancel", 0) == 0
        assert saved.count(True) == paid  # every paid job's image is on disk
        await collect(client, items, tmp_path)
        # The rerun pays for the items never paid for, and for none of the others.
        assert emu.stats.jobs_created == len(items)
    assert len(list(tmp_path.glob("*.png"))) == len(items)


@pytest.mark.parametrize("extra", [{"tags": ("a", "b")}, {"weight": float("nan")}, {"map": {1: 2}}])
async def test_unchanged_request_with_values_json_reshapes_is_not_changed(
    tmp_path: Path, extra: dict[str, object]
) -> None:
    """A request whose extra fields come back from the manifest reshaped by JSON (a tuple as
    a list, a number key as text, NaN) is the same request: the rerun skips the item."""
    items = [("sku1", ImageRequest("a mug", extra=extra))]
    async with emulated() as (emu, client):
        (first,) = await collect(client, items, tmp_path)
        (second,) = await collect(client, items, tmp_path)
        assert emu.stats.jobs_created == 1
    assert first.ok
    assert second.ok, second.error
    assert second.paths == first.paths


async def test_saved_items_name_is_not_taken_by_a_new_item_on_rerun(tmp_path: Path) -> None:
    """An item saved by an earlier run still holds its file name: a new item named the same
    is refused before paying, even with overwrite, and the saved image stays."""
    first_item = BatchItem(ImageRequest("a red mug"), key="a", name="mug")
    async with emulated() as (emu, client):
        (first,) = await collect(client, [first_item], tmp_path)
        (path,) = first.paths
        before = path.read_bytes()
        second_item = BatchItem(ImageRequest("a blue mug"), key="b", name="mug")
        async with client.generate_many(
            [first_item, second_item], tmp_path, overwrite=True
        ) as outcomes:
            again = {o.key: o async for o in outcomes}
        assert emu.stats.jobs_created == 1
    assert again["a"].ok
    assert isinstance(again["b"].error, OutputFileError)
    assert path.read_bytes() == before


async def test_second_name_of_a_long_named_image_stays_short_enough(tmp_path: Path) -> None:
    """An earlier run's job whose (long, capped) name is taken by the user's file is saved
    under a second name with its id, which is capped too, so the write can succeed."""
    job = "0f3c2e1a-5b6d-4c7e-8f90-123456789abc"  # a provider's UUID, longer than ours
    items = [BatchItem(ImageRequest("a mug"), key="sku1", name="n" * 300)]
    async with scripted_server() as api:
        api.script("POST", QUEUE, Scripted(200, {"request_id": job}))
        running = Scripted(200, {"status": "IN_PROGRESS"})
        api.script("GET", f"{QUEUE}/requests/{job}/status", running)
        api.script("GET", f"{QUEUE}/requests/{job}/response", running)
        async with AsyncClient("sk-test-key-0123", base_url=api.url + "/model") as client:
            async with client.generate_many(items, tmp_path, keep_remote=True):
                await until(lambda: api.count("POST", QUEUE) == 1)  # submitted, then left
            api.replies.clear()
            finished_job(api, job, f"{api.url}/img.png")
            api.script("GET", "/img.png", Scripted(200, PNG, {"Content-Type": "image/png"}))
            (taken,) = [p for p in tmp_path.iterdir() if p.name.startswith("nnn")] or [
                tmp_path / safe_component("n" * 300 + ".png")
            ]
            taken.write_bytes(b"\x89PNG\r\n\x1a\n the user's own file")
            with instant_waits():
                (outcome,) = await collect(client, items, tmp_path)
        assert api.count("POST", QUEUE) == 1
    assert outcome.ok, outcome.error
    (saved,) = outcome.paths
    assert job in saved.name
    assert len(saved.name.encode()) <= 200


async def test_earlier_runs_job_never_overwrites_a_name_a_new_item_holds(tmp_path: Path) -> None:
    """With overwrite, an earlier run's job named like a new item of this run saves its
    image beside the new item's, not over it: both are paid for."""
    old = BatchItem(ImageRequest("a red mug [duration:1.0]"), key="a", name="mug")
    new = BatchItem(ImageRequest("a blue mug"), key="b", name="mug")
    async with emulated() as (emu, client):
        async with client.generate_many([old], tmp_path, keep_remote=True):
            await until(lambda: emu.stats.jobs_created == 1)  # submitted, then left
        async with client.generate_many([new, old], tmp_path, overwrite=True) as outcomes:
            got = {o.key: o async for o in outcomes}
        assert emu.stats.jobs_created == 2
    assert got["a"].ok, got["a"].error
    assert got["b"].ok, got["b"].error
    assert [p.name for p in got["b"].paths] == ["mug.png"]
    assert [p.name for p in got["a"].paths] == [f"mug.{got['a'].request_id}.png"]
