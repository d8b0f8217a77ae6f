"""The manifest file itself: what a fresh start does with an earlier one."""

from __future__ import annotations

from pathlib import Path

import pytest

from odiqueue._batch import _manifest
from odiqueue._batch._manifest import Journal


def test_fresh_starts_in_the_same_second_keep_every_earlier_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each set-aside manifest records jobs that may be paid for: a second fresh start
    stamped with the same second must not rename over the first one's."""
    monkeypatch.setattr(_manifest.time, "strftime", lambda _format: "20261121-104500")
    for i in range(3):
        journal = Journal(tmp_path)
        journal.open(fresh=True)
        journal.write("intent", f"item{i}", attempt=1)
        journal.close()
    set_aside = sorted(tmp_path.glob("manifest-*.jsonl"))
    kept = sorted(path.read_text().split('"key":"')[1].split('"')[0] for path in set_aside)
    assert kept == ["item0", "item1"], [path.name for path in set_aside]
    assert '"key":"item2"' in (tmp_path / "manifest.jsonl").read_text()
