"""Taking a slot: at once when one is free, waiting when none is, never past a cancel."""

from __future__ import annotations

import anyio
import pytest

from odiqueue._gate import take

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", [anyio.CapacityLimiter, anyio.Semaphore])
async def test_free_slot_taken_without_yielding(kind: type) -> None:
    """No other task runs while a free slot is taken (anyio's acquire would let one run)."""
    gate = kind(1)
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    async with anyio.create_task_group() as group:
        group.start_soon(other)
        await take(gate)
        assert not ran
        gate.release()
    assert ran


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
        await anyio.sleep(0.01)
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
