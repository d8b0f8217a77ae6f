"""A seeded chaos run: one batch against an emulator injecting every fault at once.

Whatever the faults, every item ends saved (verified files, recorded in the manifest) or failed
for a reason the server's own records explain; no job is paid for that the outcomes do not
account for; and a rerun after the storm resumes from the manifest without paying twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image as PILImage

from odiqueue import (
    AsyncClient,
    ImageRequest,
    JobFailedError,
    OdiqueueError,
    Outcome,
    PollPolicy,
    RetryPolicy,
    SubmissionUncertainError,
    instant_waits,
)
from odiqueue.testing import Emulator, EmulatorConfig, Faults, JobRecord
from tests.helpers import manifest_lines

pytestmark = pytest.mark.anyio

KEY = "sk-chaos-test-key-31337"
ITEMS = 150
FORMATS = ("png", "jpeg", "webp")
SIZES = (None, "1024x1024", "1024x1536", "1536x1024")
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
# The emulator draws size "auto" as 1024x1024.
DIMENSIONS = {
    None: (1024, 1024),
    "1024x1024": (1024, 1024),
    "1024x1536": (1024, 1536),
    "1536x1024": (1536, 1024),
}
TRANSIENT = frozenset({"INFERENCE_FAILURE", "INFERENCE_TIMEOUT", "INTERNAL_SERVER_ERROR"})
PERMANENT = frozenset({"CONTENT_BLOCKED", "REQUEST_INVALID"})
#: Submit faults that answer before any job exists; the client may retry only 429 and 503.
SUBMIT_REFUSALS = ("reset", "429", "503", "500", "502", "malformed")
#: Of those, the ones a client cannot tell from "created, reply lost": never resent.
SUBMIT_AMBIGUOUS = ("reset", "500", "502", "malformed")
MAX_JOB_RETRIES = 2

FAULTS = Faults(
    rate_reset=0.03,
    rate_429=0.05,
    rate_503=0.04,
    rate_500=0.03,
    rate_502=0.03,
    rate_malformed=0.03,
    rate_slow=0.05,
    rate_truncated=0.06,
    retry_after=0.01,
    slow_seconds=0.05,  # far below the client's read timeout
    job_failure_rates={
        "INFERENCE_FAILURE": 0.04,
        "INFERENCE_TIMEOUT": 0.03,
        "INTERNAL_SERVER_ERROR": 0.03,
        "CONTENT_BLOCKED": 0.03,
        "REQUEST_INVALID": 0.03,
    },
)


def chaos_items() -> Iterator[tuple[str, ImageRequest]]:
    """150 keyed requests: every format and size, some with n=2, compression, transparency."""
    for i in range(ITEMS):
        fmt = FORMATS[i % 3]
        yield (
            f"item-{i:03d}",
            ImageRequest(
                f"chaos product {i}",  # unique, so the emulator's jobs map back to items
                n=2 if i % 7 == 0 else None,
                size=SIZES[(i // 3) % 4],
                output_format=fmt,
                output_compression=70 if fmt != "png" and i % 5 == 0 else None,
                background="transparent" if fmt != "jpeg" and i % 4 == 1 else None,
            ),
        )


def expected_paths(out: Path, outcome: Outcome) -> tuple[Path, ...]:
    ext = EXTENSIONS[outcome.request.format.value]
    return tuple(out / f"{outcome.key}_{i}.{ext}" for i in range(outcome.request.count))


def check_image(path: Path, request: ImageRequest) -> None:
    with PILImage.open(path) as img:
        img.load()  # decodes every pixel: a cut-off file fails here
        assert img.format == PIL_FORMATS[request.format.value], path
        size = request.size.value if request.size is not None else None
        assert img.size == DIMENSIONS[size], path


async def run_batch(client: AsyncClient, out: Path) -> list[Outcome]:
    async with client.generate_many(
        chaos_items(), out, max_in_flight=40, poll_concurrency=16, max_job_retries=MAX_JOB_RETRIES
    ) as outcomes:
        return [outcome async for outcome in outcomes]


def check_outcomes_against_server(
    outcomes: list[Outcome], jobs_by_prompt: dict[str, list[JobRecord]]
) -> None:
    """Each item's jobs on the server are exactly the ones its outcome accounts for."""
    for o in outcomes:
        jobs = jobs_by_prompt[o.request.prompt]
        uncertain = isinstance(o.error, SubmissionUncertainError)
        # Every attempt created one job, except an uncertain last one (a fault that
        # answered before any job existed).
        assert len(jobs) == o.attempts - uncertain, o
        assert 1 <= o.attempts <= MAX_JOB_RETRIES + 1, o
        # A job is only submitted again after a transient failure of the one before.
        earlier = jobs if uncertain else jobs[:-1]
        assert all(job.error_type in TRANSIENT for job in earlier), o
        if o.ok:
            assert jobs[-1].request_id == o.request_id
            assert jobs[-1].succeeded
        elif uncertain:
            assert o.request_id is None
        else:
            # The only other failure a generous retry policy leaves is the job's own.
            assert isinstance(o.error, JobFailedError), repr(o.error)
            assert o.request_id == jobs[-1].request_id
            assert o.error.error_type == jobs[-1].error_type
            if o.error.error_type in TRANSIENT:
                assert o.attempts == MAX_JOB_RETRIES + 1, o
            else:
                assert o.error.error_type in PERMANENT, o


