"""A disk that fills up during a batch: nothing is paid for twice, nothing ends in a traceback.

The output folder is a real 3 MB tmpfs (mounting one needs root; the tests are skipped
otherwise), filled by "another program": the test writes a filler file until the kernel
says ENOSPC.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import itertools
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from odiqueue._batch._manifest import RESERVE_NAME, Journal
from tests.helpers import (
    COMMAND,
    PNG_1X1,
    WAIT_BOUND,
    env,
    image_files,
    job_created,
    manifest_lines,
    odiqueue,
    serving,
    until,
)

pytestmark = pytest.mark.anyio

MODEL_PATH = "/v1/queue/gpt_image_1"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 3 MB tmpfs, unmounted at the end."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Another program takes every free byte of ``disk`` (until ENOSPC)."""
    filler = disk / "other-program.bin"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 16, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(bytes(size))
    assert os.statvfs(disk).f_bavail == 0
    return filler


class QueueServer:
    """Just enough of the queue API: each submit makes a job that is done at once (its result
    the 1x1 PNG inline). While ``hold`` is set, submit replies wait for ``release``."""

    def __init__(self) -> None:
        self.submits = 0
        self.held = 0
        self.hold = False
        self.release = asyncio.Event()
        self.url = ""
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(MODEL_PATH, self._submit)
        app.router.add_get(MODEL_PATH + "/requests/{id}/status", self._status)
        app.router.add_get(MODEL_PATH + "/requests/{id}/response", self._response)
        app.router.add_put(MODEL_PATH + "/requests/{id}/cancel", self._cancel)
        return app

    async def _submit(self, request: web.Request) -> web.Response:
        await request.read()
        self.submits += 1
        if self.hold:
            self.held += 1
            await self.release.wait()
        job = f"job{next(self._ids):04d}"
        return job_created(f"{self.url}{MODEL_PATH}", job)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "COMPLETED", "request_id": request.match_info["id"]})

    async def _response(self, request: web.Request) -> web.Response:
        png = base64.b64encode(PNG_1X1).decode()
        return web.json_response({"data": [{"b64_json": png}]})

    async def _cancel(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)


@contextlib.asynccontextmanager
async def queue_server() -> AsyncIterator[QueueServer]:
    """A :class:`QueueServer` on a free loopback port."""
    server = QueueServer()
    try:
        async with serving(server.app()) as server.url:
            yield server
    finally:
        server.release.set()


async def test_disk_filling_up_mid_batch_never_pays_twice(tmp_path: Path, tmpfs: Path) -> None:
    """Disk filled while two submits are in flight: the run stops submitting and ends with a
    clear message (no traceback); after space is freed, the rerun pays for no item again."""
    # Long prompts make each "submitted" line long, so that one of them is cut short by the
    # kernel (a short write) when the disk fills: the case that used to tear the manifest.
    prompts = [f"product {i}: " + "a very detailed description " * 100 for i in range(6)]
    source = tmp_path / "products.txt"
    source.write_text("\n".join(prompts) + "\n")
    out = tmpfs / "out"
    async with queue_server() as server:
        server.hold = True
        command = ("generate", source, "--out", out, "--base-url", server.url)
        async with anyio.create_task_group() as group:
            first: list[tuple[int, str, str]] = []

            async def run() -> None:
                first.append(await odiqueue(*command, "--concurrency", "2"))

            group.start_soon(run)
            await until(lambda: server.held == 2)
            filler = fill(tmpfs)
            server.hold = False
            server.release.set()
        code, _, err = first[0]
        assert "Traceback" not in err, err
        assert code == 1, err
        assert "No space left" in err or "disk" in err
        assert server.submits < 6  # it stopped submitting
        filler.unlink()
        code, stdout, err = await odiqueue(*command)
        assert code == 0, err
    assert server.submits == 6
    assert len(image_files(out)) == 6
    assert "6 saved" in stdout


