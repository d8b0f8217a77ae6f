"""An event loop on a thread of its own, for :class:`~odiqueue.Client`'s blocking calls."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import anyio.from_thread

__all__ = ["start_loop", "stop_loop"]


def start_loop() -> tuple[anyio.from_thread.BlockingPortal, threading.Thread]:
    """An event loop on a daemon thread, and the portal to it.

    Not ``anyio.from_thread.start_blocking_portal``: its worker thread is joined at exit,
    so a script that forgot ``close()`` would hang there instead of ending.
    """
    started: Future[anyio.from_thread.BlockingPortal] = Future()

    async def serve() -> None:
        async with anyio.from_thread.BlockingPortal() as portal:
            started.set_result(portal)
            await portal.sleep_until_stopped()

    def run() -> None:
        try:
            anyio.run(serve, backend="asyncio")
        except BaseException as exc:  # pragma: no cover - the loop failed to start
            if not started.done():
                started.set_exception(exc)

    thread = threading.Thread(target=run, name="odiqueue.Client", daemon=True)
    thread.start()
    return started.result(), thread


def stop_loop(portal: anyio.from_thread.BlockingPortal, thread: threading.Thread) -> None:
    """Stop the loop :func:`start_loop` started, and wait for its thread to end."""
    # Calls still running in other threads end with the loop (their futures are cancelled).
    portal.call(portal.stop, True)
    thread.join()