def check_files(out: Path, outcomes: list[Outcome]) -> None:
    """Exactly the claimed files are on disk, each at its expected name, each a real image."""
    claimed = [p for o in outcomes for p in o.paths]
    assert len(claimed) == len(set(claimed))
    for o in outcomes:
        assert o.paths == (expected_paths(out, o) if o.ok else ()), o
        for path in o.paths:
            check_image(path, o.request)
    assert set(out.iterdir()) == {*claimed, out / "manifest.jsonl", out / ".odiqueue.lock"}


def check_manifest(
    out: Path, outcomes: list[Outcome], jobs_by_prompt: dict[str, list[JobRecord]]
) -> None:
    """The manifest tells the same story as the outcomes, the server and the disk."""
    lines = manifest_lines(out)
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_key[line["key"]].append(line)
    saved = [line for line in lines if line["event"] == "saved"]
    assert Counter(line["key"] for line in saved) == Counter(o.key for o in outcomes if o.ok)
    for line in saved:
        for entry in line["files"]:
            data = (out / entry["name"]).read_bytes()
            assert len(data) == entry["size"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    for o in outcomes:
        events = by_key[o.key]
        kinds = [e["event"] for e in events]
        assert kinds.count("intent") == o.attempts, kinds
        submitted = [e["request_id"] for e in events if e["event"] == "submitted"]
        assert submitted == [job.request_id for job in jobs_by_prompt[o.request.prompt]]
        last = events[-1]
        if o.ok:
            assert last["event"] == "saved"
            assert last["request_id"] == o.request_id
            assert [f["name"] for f in last["files"]] == [p.name for p in o.paths]
        elif isinstance(o.error, SubmissionUncertainError):
            # Only the intent line stays, so a rerun knows this submit's fate is unknown.
            assert last["event"] == "intent", kinds
        else:
            assert isinstance(o.error, JobFailedError)
            assert last["event"] == "failed"
            assert last["error_type"] == o.error.error_type
            assert last["permanent"] is (o.error.error_type in PERMANENT)


#: Each run speaks another reply dialect of the protocol, with its own fault sequence.
DIALECTS = {
    # Padded images take several chunks and disk writes each, so a cut-off download
    # stops after its .part file exists.
    "documented": {"seed": 2024, "image_bytes": 600_000},
    "terse-lower": {
        "seed": 7,
        "submit_shape": "terse",
        "status_spelling": "lower",
        "not_ready_style": "400",
        "result_shape": "images",
        "progress": True,
    },
    "error-objects": {"seed": 31, "error_style": "object", "result_shape": "openai_url"},
    "aliases-output-content": {
        "seed": 99,
        "status_spelling": "aliases",
        "result_shape": "output_content",
    },
    "inline-b64": {"seed": 5, "result_shape": "openai_b64"},
}


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "dialect",
    list(DIALECTS),
)
async def test_chaos_batch_keeps_every_guarantee(tmp_path: Path, dialect: str) -> None:
    """Under every fault at once, each item is saved or explained, paid once, and resumable."""
    config = EmulatorConfig(
        workers=12, job_seconds=0.1, duration_sigma=0.5, faults=FAULTS, **DIALECTS[dialect]
    )
    retry = RetryPolicy(attempts=40, initial=0.01, maximum=0.1, timeout=120)
    poll = PollPolicy(initial=0.05, maximum=0.5)
    async with (
        Emulator(config) as emu,
        AsyncClient(KEY, base_url=emu.base_url, retry=retry, poll=poll, seed=7) as client,
    ):
        # Retry, poll and rate-limiter waits are skipped; the faults are all still there.
        with instant_waits(), anyio.fail_after(90):
            outcomes = await run_batch(client, tmp_path)
        stats = emu.stats

        assert sorted(o.key for o in outcomes) == [key for key, _ in chaos_items()]
        assert all(o.ok or isinstance(o.error, OdiqueueError) for o in outcomes)
        jobs_by_prompt: dict[str, list[JobRecord]] = defaultdict(list)
        for job in stats.jobs.values():  # in submit order
            jobs_by_prompt[job.params["prompt"]].append(job)
        assert set(jobs_by_prompt) <= {o.request.prompt for o in outcomes}
        check_outcomes_against_server(outcomes, jobs_by_prompt)
        await anyio.to_thread.run_sync(check_files, tmp_path, outcomes)
        check_manifest(tmp_path, outcomes, jobs_by_prompt)

        # Paid exactly for what the outcomes account for: items plus their resubmits,
        # minus the uncertain last attempts, which (here) created nothing.
        uncertain = [o for o in outcomes if isinstance(o.error, SubmissionUncertainError)]
        resubmits = sum(o.attempts - 1 for o in outcomes)
        assert stats.jobs_created == len(outcomes) + resubmits - len(uncertain)
        # Refused submits cost extra requests, never extra jobs; ambiguous ones were never
        # sent again, and each became exactly one uncertain outcome.
        refused = sum(stats.faults_injected[f"submit:{f}"] for f in SUBMIT_REFUSALS)
        assert stats.requests["submit"] == stats.jobs_created + refused
        ambiguous = sum(stats.faults_injected[f"submit:{f}"] for f in SUBMIT_AMBIGUOUS)
        assert len(uncertain) == ambiguous
        # The API key never went to the image origin.
        assert not any(
            name.lower() == "authorization"
            for headers in stats.image_request_headers
            for name in headers
        )

        # The run really was chaotic: every kind of fault hit something (inline images
        # are never downloaded, so nothing can cut them off).
        kinds = {name.split(":")[1] for name in stats.faults_injected}
        expected = {"reset", "429", "503", "500", "502", "malformed", "slow", "truncated"}
        if config.result_shape == "openai_b64":
            expected.discard("truncated")
        assert kinds == expected
        assert {job.error_type for job in stats.jobs.values()} >= {None, *TRANSIENT, *PERMANENT}
        assert uncertain
        assert any(o.ok and o.attempts > 1 for o in outcomes)

        # The HTTP storm passes; the same batch again pays only for items without images.
        emu.set_faults(Faults())
        created_before = stats.jobs_created
        with instant_waits(), anyio.fail_after(60):
            rerun = await run_batch(client, tmp_path)
        new_jobs: dict[str, list[JobRecord]] = defaultdict(list)
        for job in list(emu.stats.jobs.values())[created_before:]:
            new_jobs[job.params["prompt"]].append(job)
        check_rerun(outcomes, rerun, new_jobs)
        await anyio.to_thread.run_sync(check_files, tmp_path, rerun)
    saved = [line["key"] for line in manifest_lines(tmp_path) if line["event"] == "saved"]
    assert Counter(saved) == Counter(o.key for o in rerun if o.ok)


