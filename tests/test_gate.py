"""Taking a slot or handing over an item: at once when no wait is needed, waiting when one
is, never past a cancel."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest

from odiqueue._batch._throttle import receive, send, take

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def another_task() -> AsyncIterator[list[bool]]:
    """Start a task beside the test's own; the list says whether it has run (it must have
    by the end). Whatever the test awaits before checking has not yielded if it has not."""
    ran: list[bool] = []

    async def other() -> None:
        ran.append(True)

    async with anyio.create_task_group() as group:
        group.start_soon(other)
        yield ran
    assert ran


@pytest.mark.parametrize("kind", [anyio.CapacityLimiter, anyio.Semaphore])
async def test_free_slot_taken_without_yielding(kind: type) -> None:
    """No other task runs while a free slot is taken (anyio's acquire would let one run)."""
    gate = kind(1)
    async with another_task() as ran:
        await take(gate)
        assert not ran
        gate.release()


async def test_waits_for_a_release() -> None:
    limiter = anyio.CapacityLimiter(1)
    order: list[str] = []

    async def second() -> None:
        await take(limiter)
        order.append("second took")
        limiter.release()

    async with anyio.create_task_group() as group:
        await take(limiter)
        group.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        order.append("first releases")
        limiter.release()
    assert order == ["first releases", "second took"]


async def test_cancelled_task_does_not_take_a_free_slot() -> None:
    limiter = anyio.CapacityLimiter(1)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await take(limiter)
        pytest.fail("take() went on in a cancelled scope")
    assert limiter.borrowed_tokens == 0


async def test_item_handed_over_without_yielding_when_there_is_room() -> None:
    """Neither side lets another task run when it need not wait (anyio's would)."""
    tx, rx = anyio.create_memory_object_stream[int](1)
    async with another_task() as ran:
        await send(tx, 7)
        assert await receive(rx) == 7
        assert not ran
    tx.close()
    rx.close()


async def test_full_stream_waits_for_the_receiver_and_the_end_is_seen() -> None:
    tx, rx = anyio.create_memory_object_stream[int](0)
    got: list[int] = []

    async def reader() -> None:
        with pytest.raises(anyio.EndOfStream):
            while True:
                got.append(await receive(rx))

    async with anyio.create_task_group() as group:
        group.start_soon(reader)
        async with tx:
            for i in range(3):
                await send(tx, i)
    assert got == [0, 1, 2]
    rx.close()


async def test_cancelled_task_neither_sends_nor_receives() -> None:
    tx, rx = anyio.create_memory_object_stream[int](1)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await send(tx, 1)
        pytest.fail("send() went on in a cancelled scope")
    assert rx.statistics().current_buffer_used == 0
    tx.send_nowait(2)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await receive(rx)
        pytest.fail("receive() went on in a cancelled scope")
    assert rx.receive_nowait() == 2
    tx.close()
    rx.close()
