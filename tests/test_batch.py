"""generate_many against the emulator: limits, failures as outcomes, cancellation, resume."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from PIL import Image as PILImage

from odiqueue import (
    AsyncClient,
    ConfigurationError,
    DeadlineExceededError,
    ImageRequest,
    InsufficientCreditsError,
    InvalidParameterError,
    JobFailedError,
    Outcome,
    OutputFileError,
    Progress,
    RetryPolicy,
    instant_waits,
)
from tests.helpers import collect, emulated, image_files, manifest_lines, until

pytestmark = pytest.mark.anyio

KEY = "sk-batch-test-key-4242"


async def test_five_hundred_jobs_within_limits(tmp_path: Path) -> None:
    """500 jobs on 8 workers: in-flight and poll limits hold, every image saved once."""
    async with emulated(workers=8, job_seconds=0.02, duration_sigma=0.5) as (emu, client):
        outcomes = await collect(
            client,
            (f"product {i}" for i in range(500)),
            tmp_path,
            max_in_flight=40,
            poll_concurrency=6,
        )
    assert len(outcomes) == 500
    assert all(o.ok for o in outcomes)
    assert emu.stats.requests["submit"] == 500
    assert emu.stats.peak_active_jobs <= 40
    assert emu.stats.peak_concurrent_requests["status"] <= 6
    files = image_files(tmp_path)
    assert len(files) == 500
    assert {p for o in outcomes for p in o.paths} == set(files)
    with PILImage.open(files[0]) as img:
        assert (img.format, img.size) == ("PNG", (1024, 1024))
    assert not list(tmp_path.glob("*part"))
    saved = [line for line in manifest_lines(tmp_path) if line["event"] == "saved"]
    assert len(saved) == 500
    assert all(len(line["files"][0]["sha256"]) == 64 for line in saved)


async def test_outcomes_carry_timings_and_polls(tmp_path: Path) -> None:
    """Each outcome says when it was submitted, started, completed, saved, and its polls."""
    async with emulated(job_seconds=0.05) as (_, client):
        (outcome,) = await collect(client, [("apple", ImageRequest("apple"))], tmp_path)
    assert outcome.key == "apple"
    assert outcome.request_id
    assert outcome.polls >= 1
    assert outcome.attempts == 1
    assert outcome.submitted_at is not None
    assert outcome.completed_at is not None
    assert outcome.saved_at is not None
    assert outcome.submitted_at <= outcome.completed_at <= outcome.saved_at
    assert [p.name for p in outcome.paths] == ["apple_0.png"]


async def test_items_are_read_lazily(tmp_path: Path) -> None:
    """A generator is consumed only as in-flight slots free up."""
    pulled = 0

    def items() -> Iterator[str]:
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield f"item {i}" if i == 0 else f"item {i} [duration:60]"

    async with emulated() as (_, client):
        async with client.generate_many(items(), tmp_path, max_in_flight=5) as outcomes:
            async for _ in outcomes:
                break
    assert pulled <= 5 + 3  # in flight, one waiting for a slot, one read while stopping


async def test_async_iterables_and_keys(tmp_path: Path) -> None:
    """Async iterables work; explicit keys name the files; n images each get a file."""

    async def items() -> AsyncIterator[tuple[str, ImageRequest]]:
        for name in ("mug", "lamp"):
            yield name, ImageRequest(f"a {name}", n=2, output_format="jpeg")

    async with emulated() as (_, client):
        outcomes = await collect(client, items(), tmp_path)
    assert sorted(p.name for o in outcomes for p in o.paths) == [
        "lamp_0.jpg",
        "lamp_1.jpg",
        "mug_0.jpg",
        "mug_1.jpg",
    ]


async def test_async_iterable_that_waits_is_asked_by_one_worker_at_a_time(
    tmp_path: Path,
) -> None:
    """Workers share one async generator that awaits between items: none asks it again
    before its last answer (that raises "already running"), and every item is saved once."""

    async def items() -> AsyncIterator[str]:
        for i in range(40):
            await anyio.sleep(0.001)
            yield f"item {i}"

    async with emulated() as (emu, client):
        outcomes = await collect(client, items(), tmp_path, max_in_flight=8)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert sorted(o.index for o in outcomes) == list(range(40))
    assert len(emu.stats.jobs) == 40


async def test_rerun_of_many_finished_items_delivers_each_once_without_a_request(
    tmp_path: Path,
) -> None:
    """Items an earlier run saved are handed over by the workers straight from the manifest:
    each exactly once, with its own index, many more of them than workers."""
    items = [f"product {i}" for i in range(120)]
    async with emulated() as (emu, client):
        await collect(client, items, tmp_path, max_in_flight=4)
        requests = sum(emu.stats.requests.values())
        second = await collect(client, items, tmp_path, max_in_flight=4)
        assert sum(emu.stats.requests.values()) == requests
    assert sorted(o.index for o in second) == list(range(120))
    assert all(o.ok and o.resumed for o in second)


async def test_content_blocked_is_an_outcome(tmp_path: Path) -> None:
    """A blocked job's outcome carries the error; every other job is saved."""
    items = [f"product {i}" for i in range(10)] + ["weapon [fail:CONTENT_BLOCKED]"]
    async with emulated(workers=4) as (emu, client):
        outcomes = await collect(client, items, tmp_path)
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 1
    assert isinstance(failed[0].error, JobFailedError)
    assert failed[0].error.error_type == "CONTENT_BLOCKED"
    assert failed[0].attempts == 1  # never resubmitted
    assert sum(o.ok for o in outcomes) == 10
    assert emu.stats.requests["submit"] == 11


