"""Redo: generating chosen items again, and keeping their earlier images in ``previous/``.

Which items a batch's ``redo`` chooses (:func:`chosen`), the check that every key it names
was recorded by an earlier run (:func:`unknown_keys`), and the swap that puts a redone
item's new images in place (:func:`swap`).

The swap runs only once every new image is saved, each under a name of its own (the new
request id before the extension), so a redo that fails leaves the earlier images where they
were. Then each earlier image that still holds the bytes the manifest recorded is moved to
``previous/<stem>.<earlier request id><ext>``, and each new one is renamed to its name. A
crash in between loses nothing: the manifest's last word for the item is still its new
job (with the earlier files remembered), so the next run fetches it by id and finishes the
swap.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import anyio
import attrs

from odiqueue._batch._jobs import Work
from odiqueue._batch._records import KeyState
from odiqueue._batch._save import Collector
from odiqueue._config import RedoChoice
from odiqueue._errors import ConfigurationError
from odiqueue._naming import second_name
from odiqueue._sink import SavedFile

__all__ = [
    "PREVIOUS_DIR",
    "chosen",
    "in_place",
    "nearest",
    "replace_earlier",
    "swap",
    "unknown_keys",
]

log = logging.getLogger("odiqueue")

#: The folder inside ``out_dir`` that keeps the images a redo replaced.
PREVIOUS_DIR: Final = "previous"
_CHUNK: Final = 1024 * 1024


def chosen(redo: RedoChoice, key: str, state: KeyState | None, changed: bool) -> bool:
    """Whether ``redo`` asks for item ``key`` to be generated again, given what an earlier
    run recorded (``state``) and whether its request ``changed`` since."""
    if redo is None or state is None:
        return False
    if redo == "failed":
        return state.stage == "failed"
    if redo == "changed":
        return changed
    return key in redo


def nearest(key: str, known: Collection[str]) -> list[str]:
    """The known keys most like ``key`` (a typo's likely meaning, case aside), best first."""
    folded: dict[str, str] = {}
    for name in known:
        folded.setdefault(name.casefold(), name)
    like = difflib.get_close_matches(key.casefold(), list(folded), n=3, cutoff=0.6)
    return [folded[name] for name in like]


def unknown_keys(redo: RedoChoice, states: Mapping[str, KeyState], out_dir: Path) -> None:
    """Raise :class:`ConfigurationError` when ``redo`` names keys that no earlier run in
    ``out_dir`` recorded (nothing to redo: most likely a typo), naming the nearest ones."""
    if not isinstance(redo, frozenset):
        return
    unknown = sorted(redo - states.keys())
    if not unknown:
        return
    hints = []
    for key in unknown:
        like = nearest(key, states)
        hints.append(repr(key) + (f" (nearest: {', '.join(map(repr, like))})" if like else ""))
    raise ConfigurationError(
        f"redo: no earlier run in {out_dir} recorded {', '.join(hints)}: nothing was sent"
    )


def in_place(out_dir: Path, files: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """The recorded files still on disk at their recorded size (their bytes are checked at
    the swap, where it matters)."""
    present = []
    for record in files:
        try:
            if (out_dir / record["name"]).stat().st_size == record["size"]:
                present.append(record)
        except (OSError, KeyError, TypeError):
            continue
    return tuple(present)


async def replace_earlier(
    out_dir: Path, collector: Collector, work: Work, saved: list[SavedFile], template: str
) -> tuple[list[SavedFile], list[Path]]:
    """Once every new image of a redone item is saved (each under a name of its own), put
    them in place of the earlier ones (see :func:`swap`): the new images where they now
    are, and where the earlier ones went."""
    assert work.handle is not None
    request_id, count = work.handle.request_id, len(saved)
    finals = [
        collector.path(template, work.key, work.request, i, request_id, count) for i in range(count)
    ]
    placed, moved = await anyio.to_thread.run_sync(
        swap,
        out_dir,
        [file.path for file in saved],
        [] if work.keep_apart else finals,  # another item holds the name: stay apart
        work.replaces,
        work.replaced_id,
    )
    return [attrs.evolve(f, path=p) for f, p in zip(saved, placed, strict=True)], moved


def swap(
    out_dir: Path,
    staged: Sequence[Path],
    finals: Sequence[Path],
    replaces: Sequence[Mapping[str, Any]],
    replaced_id: str | None,
) -> tuple[list[Path], list[Path]]:
    """Move the earlier images aside into ``previous/``, then put each new image (saved at
    ``staged``) at its name in ``finals`` (empty: it stays where it is). Returns where the
    new images are and where the earlier ones went. Blocking: run it in a thread."""
    moved: list[Path] = []
    tag = replaced_id or time.strftime("%Y%m%d-%H%M%S")
    for record in replaces:
        old = out_dir / record["name"]
        if not _holds(old, record):
            continue  # moved by a run that died before recording it, or changed by someone
        folder = out_dir / PREVIOUS_DIR
        folder.mkdir(exist_ok=True)
        target = _free(folder / second_name(Path(record["name"]), tag).name)
        os.rename(old, target)
        moved.append(target)
    placed: list[Path] = []
    for index, path in enumerate(staged):
        final = finals[index] if index < len(finals) else path
        placed.append(final if final == path or _move_to(path, final) else path)
    return placed, moved


def _move_to(path: Path, final: Path) -> bool:
    """Rename ``path`` to ``final`` unless ``final`` is taken (someone's file, kept)."""
    try:
        os.link(path, final)
    except FileExistsError:
        log.warning("%s is taken by a file the manifest does not know: kept %s", final, path)
        return False
    except OSError:  # no hard links here: check, then rename (under the folder's lock)
        if final.exists():
            return False
        os.replace(path, final)
        return True
    os.unlink(path)
    return True


def _holds(path: Path, record: Mapping[str, Any]) -> bool:
    """Whether ``path`` holds the bytes a manifest record describes."""
    try:
        if path.stat().st_size != record["size"]:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except (OSError, KeyError, TypeError):
        return False
    return "sha256" not in record or digest.hexdigest() == record["sha256"]


def _free(path: Path) -> Path:
    """``path``, or the first ``<stem>-<n><ext>`` beside it that no file has."""
    candidate, count = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{count}{path.suffix}")
        count += 1
    return candidate
