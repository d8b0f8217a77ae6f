"""The review page in a real headless Chromium, opened from the file system."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import anyio
import pytest

from odiqueue._cli._gallery import INDEX_NAME
from odiqueue.testing import Emulator, EmulatorConfig
from tests.browser import find_chromium, open_page

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CHROMIUM = find_chromium()
KEY = "sk-browser-test-key-3131"
_SCRIPT = Path(sys.executable).with_name("odiqueue")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "odiqueue"]
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"

# Each image scrolled into view in turn (they load lazily), then its natural width.
_WIDTHS = """(async () => {
  const widths = [];
  for (const img of document.querySelectorAll("img.output")) {
    img.scrollIntoView();
    await img.decode().catch(() => null);
    widths.push(img.naturalWidth);
  }
  window.scrollTo(0, 0);
  return widths;
})()"""
_VISIBLE = """[...document.querySelectorAll("article.card")]
  .filter(card => card.offsetParent !== null).map(card => card.dataset.key)"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")
async def test_the_page_in_a_real_browser(tmp_path: Path) -> None:
    """Opened from file://, every thumbnail loads, the failed filter shows exactly the failed
    items (also after a reload), a hostile prompt is shown as text and runs nothing; a
    screenshot is written."""
    assert CHROMIUM is not None
    rows = [
        ["id", "prompt"],
        ["mug", "A sage green mug on an oak table"],
        ["lamp", "A brass lamp [fail:CONTENT_BLOCKED]"],
        ["tote", HOSTILE],
        ["vase", "A tall blue vase [fail:INFERENCE_FAILURE]"],
        ["cup", "An espresso cup"],
        ["bowl", "A stoneware bowl"],
    ]
    source = tmp_path / "products.csv"
    with source.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    out = tmp_path / "out"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ODIQUEUE_")}
    async with Emulator(EmulatorConfig(workers=4, job_seconds=0.05)) as emu:
        command = [*COMMAND, "generate", str(source), "--out", str(out)]
        command += ["--base-url", emu.base_url, "--max-retries", "0"]
        with anyio.fail_after(60):
            done = await anyio.run_process(
                command, env={**environment, "ODIQUEUE_API_KEY": KEY}, check=False
            )
    assert done.returncode == 1, done.stderr.decode()

    async with open_page(CHROMIUM, (out / INDEX_NAME).as_uri(), width=1200, height=700) as page:
        widths = await page.evaluate(_WIDTHS)
        assert len(widths) == 4
        assert all(width > 0 for width in widths), widths

        title = await page.evaluate("document.title")
        assert title == f"odiqueue: {out.name}"
        assert await page.evaluate("document.scripts.length") == 0
        prompts = await page.evaluate(
            "[...document.querySelectorAll('.prompt')].map(p => p.innerText)"
        )
        assert HOSTILE in prompts

        assert await page.evaluate(_VISIBLE) == [row[0] for row in rows[1:]]
        await page.click("a[href='#failed']")
        assert await page.evaluate(_VISIBLE) == ["lamp", "vase"]
        await page.screenshot(tmp_path / "failed.png")
        await page.reload()  # the filter is in the address: a reload keeps it
        assert await page.evaluate(_VISIBLE) == ["lamp", "vase"]
        await page.click("a.all")
        assert len(await page.evaluate(_VISIBLE)) == 6
        await page.screenshot(tmp_path / "gallery.png")
    for name in ("gallery.png", "failed.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
