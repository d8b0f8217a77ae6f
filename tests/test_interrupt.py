"""Ctrl-C and SIGTERM on ``odiqueue generate``, and output folders it cannot use: the real
command in a subprocess against the emulator, counting the jobs the emulator created."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from odiqueue.testing import Emulator, EmulatorConfig
from tests.helpers import WAIT_BOUND, image_files, manifest_lines, until
from tests.test_cli import COMMAND, env

pytestmark = pytest.mark.anyio

ROWS = 40
#: Printed on stderr once the first signal has been taken in (the stop is under way).
STOPPING = "Stopping"


def products(tmp_path: Path, seconds: float) -> Path:
    """40 rows whose jobs each run ``seconds`` on the emulator."""
    source = tmp_path / "p.txt"
    source.write_text("".join(f"product {i} [duration:{seconds}]\n" for i in range(ROWS)))
    return source


def command(source: Path, out: Path, emu: Emulator, *extra: str) -> list[str]:
    return [*COMMAND, "generate", str(source), "--out", str(out), "--base-url", emu.base_url,
            "--concurrency", "8", *extra]  # fmt: skip


def saved(out: Path) -> int:
    return sum(1 for line in manifest_lines(out, torn_ok=True) if line["event"] == "saved")


class Running:
    """One ``odiqueue generate`` process, its stderr read as it comes."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.err = ""

    async def read_err(self) -> None:
        assert self.process.stderr is not None
        async for chunk in self.process.stderr:
            self.err += chunk.decode()

    async def wait_for_err(self, text: str) -> None:
        await until(lambda: text in self.err)


@pytest.fixture
async def started() -> AsyncIterator[list[Running]]:
    """Processes started by a test; any still alive at its end are killed."""
    runs: list[Running] = []
    yield runs
    for run in runs:
        if run.process.returncode is None:
            run.process.kill()
        await run.process.aclose()


async def finish(run: Running) -> int:
    with anyio.fail_after(WAIT_BOUND * 2):
        return await run.process.wait()


async def rerun(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(90):
        return await anyio.run_process(args, env=env(), check=False)


def queued(emu: Emulator) -> int:
    """Jobs waiting in the emulator's queue, the four workers being busy."""
    stats = emu.stats
    return stats.active_jobs - stats.running_jobs if stats.running_jobs == 4 else 0


def ran(emu: Emulator) -> int:
    """Jobs a worker started: the ones that are paid for."""
    return sum(1 for job in emu.stats.jobs.values() if job.started_at is not None)


async def test_first_sigint_cancels_only_queued_jobs_rerun_pays_once(
    tmp_path: Path, started: list[Running]
) -> None:
    """The first Ctrl-C cancels only jobs not yet started, lets running ones finish and be
    saved within the grace period; the rerun pays for each row exactly once."""
    # Run times spread out, so jobs start one at a time, as on a real queue.
    config = EmulatorConfig(workers=4, job_seconds=0.6, duration_sigma=0.3, seed=3)
    async with Emulator(config) as emu:
        source = tmp_path / "p.txt"
        source.write_text("".join(f"product {i}\n" for i in range(ROWS)))
        args = command(source, tmp_path / "o", emu)
        run = Running(await anyio.open_process(args, env=env()))
        started.append(run)
        async with anyio.create_task_group() as group:
            group.start_soon(run.read_err)
            await until(lambda: saved(tmp_path / "o") >= 5 and queued(emu) == 4)
            run.process.send_signal(signal.SIGINT)
            code = await finish(run)
        assert code == 130, run.err
        cancelled = [j for j in emu.stats.jobs.values() if j.cancelled]
        assert cancelled, "the queued jobs are cancelled"
        assert all(j.started_at is None for j in cancelled), "a running job was cancelled"
        # The default grace lets every running job finish: nothing is left on the server.
        assert all(j.completed_at is not None for j in emu.stats.jobs.values())
        assert saved(tmp_path / "o") == sum(1 for j in emu.stats.jobs.values() if j.succeeded)
        assert "cancelled" in run.err
        assert "resume" in run.err

        again = await rerun(args)
        assert again.returncode == 0, again.stderr.decode()
        assert ran(emu) == ROWS
        assert emu.stats.jobs_created == ROWS + len(cancelled)
    assert len(image_files(tmp_path / "o")) == ROWS


async def test_jobs_left_running_are_collected_by_id(
    tmp_path: Path, started: list[Running]
) -> None:
    """With no grace, the running jobs are left on the server (not cancelled), the message
    says how many, and the rerun fetches them by id instead of submitting them again."""
    async with Emulator(EmulatorConfig(workers=4)) as emu:
        # Every job takes 2 s, four at a time: the ones running when the signal comes
        # started together at most a moment ago, and are still running when it exits.
        args = command(products(tmp_path, 2.0), tmp_path / "o", emu, "--grace", "0")
        run = Running(await anyio.open_process(args, env=env()))
        started.append(run)
        async with anyio.create_task_group() as group:
            group.start_soon(run.read_err)
            await until(lambda: saved(tmp_path / "o") >= 4 and queued(emu) == 4)
            run.process.send_signal(signal.SIGINT)
            code = await finish(run)
        assert code == 130, run.err
        left = [j for j in emu.stats.jobs.values() if j.completed_at is None]
        assert left, "running jobs are left to run"
        assert sum(1 for j in left if j.started_at is not None) == 4
        assert all(j.cancel_requests == 0 for j in left)
        assert f"{len(left)} job(s) left to run" in run.err
        cancelled = sum(1 for j in emu.stats.jobs.values() if j.cancelled)

        again = await rerun(args)
        assert again.returncode == 0, again.stderr.decode()
        assert all(j.result_requests > 0 for j in left), "the rerun collects them by id"
        assert ran(emu) == ROWS
        assert emu.stats.jobs_created == ROWS + cancelled
    assert len(image_files(tmp_path / "o")) == ROWS


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_second_signal_cancels_the_rest_and_exits_130(
    tmp_path: Path, started: list[Running], signum: signal.Signals
) -> None:
    """A second Ctrl-C (or SIGTERM) during the grace period cancels the running jobs on the
    server and exits 130, like the first."""
    async with Emulator(EmulatorConfig(workers=4)) as emu:
        args = command(products(tmp_path, 30.0), tmp_path / "o", emu)
        run = Running(await anyio.open_process(args, env=env()))
        started.append(run)
        async with anyio.create_task_group() as group:
            group.start_soon(run.read_err)
            await until(lambda: emu.stats.running_jobs == 4 and emu.stats.jobs_created == 8)
            run.process.send_signal(signum)
            await run.wait_for_err(STOPPING)
            run.process.send_signal(signum)
            code = await finish(run)
        assert code == 130, run.err
        jobs = list(emu.stats.jobs.values())
        assert all(j.cancelled for j in jobs), "every job is cancelled after the second signal"
        assert emu.stats.jobs_created == 8, "nothing is submitted after the first signal"
        assert "resume" in run.err


async def test_keep_remote_cancels_nothing_on_either_signal(
    tmp_path: Path, started: list[Running]
) -> None:
    """With --keep-remote, neither the first nor the second Ctrl-C cancels a job."""
    async with Emulator(EmulatorConfig(workers=4)) as emu:
        args = command(products(tmp_path, 30.0), tmp_path / "o", emu, "--keep-remote")
        run = Running(await anyio.open_process(args, env=env()))
        started.append(run)
        async with anyio.create_task_group() as group:
            group.start_soon(run.read_err)
            await until(lambda: emu.stats.running_jobs == 4 and emu.stats.jobs_created == 8)
            run.process.send_signal(signal.SIGINT)
            await run.wait_for_err(STOPPING)
            run.process.send_signal(signal.SIGINT)
            code = await finish(run)
        assert code == 130, run.err
        assert emu.stats.requests["cancel"] == 0
        assert emu.stats.jobs_created == 8


# --- output folders that cannot be used ---------------------------------------------------


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (a real mount: this needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    point = tmp_path / "ro"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(point)], check=True)
    yield point
    subprocess.run(["umount", str(point)], check=True)


