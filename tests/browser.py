"""A real headless Chromium driven over the DevTools protocol (aiohttp's websocket client).

Used by the gallery tests, and runnable to make the README's screenshot of a page:
``python tests/browser.py PAGE.html OUT.png [WIDTH HEIGHT]``.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import anyio

#: Flags that work in a container as root, without a GPU or a network, and leave no state.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
START_BOUND = 60.0  # seconds Chromium may take to start on a busy machine (never asserted)


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One page target: commands in, results out (events are skipped)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its result."""
        number = next(self._ids)
        await self._ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
        async for message in self._ws:
            reply = json.loads(message.data)
            if reply.get("id") != number:
                continue
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply["result"]  # type: ignore[no-any-return]
        raise RuntimeError("the browser closed the connection")

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def loaded(self, url: str) -> None:
        """Wait until ``url``'s document and everything it loads eagerly are in (a new tab
        may still show its first, empty document)."""
        check = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        while not await self.evaluate(check):
            await anyio.sleep(0.05)

    async def reload(self) -> None:
        """Reload the page (as its own refresh does) and wait for the new document."""
        before = await self.evaluate("performance.timeOrigin")
        await self.send("Page.reload")
        check = f"performance.timeOrigin !== {before} && document.readyState === 'complete'"
        while not await self.evaluate(check):
            await anyio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element ``selector`` names."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    async def screenshot(self, path: Path) -> None:
        """Write what the viewport shows as a PNG."""
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@asynccontextmanager
async def open_page(
    executable: str, url: str, *, width: int = 1280, height: int = 900
) -> AsyncIterator[Page]:
    """Start Chromium on ``url`` with a fresh profile; stop it (and its helpers) on exit."""
    with tempfile.TemporaryDirectory(prefix="odiqueue-chromium-") as profile:
        command = [
            executable,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            url,
        ]
        # Its own process group: Chromium's helper processes end with it.
        process = await anyio.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # D-Bus complaints, of no use here
            start_new_session=True,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            with anyio.fail_after(START_BOUND):
                while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
                    if process.returncode is not None:
                        raise RuntimeError(f"chromium exited with {process.returncode}")
                    await anyio.sleep(0.05)
                port = int(port_file.read_text().split()[0])
                async with aiohttp.ClientSession() as session:
                    targets: list[dict[str, Any]] = []
                    while not targets:
                        async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                            targets = [
                                t
                                for t in await reply.json()
                                if t["type"] == "page" and t["url"] == url
                            ]
                        if not targets:
                            await anyio.sleep(0.05)
                    async with session.ws_connect(
                        targets[0]["webSocketDebuggerUrl"], max_msg_size=0
                    ) as ws:
                        page = Page(ws)
                        await page.loaded(url)
                        yield page
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with anyio.CancelScope(shield=True):
                await process.wait()


async def _main(page_file: str, out: str, width: int = 1280, height: int = 900) -> None:
    executable = find_chromium()
    if executable is None:
        raise SystemExit("no chromium on PATH (apt-get install -y chromium)")
    async with open_page(
        executable, Path(page_file).resolve().as_uri(), width=width, height=height
    ) as page:
        await page.evaluate(
            "Promise.all([...document.images].map(i => i.decode().catch(() => null)))"
        )
        await page.screenshot(Path(out))


if __name__ == "__main__":
    args = sys.argv[1:]
    anyio.run(_main, args[0], args[1], *map(int, args[2:4]))