async def test_a_short_write_leaves_no_torn_line(tmpfs: Path) -> None:
    """A line the full disk takes only part of counts as not written, and is cut back off:
    the manifest ends at its last whole line, and the line after it is read normally."""
    journal = Journal(tmpfs)
    journal.open()
    try:
        os.unlink(tmpfs / RESERVE_NAME)  # no reserve: the disk is truly full
        assert journal.write("intent", "a", attempt=1)
        fill(tmpfs)
        long_id = "x" * 8000  # longer than what is left of the manifest's page
        assert not journal.write("intent", "b", attempt=1, note=long_id)
        data = (tmpfs / "manifest.jsonl").read_bytes()
        assert data.endswith(b"\n")
        assert [line["key"] for line in manifest_lines(tmpfs)] == ["a"]
    finally:
        journal.close()


async def test_paid_job_line_waits_in_memory_until_the_disk_has_room(tmpfs: Path) -> None:
    """A "submitted" line the disk refuses is kept and written before any later line once
    room is back; an intent line that cannot be written is dropped (nothing was sent)."""
    journal = Journal(tmpfs)
    journal.open()
    try:
        os.unlink(tmpfs / RESERVE_NAME)
        filler = fill(tmpfs)
        big = "y" * 8000
        assert not journal.write("submitted", "a", request_id="job-a", note=big)
        assert not journal.write("intent", "b", attempt=1)
        assert journal.failure is not None
        filler.unlink()
        assert journal.write("saved", "a", request_id="job-a", files=[])
    finally:
        journal.close()
    lines = manifest_lines(tmpfs)
    assert [(line["event"], line["key"]) for line in lines] == [("submitted", "a"), ("saved", "a")]


async def test_the_reserve_gives_a_paid_job_room_on_a_full_disk(tmpfs: Path) -> None:
    """With the disk full, the manifest's reserve is given up so the id of a job already paid
    for is still written; new submits are refused from then on."""
    journal = Journal(tmpfs)
    journal.open()
    try:
        assert journal.room_problem() is None
        fill(tmpfs)
        assert journal.write("submitted", "a", request_id="job-a", note="z" * 8000)
        assert not (tmpfs / RESERVE_NAME).exists()
        problem = journal.room_problem()
        assert problem is not None
        assert str(tmpfs) in problem
    finally:
        journal.close()
    assert [line["request_id"] for line in manifest_lines(tmpfs)] == ["job-a"]


async def test_unwritable_failed_csv_is_one_clear_line(tmp_path: Path) -> None:
    """failed.csv that cannot be written (here a folder is in its way) is reported in one
    line after the summary, never as a traceback."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\n")
    out = tmp_path / "out"
    (out / "failed.csv").mkdir(parents=True)
    async with queue_server() as server:
        code, stdout, err = await odiqueue(
            "generate", source, "--out", out, "--base-url", server.url
        )
    assert "Traceback" not in err, err
    assert "failed.csv" in err
    assert len(err.strip().splitlines()) == 1, err
    assert "1 saved" in stdout
    assert code == 1


async def test_summary_to_a_full_stdout_is_one_clear_line(tmp_path: Path) -> None:
    """Printing the progress and summary to a full device (/dev/full) ends in one line on
    stderr and a failure exit, never a traceback; the images are saved all the same."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\na lamp\n")
    out = tmp_path / "out"
    async with queue_server() as server:
        command = ["generate", source, "--out", out, "--base-url", server.url]
        with Path("/dev/full").open("w") as full, anyio.fail_after(WAIT_BOUND * 4):  # noqa: ASYNC230
            done = await anyio.run_process(
                [*COMMAND, *map(str, command)],
                env=env(),
                stdout=full,
                check=False,
            )
    err = done.stderr.decode()
    assert "Traceback" not in err, err
    assert "stdout" in err
    assert os.strerror(errno.ENOSPC) in err
    assert done.returncode == 1
    assert len(image_files(out)) == 2
    assert json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])["event"] == "saved"