def _unusable(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, list[str]]:
    """An output folder of ``kind`` and the command prefix to run the CLI with."""
    prefix: list[str] = []
    if kind == "read-only mount":
        return request.getfixturevalue("mount_point"), prefix
    if kind == "inside a read-only mount":
        return request.getfixturevalue("mount_point") / "new", prefix
    if kind == "no permission":
        # Root ignores permission bits; without the capability that lets it, it obeys them.
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is needed to drop the capability that bypasses permissions")
        out = tmp_path / "locked"
        out.mkdir(mode=0o500)
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
        return out, prefix
    if kind == "dangling symlink":
        out = tmp_path / "link"
        out.symlink_to(tmp_path / "gone")
        return out, prefix
    if kind == "manifest is a folder":
        out = tmp_path / "o"
        (out / "manifest.jsonl").mkdir(parents=True)
        return out, prefix
    assert kind == "parent is a file"
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "sub", prefix


@pytest.mark.parametrize(
    "kind",
    [
        "read-only mount",
        "inside a read-only mount",
        "no permission",
        "dangling symlink",
        "manifest is a folder",
        "parent is a file",
    ],
)
async def test_unusable_output_folder_is_one_line_exit_2_nothing_sent(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """An output folder that cannot be written ends in one clear line naming --out, exit 2,
    before any request is sent."""
    out, prefix = _unusable(kind, tmp_path, request)
    async with Emulator(EmulatorConfig()) as emu:
        args = [*prefix, *command(products(tmp_path, 0.0), out, emu)]
        with anyio.fail_after(60):
            done = await anyio.run_process(args, env=env(), check=False)
        assert sum(emu.stats.requests.values()) == 0
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("odiqueue generate: --out ")
    assert "Traceback" not in err
    assert done.stdout == b""


async def test_missing_parents_of_the_output_folder_are_created(tmp_path: Path) -> None:
    """--out a/b/c creates the missing folders and runs."""
    async with Emulator(EmulatorConfig(workers=4)) as emu:
        out = tmp_path / "a" / "b" / "c"
        source = tmp_path / "p.txt"
        source.write_text("one\ntwo\n")
        with anyio.fail_after(60):
            done = await anyio.run_process(command(source, out, emu), env=env(), check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert len(image_files(out)) == 2


async def test_locked_folder_touches_nothing_and_exits_2(tmp_path: Path) -> None:
    """A folder another process holds: the lock message, exit 2, no summary, nothing sent,
    and the folder's failed.csv and manifest left as they were."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "failed.csv").write_text("row,key,request_id,error_type,error\n2,k,,X,boom\n")
    (out / "manifest.jsonl").write_text("")
    lock = os.open(out / ".odiqueue.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(lock, str(os.getpid()).encode())
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        async with Emulator(EmulatorConfig()) as emu:
            with anyio.fail_after(60):
                done = await anyio.run_process(
                    command(products(tmp_path, 0.0), out, emu), env=env(), check=False
                )
            assert sum(emu.stats.requests.values()) == 0
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    finally:
        os.close(lock)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert f"another odiqueue process (pid {os.getpid()})" in err
    assert len(err.strip().splitlines()) == 1, err
    assert done.stdout == b""
    assert after == before