async def test_transient_failures_are_resubmitted_up_to_the_limit(tmp_path: Path) -> None:
    """INFERENCE_FAILURE is resubmitted max_job_retries times, then reported."""
    async with emulated() as (emu, client):
        (outcome,) = await collect(
            client, ["x [fail:INFERENCE_FAILURE]"], tmp_path, max_job_retries=2
        )
    assert isinstance(outcome.error, JobFailedError)
    assert outcome.attempts == 3
    assert emu.stats.requests["submit"] == 3


async def test_invalid_request_at_submit_is_an_outcome(tmp_path: Path) -> None:
    """A 422 on submit fails that item only."""
    items = [("ok", ImageRequest("fine")), ("bad", ImageRequest("x", extra={"size_hint": 1}))]
    async with emulated() as (_, client):
        outcomes = {o.key: o for o in await collect(client, items, tmp_path)}
    assert outcomes["ok"].ok
    assert outcomes["bad"].ok  # unknown fields are accepted by the documented API
    too_long = ImageRequest("p" * 32000)
    async with emulated() as (_, client):
        (outcome,) = await collect(client, [("long", too_long)], tmp_path / "2")
    assert outcome.ok


async def test_fatal_error_stops_submissions_then_raises(tmp_path: Path) -> None:
    """Out of credits: no further submits, paid jobs are saved, then the error is raised."""
    async with emulated(credits=3, job_seconds=0.1) as (emu, client):
        received: list[Outcome] = []
        with pytest.raises(InsufficientCreditsError):
            async with client.generate_many(
                (f"p{i}" for i in range(50)), tmp_path, max_in_flight=2
            ) as outcomes:
                async for outcome in outcomes:
                    received.append(outcome)
    assert sum(o.ok for o in received) == 3
    assert len(image_files(tmp_path)) == 3
    assert emu.stats.jobs_created == 3
    assert emu.stats.requests["submit"] <= 5


async def test_deadline_cancels_job_on_server(tmp_path: Path) -> None:
    """A job past its deadline is cancelled on the server and reported."""
    async with emulated(job_seconds=60) as (emu, client):
        (outcome,) = await collect(client, ["slow"], tmp_path, deadline=0.3)
    assert isinstance(outcome.error, DeadlineExceededError)
    (job,) = emu.stats.jobs.values()
    assert job.cancelled


