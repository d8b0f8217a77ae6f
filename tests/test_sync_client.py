"""``Client``, the blocking twin of ``AsyncClient``, in plain (non-async) tests."""

from __future__ import annotations

import asyncio
import inspect
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest

from odiqueue import (
    AsyncClient,
    CancelOutcome,
    Client,
    ClientClosedError,
    ConfigurationError,
    ImageRequest,
    JobCancelledError,
    RetryPolicy,
    Succeeded,
    instant_waits,
)
from odiqueue.testing import Emulator, EmulatorConfig
from tests.helpers import WAIT_BOUND, image_files

KEY = "sk-sync-test-key-0123456789"
SLOW = "a slow teapot [duration:600]"
#: AsyncClient's names whose blocking twin is spelled differently.
TWIN_NAMES = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}
#: Entering and leaving: present in both, their parameters are the protocols' own.
LIFECYCLE = ("__aenter__", "__aexit__", "__enter__", "__exit__")


@contextmanager
def served(**config: Any) -> Iterator[Emulator]:
    """An emulator running on a loop of its own thread, for tests that do not await."""
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(Emulator(EmulatorConfig(**config))) as emu,
    ):
        yield emu


def client_for(emu: Emulator) -> Client:
    """A blocking client pointed at ``emu``."""
    return Client(KEY, base_url=emu.base_url, retry=RetryPolicy(attempts=10))


def until(check: Callable[[], bool]) -> None:
    """Block until ``check()`` holds; the bound only stops a broken test."""
    give_up = time.monotonic() + WAIT_BOUND
    while not check():
        assert time.monotonic() < give_up, "the state never came"
        time.sleep(0.005)


def _public(cls: type) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(cls).items()
        if not name.startswith("_") or name == "__init__" or name in LIFECYCLE
    }


