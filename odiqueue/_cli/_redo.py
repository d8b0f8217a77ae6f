"""``--redo``: which rows to generate again, read and checked before anything is sent.

``--redo KEY[,KEY...]`` (repeatable) names rows by their id (or, for rows without one, the
key the manifest and results.csv show); ``--redo failed`` and ``--redo changed`` choose
rows by what the earlier run recorded. A key that names no row of the input, or a row no
earlier run in ``--out`` recorded, is a usage error naming the nearest known keys.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from odiqueue._batch._items import ItemKeys
from odiqueue._batch._records import read_manifest
from odiqueue._batch._redo import nearest
from odiqueue._config import REDO_MODES, RedoChoice
from odiqueue._models import BatchItem

__all__ = ["redo_choice"]


def redo_choice(
    args: argparse.Namespace, rows: Sequence[tuple[int, BatchItem]]
) -> tuple[RedoChoice, str | None]:
    """What ``--redo`` asks for, and the problem with it (None when there is none)."""
    given: list[str] = args.redo or []
    if not given:
        return None, None
    if args.no_resume:
        return None, "--redo needs the manifest of --out, which --no-resume sets aside"
    words = [word.strip() for value in given for word in value.split(",") if word.strip()]
    if not words:
        return None, "--redo: name the rows' ids, or use --redo failed or --redo changed"
    modes = sorted({word for word in words if word in REDO_MODES})
    if modes:
        if len(words) > 1:
            return None, f"--redo {modes[0]} takes no other value: run it on its own"
        return modes[0], None  # type: ignore[return-value]
    wanted = frozenset(words)
    keys = _row_keys(rows)
    unknown = sorted(wanted - keys)
    if unknown:
        return None, f"--redo: no row of {args.input} has the id {_hints(unknown, keys)}"
    recorded = read_manifest(Path(args.out)).keys()
    unrecorded = sorted(wanted - recorded)
    if unrecorded:
        return None, (
            f"--redo: no earlier run in {args.out} generated {_hints(unrecorded, ())}: "
            "there is nothing to redo (drop it from --redo: a new row is generated anyway)"
        )
    return wanted, None


def _row_keys(rows: Sequence[tuple[int, BatchItem]]) -> frozenset[str]:
    """Every row's key as the batch names it: its id, else the request's digest key."""
    names = ItemKeys()
    return frozenset(names.identify(item, index)[0] for index, (_, item) in enumerate(rows))


def _hints(keys: Sequence[str], known: frozenset[str] | tuple[()]) -> str:
    shown = []
    for key in keys:
        like = nearest(key, known)
        shown.append(repr(key) + (f" (nearest: {', '.join(map(repr, like))})" if like else ""))
    return ", ".join(shown)