async def test_leaving_early_cancels_every_unfinished_job(tmp_path: Path) -> None:
    """Breaking out of the loop cancels every job that had not finished."""
    items = ["quick"] + [f"slow {i} [duration:60]" for i in range(8)]
    async with emulated() as (emu, client):
        async with client.generate_many(items, tmp_path, max_in_flight=9) as outcomes:
            async for outcome in outcomes:
                assert outcome.ok
                break
    unfinished = [j for j in emu.stats.jobs.values() if "slow" in j.params["prompt"]]
    assert len(unfinished) == 8
    assert all(j.cancel_requests == 1 and j.cancelled for j in unfinished)
    assert not list(tmp_path.glob("*part"))
    cancelled = [line for line in manifest_lines(tmp_path) if line["event"] == "cancelled"]
    assert len(cancelled) == 8


async def test_keep_remote_leaves_jobs_running(tmp_path: Path) -> None:
    """With keep_remote, leaving early cancels nothing; a rerun picks the jobs up by id."""
    items = [f"slow {i} [duration:0.5]" for i in range(3)]
    async with emulated() as (emu, client):
        async with client.generate_many(items, tmp_path, keep_remote=True) as outcomes:
            async for _ in outcomes:
                break
        assert all(j.cancel_requests == 0 for j in emu.stats.jobs.values())
        rerun = await collect(client, items, tmp_path)
    assert all(o.ok for o in rerun)
    assert emu.stats.requests["submit"] == 3
    assert sum(o.resumed for o in rerun) >= 2


async def test_rerun_skips_saved_and_reports_permanent_failures(tmp_path: Path) -> None:
    """A finished batch run again pays for nothing and reports the same outcomes."""
    items = ["a", "b", "c [fail:CONTENT_BLOCKED]"]
    async with emulated() as (emu, client):
        first = await collect(client, items, tmp_path)
        second = await collect(client, items, tmp_path)
    assert emu.stats.requests["submit"] == 3
    assert sorted(o.ok for o in first) == sorted(o.ok for o in second) == [False, True, True]
    assert all(o.resumed for o in second)
    assert {p for o in first for p in o.paths} == {p for o in second for p in o.paths}


async def test_rerun_after_deleted_file_fetches_again(tmp_path: Path) -> None:
    """A saved file that was deleted is fetched again from the same job, not paid again."""
    async with emulated() as (emu, client):
        (first,) = await collect(client, ["a"], tmp_path)
        first.paths[0].unlink()
        (second,) = await collect(client, ["a"], tmp_path)
    assert second.ok
    assert second.paths[0].exists()
    assert emu.stats.requests["submit"] == 1


async def test_resume_false_starts_over(tmp_path: Path) -> None:
    """resume=False sets the old manifest aside and submits everything again."""
    async with emulated() as (emu, client):
        await collect(client, ["a"], tmp_path, name_template="{request_id}.{ext}")
        await collect(client, ["a"], tmp_path, resume=False, name_template="{request_id}.{ext}")
    assert emu.stats.requests["submit"] == 2
    assert len(list(tmp_path.glob("manifest-*.jsonl"))) == 1


async def test_torn_last_line_is_tolerated(tmp_path: Path) -> None:
    """A manifest cut mid-line by a crash is read up to the tear and appended cleanly."""
    async with emulated() as (emu, client):
        await collect(client, ["a"], tmp_path)
        with (tmp_path / "manifest.jsonl").open("a") as f:
            f.write('{"event":"submitted","key":"b"')
        outcomes = await collect(client, ["a", "b"], tmp_path)
    assert all(o.ok for o in outcomes)
    assert emu.stats.requests["submit"] == 2
    assert all(line["event"] for line in manifest_lines(tmp_path))