def test_every_async_method_has_a_blocking_twin() -> None:
    """Each public AsyncClient method and property has a Client twin with the same parameters."""
    twins = _public(Client)
    for name, member in _public(AsyncClient).items():
        twin_name = TWIN_NAMES.get(name, name)
        assert twin_name in twins, f"Client has no {twin_name} (AsyncClient.{name})"
        twin = twins[twin_name]
        if isinstance(member, property):
            assert isinstance(twin, property), name
            continue
        if name in LIFECYCLE:
            continue

        def shape(function: Any) -> list[tuple[str, Any, Any]]:
            return [
                (p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
            ]

        assert shape(twin) == shape(member), f"Client.{twin_name} differs from AsyncClient.{name}"
        assert twin.__doc__ or twin_name.startswith("__"), twin_name


def test_readme_example_generates_and_downloads(tmp_path: Path) -> None:
    """`with Client(...)`: generate() then download() saves a real image, no await anywhere."""
    with served() as emu, client_for(emu) as client, instant_waits():
        result = client.generate(ImageRequest("a red apple", output_format="webp", n=2))
        saved = [
            client.download(image, tmp_path / f"apple_{i}.webp")
            for i, image in enumerate(result.images)
        ]
    assert [s.format for s in saved] == ["webp", "webp"]
    assert emu.stats.requests["submit"] == 1


def test_the_single_calls(tmp_path: Path) -> None:
    """submit, status, poll, wait, result, result_or_status, attach and cancel all block."""
    with served() as emu, client_for(emu) as client, instant_waits():
        handle = client.submit("a pear")
        states = [type(s).__name__ for s in client.poll(handle)]
        assert states[-1] == "Succeeded"
        assert isinstance(client.status(handle.request_id), Succeeded)
        assert client.wait(handle).images
        assert client.result(client.attach(handle.request_id)) is not None
        assert client.result_or_status(handle).images  # type: ignore[union-attr]
        assert client.completed_result(handle).images
        slow = client.submit(SLOW)
        assert client.cancel(slow) is CancelOutcome.REQUESTED
        with pytest.raises(JobCancelledError):
            client.wait(slow)


def test_poll_left_early_is_closed() -> None:
    """Breaking out of poll() closes its generator on the loop; the client stays usable."""
    with served() as emu, client_for(emu) as client:
        handle = client.submit(SLOW)
        for _status in client.poll(handle):
            break
        assert client.cancel(handle) is CancelOutcome.REQUESTED
    assert emu.stats.jobs[handle.request_id].cancelled


def test_generate_many_is_a_blocking_iterator(tmp_path: Path) -> None:
    """generate_many inside `with` yields every outcome with a plain for loop."""
    prompts = [f"mug number {i}" for i in range(5)]
    with served() as emu, client_for(emu) as client, instant_waits():
        with client.generate_many(prompts, tmp_path, max_in_flight=2) as outcomes:
            done = list(outcomes)
        assert outcomes.progress.saved == 5
    assert sorted(o.index for o in done) == list(range(5))
    assert all(o.ok for o in done)
    assert len(image_files(tmp_path)) == 5
    assert emu.stats.requests["submit"] == 5


def test_generate_many_left_early_cancels_remote_jobs(tmp_path: Path) -> None:
    """An exception inside the batch's `with` cancels its unfinished jobs on the server."""
    prompts = [f"slow lamp {i} [duration:600]" for i in range(3)]
    with served() as emu, client_for(emu) as client:
        with pytest.raises(LookupError), client.generate_many(prompts, tmp_path):
            until(lambda: emu.stats.jobs_created == 3)
            raise LookupError("the caller gave up")
    assert emu.stats.requests["cancel"] == 3
    assert all(job.cancelled for job in emu.stats.jobs.values())


def test_works_inside_a_running_event_loop() -> None:
    """A loop running in the caller's thread (Jupyter, an async view) does not matter."""

    async def notebook_cell(client: Client) -> int:
        return len(client.generate("a cell of a notebook").images)

    with served() as emu, client_for(emu) as client, instant_waits():
        assert asyncio.run(notebook_cell(client)) == 1


def test_one_client_serves_many_threads() -> None:
    """Calls from several threads at once share the client's one loop and session."""
    results: list[int] = []
    with served() as emu, client_for(emu) as client, instant_waits():
        threads = [
            threading.Thread(
                target=lambda i=i: results.append(len(client.generate(f"thread {i}").images))
            )
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_BOUND)
    assert results == [1, 1, 1, 1]
    assert emu.stats.requests["submit"] == 4


@pytest.mark.parametrize("keep_remote", [False, True])
def test_ctrl_c_cancels_the_job_unless_kept(keep_remote: bool) -> None:
    """Ctrl-C in a blocking generate() raises KeyboardInterrupt after cancelling the job
    (as the CLI does), or leaves it running with keep_remote=True."""
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    with served() as emu, client_for(emu) as client:

        def press_ctrl_c() -> None:
            until(lambda: emu.stats.requests["status"] >= 1)
            assert main is not None
            signal.pthread_kill(main, signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            client.generate(SLOW, keep_remote=keep_remote)
        presser.join(WAIT_BOUND)
        (job,) = emu.stats.jobs.values()
        assert job.cancelled is not keep_remote
        assert emu.stats.requests["cancel"] == (0 if keep_remote else 1)
        # The client is still usable after the interrupt.
        assert client.cancel(job.request_id) in set(CancelOutcome)


def test_open_close_and_misuse() -> None:
    """open()/close() work without `with`; calls on an unopened or closed client are refused."""
    with served() as emu:
        client = client_for(emu)
        with pytest.raises(ClientClosedError, match="not open"):
            client.status("abc")
        client.open()
        with pytest.raises(ClientClosedError, match="already open"):
            client.open()
        with instant_waits():
            assert client.generate("opened by hand").images
        client.close()
        client.close()
        with pytest.raises(ClientClosedError):
            client.submit("after close")
        assert repr(client).startswith("Client(")
        assert KEY not in repr(client)


def test_close_from_another_thread_ends_calls_in_flight() -> None:
    """A call blocked in one thread ends with ClientClosedError when another closes the client."""
    with served() as emu:
        client = client_for(emu)
        client.open()
        errors: list[BaseException] = []

        def waiting() -> None:
            try:
                client.generate(SLOW, keep_remote=True)
            except BaseException as exc:
                errors.append(exc)

        waiter = threading.Thread(target=waiting)
        waiter.start()
        until(lambda: emu.stats.requests["status"] >= 1)
        client.close()
        waiter.join(WAIT_BOUND)
    assert [type(e) for e in errors] == [ClientClosedError]


def test_a_forgotten_close_does_not_hang_the_exit() -> None:
    """A script that opens a Client and never closes it still exits, quietly."""
    script = (
        "from odiqueue import Client\n"
        "client = Client('sk-forgotten-key-1234', base_url='http://127.0.0.1:9/model')\n"
        "client.open()\n"
        "print('opened')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=WAIT_BOUND,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "opened\n", "")


def test_bad_settings_fail_in_the_constructor() -> None:
    """A bad setting is refused when the Client is made, before any thread starts."""
    before = threading.active_count()
    with pytest.raises(ConfigurationError):
        Client(KEY, base_url="http://api.example.com")
    assert threading.active_count() == before