async def test_set_faults_changes_job_failures_of_new_jobs() -> None:
    """After set_faults(Faults()), new jobs no longer fail as the old rates said."""
    blocked = Faults(job_failure_rates={"CONTENT_BLOCKED": 1.0})
    async with Emulator(EmulatorConfig(faults=blocked)) as emu:
        emu.set_faults(Faults())
        async with AsyncClient(KEY, base_url=emu.base_url) as client:
            with instant_waits(), anyio.fail_after(30):
                result = await client.generate("an apple")
    assert len(result.images) == 1


async def test_object_style_failures_keep_their_error_type(tmp_path: Path) -> None:
    """A job failing in the object error style is classified by its code: resubmitted."""
    config = EmulatorConfig(error_style="object")
    async with (
        Emulator(config) as emu,
        AsyncClient(KEY, base_url=emu.base_url) as client,
        client.generate_many(["x [fail:INFERENCE_FAILURE]"], tmp_path) as outcomes,
    ):
        with instant_waits(), anyio.fail_after(30):
            (outcome,) = [o async for o in outcomes]
    assert isinstance(outcome.error, JobFailedError)
    assert outcome.error.error_type == "INFERENCE_FAILURE"
    assert outcome.attempts == MAX_JOB_RETRIES + 1


def check_rerun(
    first: list[Outcome], rerun: list[Outcome], new_jobs: dict[str, list[JobRecord]]
) -> None:
    """Saved items and permanent failures cost nothing again; only the rest is resubmitted."""
    before = {o.key: o for o in first}
    assert sorted(o.key for o in rerun) == sorted(before)
    assert set(new_jobs) <= {o.request.prompt for o in rerun}
    for o in rerun:
        old, jobs = before[o.key], new_jobs[o.request.prompt]
        permanent = isinstance(old.error, JobFailedError) and old.error.error_type in PERMANENT
        if old.ok or permanent:
            assert jobs == [], o
            assert o.resumed, o
            assert o.paths == old.paths, o
            if old.ok:
                assert o.request_id == old.request_id
            else:
                assert isinstance(o.error, JobFailedError)
                assert o.error.error_type == old.error.error_type  # type: ignore[union-attr]
            continue
        # Uncertain or transiently failed before: submitted again, and told so.
        assert jobs, o
        assert o.uncertain is isinstance(old.error, SubmissionUncertainError), o
        assert all(job.error_type in TRANSIENT for job in jobs[:-1]), o
        assert o.request_id == jobs[-1].request_id
        if o.ok:
            assert jobs[-1].succeeded
        else:
            # HTTP faults are off: only the job itself can have failed.
            assert isinstance(o.error, JobFailedError), repr(o.error)
            assert o.error.error_type == jobs[-1].error_type