async def test_second_process_on_same_folder_is_refused(tmp_path: Path) -> None:
    """Two batches on one out_dir at once are refused with a clear error."""
    async with emulated(job_seconds=5) as (_, client):
        async with client.generate_many(["a"], tmp_path, keep_remote=True):
            with pytest.raises(ConfigurationError, match="another odiqueue process"):
                async with client.generate_many(["b"], tmp_path):
                    pass


async def test_refused_fresh_batch_leaves_the_running_manifest_alone(tmp_path: Path) -> None:
    """resume=False on a folder another batch is writing is refused before it moves that
    batch's manifest (a moved manifest would make the next resume pay again)."""
    async with emulated(job_seconds=5) as (_, client):
        async with client.generate_many(["a"], tmp_path, keep_remote=True):
            with pytest.raises(ConfigurationError, match="another odiqueue process"):
                async with client.generate_many(["b"], tmp_path, resume=False):
                    pass
            assert (tmp_path / "manifest.jsonl").exists()
            assert not list(tmp_path.glob("manifest-*.jsonl"))


async def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    """A file already at an item's name fails that item before it is paid for."""
    (tmp_path / "mine_0.png").write_bytes(b"precious")
    async with emulated() as (emu, client):
        (outcome,) = await collect(client, [("mine", ImageRequest("x"))], tmp_path)
    assert isinstance(outcome.error, OutputFileError)
    assert (tmp_path / "mine_0.png").read_bytes() == b"precious"
    assert emu.stats.requests["submit"] == 0


async def test_file_appearing_after_the_check_is_kept_and_the_image_saved_too(
    tmp_path: Path,
) -> None:
    """A file that takes an item's name after the batch paid for the job is kept, and the
    paid image is saved beside it under a name with the request id."""
    target = tmp_path / "mine_0.png"

    def on_progress(progress: Progress) -> None:
        # Called as the job turns "queued": after the pre-payment check, before any download.
        if progress.queued and not target.exists():
            target.write_bytes(b"precious")

    async with emulated() as (emu, client):
        (outcome,) = await collect(
            client, [("mine", ImageRequest("x"))], tmp_path, on_progress=on_progress
        )
    assert outcome.ok, outcome.error
    assert target.read_bytes() == b"precious"
    (path,) = outcome.paths
    assert path.name == f"mine_0.{outcome.request_id}.png"
    assert path.read_bytes().startswith(b"\x89PNG")
    assert emu.stats.requests["submit"] == 1


async def test_bad_items_and_keys(tmp_path: Path) -> None:
    """Wrong item types and repeated keys are refused with a message naming the item."""
    async with emulated() as (_, client):
        with pytest.raises(TypeError, match="item 1"):
            await collect(client, ["ok", 42], tmp_path / "a")
        with pytest.raises(ValueError, match="item 1: the key 'k'"):
            await collect(
                client, [("k", ImageRequest("x")), ("k", ImageRequest("y"))], tmp_path / "b"
            )
        (outcome,) = await collect(client, [""], tmp_path / "c")
    assert isinstance(outcome.error, InvalidParameterError)


async def test_progress_counts(tmp_path: Path) -> None:
    """Progress snapshots add up: at the end every item is saved or failed."""
    seen: list[Progress] = []
    async with (
        emulated(workers=2) as (_, client),
        client.generate_many(
            ["a", "b", "c [fail:CONTENT_BLOCKED]"], tmp_path, on_progress=seen.append
        ) as outcomes,
    ):
        async for _ in outcomes:
            pass
        final = outcomes.progress
    assert (final.saved, final.failed, final.queued, final.running, final.waiting) == (
        2,
        1,
        0,
        0,
        0,
    )
    assert final.polls >= 3
    assert final.bytes > 0
    assert any(p.queued or p.running for p in seen)


async def test_same_prompt_twice_is_two_items(tmp_path: Path) -> None:
    """Identical prompts are distinct items (hash plus occurrence), each saved."""
    async with emulated() as (emu, client):
        outcomes = await collect(client, ["same", "same"], tmp_path)
    assert len({o.key for o in outcomes}) == 2
    assert emu.stats.requests["submit"] == 2


async def test_instant_waits_batch(tmp_path: Path) -> None:
    """Under instant_waits a batch still completes (waits are skipped, not broken)."""
    async with emulated(job_seconds=0.05) as (_, client):
        with instant_waits():
            outcomes = await collect(client, [f"i{i}" for i in range(5)], tmp_path)
    assert all(o.ok for o in outcomes)


async def test_rate_limited_submits_slow_down_and_finish(tmp_path: Path) -> None:
    """Under 429s on submit every item is still saved, each job created exactly once."""
    from odiqueue.testing import Faults

    faults = Faults(rate_429=0.3, retry_after=0.02, calls=frozenset({"submit"}))
    async with emulated(faults=faults, seed=5) as (emu, client):
        outcomes = await collect(client, [f"p{i}" for i in range(40)], tmp_path)
    assert all(o.ok for o in outcomes)
    assert emu.stats.jobs_created == 40
    refused = emu.stats.faults_injected["submit:429"]
    assert refused > 0
    assert emu.stats.requests["submit"] == 40 + refused


async def test_rerun_owns_files_of_its_unrecorded_saves(tmp_path: Path) -> None:
    """A file renamed into place just before a crash (no saved line) is not duplicated."""
    async with emulated() as (emu, client):
        (first,) = await collect(client, [("a", ImageRequest("x"))], tmp_path)
        lines = (tmp_path / "manifest.jsonl").read_text().splitlines(keepends=True)
        (tmp_path / "manifest.jsonl").write_text("".join(lines[:-1]))  # drop the saved line
        (tmp_path / "b_0.png.4242-7.odiqueue-part").write_bytes(b"half an image from a killed run")
        (second,) = await collect(client, [("a", ImageRequest("x"))], tmp_path)
    assert second.ok
    assert second.resumed
    assert second.paths == first.paths
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".jsonl") == [
        ".odiqueue.lock",
        "a_0.png",
    ]
    assert emu.stats.requests["submit"] == 1


async def test_download_outage_is_fetched_on_rerun_not_paid_again(tmp_path: Path) -> None:
    """A paid job whose images could not be fetched is picked up again by id on a rerun."""
    from odiqueue.testing import Faults

    async with emulated() as (emu, client):
        emu.set_faults(Faults(rate_500=1.0, calls=frozenset({"image"})))
        async with AsyncClient(KEY, base_url=emu.base_url, retry=RetryPolicy(attempts=2)) as short:
            with instant_waits():
                (first,) = await collect(short, ["a"], tmp_path)
        assert not first.ok
        emu.set_faults(Faults())
        (second,) = await collect(client, ["a"], tmp_path)
    assert second.ok
    assert second.resumed
    assert second.request_id == first.request_id
    assert emu.stats.jobs_created == 1


async def test_leaving_during_a_submit_still_records_and_cancels_the_job(tmp_path: Path) -> None:
    """A submit in flight when the caller leaves completes, is recorded, then cancelled."""
    from odiqueue.testing import Faults

    slow = Faults(rate_slow=1.0, slow_seconds=1.0, calls=frozenset({"submit"}))
    async with emulated(faults=slow, job_seconds=60) as (emu, client):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:

                async def leave_once_both_posts_arrived() -> None:
                    # The server has created both jobs; their replies are still held back.
                    await until(lambda: emu.stats.jobs_created >= 2)
                    scope.cancel()

                group.start_soon(leave_once_both_posts_arrived)
                async with client.generate_many(["a", "b"], tmp_path) as outcomes:
                    async for _ in outcomes:
                        pass
        jobs = list(emu.stats.jobs.values())
    assert len(jobs) == 2
    assert all(job.cancelled for job in jobs)
    submitted = [line for line in manifest_lines(tmp_path) if line["event"] == "submitted"]
    assert len(submitted) == 2


async def test_a_stalled_reader_stops_new_submissions(tmp_path: Path) -> None:
    """A caller that stops reading outcomes stops the batch from submitting more."""
    seen: list[Progress] = []
    async with emulated() as (emu, client):
        items = (f"p{i}" for i in range(200))
        async with client.generate_many(items, tmp_path, max_in_flight=4, on_progress=seen.append):
            # Settled: every job made so far is saved and nothing is queued or running, so
            # each worker is held at handing over its outcome to nobody.
            await until(
                lambda: (
                    bool(seen)
                    and seen[-1].saved >= 4
                    and seen[-1].saved == emu.stats.jobs_created
                    and seen[-1].queued + seen[-1].running == 0
                )
            )
            await anyio.wait_all_tasks_blocked()
        created = emu.stats.jobs_created
    assert created <= 2 * 4 + 1  # in flight, plus finished ones waiting to be read


async def test_bad_inline_image_is_an_outcome_not_a_crash(tmp_path: Path) -> None:
    """An undecodable inline image fails its own item; the batch goes on."""
    from tests.scripted import Scripted, scripted_server

    async with scripted_server() as server:
        q = "/model/v1/queue/gpt_image_1"
        server.script("POST", q, Scripted(200, {"request_id": "j1"}))
        server.script("GET", f"{q}/requests/j1/status", Scripted(200, {"status": "COMPLETED"}))
        server.script(
            "GET",
            f"{q}/requests/j1/response",
            Scripted(200, {"data": [{"b64_json": "bm90IGFuIGltYWdl"}]}),
        )
        async with AsyncClient(KEY, base_url=server.url + "/model") as client:
            (outcome,) = await collect(client, ["x"], tmp_path)
    assert not outcome.ok
    assert "not an image" in str(outcome.error)


async def test_long_keys_keep_every_image(tmp_path: Path) -> None:
    """A key too long for a file name is shortened without merging a job's images."""
    key = "k" * 400
    async with emulated() as (_, client):
        (outcome,) = await collect(client, [(key, ImageRequest("x", n=2))], tmp_path)
    assert outcome.ok
    assert len(set(outcome.paths)) == 2
    assert all(p.exists() and len(p.name.encode()) <= 200 for p in outcome.paths)


async def test_queued_jobs_are_dated_by_the_ends_ahead_of_them(tmp_path: Path) -> None:
    """On the batch's own queue, a job waiting far back is not looked at again and again:
    it is woken once enough jobs have ended for it to have started, and its start is dated
    from those ends, far closer than the middle of the long gap between its looks. (The
    emulator runs in real time; the bounds sit far from both the old and the new figures.)"""
    async with emulated(workers=4, job_seconds=3, time_scale=0.1, seed=3) as (emu, client):
        outcomes = await collect(
            client, (f"product {i}" for i in range(48)), tmp_path, max_in_flight=48
        )
        jobs = {job.request_id: job for job in emu.stats.jobs.values()}
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    waited = [
        (o, job)
        for o in outcomes
        if (job := jobs[o.request_id or ""]).started_at != job.submitted_at
    ]
    assert len(waited) >= 40, len(waited)
    # By the second half the batch knows the queue is its own (the first half is spent
    # learning that, on timed looks).
    settled = waited[len(waited) // 2 :]
    queue_looks = [job.status_polls for _, job in settled]
    # 6 to 8 when it looked on a timer; 1.0 to 2.1 in 14 measured runs of this code.
    assert sum(queue_looks) / len(queue_looks) <= 3.5, queue_looks
    errors = []
    for o, job in settled:
        assert o.started_at is not None
        assert job.started_at is not None
        errors.append(abs(o.started_at - job.started_at))
    # Each of these waited seconds between its looks: the midpoint is off by over half a
    # second. The ends date it within a small fraction of a run (0.3 s).
    assert sum(errors) / len(errors) < 0.1, errors  # 0.005 to 0.008 in 14 measured runs
