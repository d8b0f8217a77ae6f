"""File names for saved images: a template filled in, then made safe to create in ``out_dir``.

Keys and templates come from users' spreadsheets, so a name is never trusted: separators,
control characters and names Windows reserves are replaced, leading dots are dropped, and the
result is checked to stay inside ``out_dir``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import unicodedata
from pathlib import Path
from typing import Final

from odiqueue._errors import ConfigurationError

__all__ = [
    "DEFAULT_TEMPLATE",
    "check_template",
    "image_path",
    "literal_template",
    "name_key",
    "safe_component",
    "second_name",
]

DEFAULT_TEMPLATE: Final = "{key}_{index}.{ext}"
FIELDS: Final = frozenset({"key", "index", "request_id", "ext"})
_MAX_NAME_BYTES: Final = 200
_IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".webp")
_UNSAFE: Final = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
#: Characters that change how a name looks without showing (U+202E reverses the rest, so
#: ``x\u202egnp.exe`` shows as ``xexe.png``), controls, and line or paragraph separators.
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
_RESERVED: Final = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)


@functools.lru_cache(maxsize=64)
def _fields(template: str) -> frozenset[str]:
    # Cached: a batch has one or a few templates, and image_path asks for every image.
    return frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f is not None)


def check_template(template: str) -> str:
    """Refuse a template with unknown fields or no way to tell a job's images apart."""
    try:
        names = _fields(template)
    except ValueError as exc:
        raise ConfigurationError(f"name template {template!r} is malformed: {exc}") from None
    unknown = names - FIELDS
    if unknown:
        raise ConfigurationError(
            f"name template {template!r} uses {', '.join(sorted(unknown))}: "
            f"only {{{'}, {'.join(sorted(FIELDS))}}} are known"
        )
    if "key" not in names and "request_id" not in names:
        raise ConfigurationError(
            f"name template {template!r} needs {{key}} or {{request_id}}, or every job "
            "would write the same file"
        )
    return template


def literal_template(name: str) -> str:
    """A template that yields ``name`` itself, with the right extension.

    Braces in the name are kept literally; an image suffix it already has is replaced by
    the real format's.
    """
    stem = name
    for suffix in _IMAGE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem.replace("{", "{{").replace("}", "}}") + ".{ext}"


def safe_component(text: str) -> str:
    """``text`` as one harmless file-name component (never empty, never hidden)."""
    # Lone surrogates (from badly decoded input) cannot be encoded in a file name.
    text = unicodedata.normalize("NFC", text.encode("utf-8", "replace").decode("utf-8"))
    text = _UNSAFE.sub("_", text)
    if not text.isprintable():  # rare: checked per character only then
        text = "".join("_" if unicodedata.category(c) in _HIDDEN_CATEGORIES else c for c in text)
    text = text.strip().strip(".")
    text = text.lstrip(".-") or "_"
    if text.split(".", 1)[0].lower() in _RESERVED:
        text = "_" + text
    encoded = text.encode("utf-8")
    if len(encoded) > _MAX_NAME_BYTES:
        # Cut the stem, never the suffix (it carries the image number and extension), and
        # add a hash of the whole so that two long names stay two names.
        stem, dot, suffix = text.rpartition(".")
        if not dot or len(suffix) > 16:
            stem, suffix = text, ""
        tag = "~" + hashlib.blake2b(encoded, digest_size=4).hexdigest()
        tail = tag + ("." + suffix if suffix else "")
        room = _MAX_NAME_BYTES - len(tail.encode("utf-8"))
        text = stem.encode("utf-8")[:room].decode("utf-8", "ignore") + tail
    return text


def name_key(name: str) -> str:
    """What two file names are compared by for a clash: their compatibility form (NFKC:
    ``ＡＢＣ`` is ``ABC``), case folded (``straße`` is ``STRASSE``). Folders on macOS and
    Windows ignore case, and names that look alike are not told apart by people either."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def image_path(
    out_dir: Path, template: str, *, key: str, index: int, request_id: str, ext: str, count: int
) -> Path:
    """The path for image ``index`` of a job, inside ``out_dir``.

    When a job has several images but the template has no ``{index}``, the index is added
    before the extension so images never overwrite each other.
    """
    name = template.format(key=key, index=index, request_id=request_id, ext=ext)
    if count > 1 and "index" not in _fields(template):
        stem, dot, suffix = name.rpartition(".")
        name = f"{stem}_{index}.{suffix}" if dot else f"{name}_{index}"
    safe = safe_component(name)
    # Never true (safe_component removes separators and leading dots); checked on the text
    # rather than by building the parent path, since this runs for every image.
    if safe in (".", "..") or "/" in safe or "\\" in safe:
        raise ConfigurationError(f"file name {name!r} would leave {out_dir}")
    return out_dir / safe


def second_name(path: Path, request_id: str) -> Path:
    """Where an image goes when its own name is taken: the job's id before the extension,
    the stem shortened if need be so the name stays within the length cap (the id alone
    keeps two jobs' second names apart)."""
    tail = safe_component(f"x.{request_id}{path.suffix}")[1:]
    room = _MAX_NAME_BYTES - len(tail.encode("utf-8"))
    stem = path.stem.encode("utf-8")[:room].decode("utf-8", "ignore")
    return path.with_name(safe_component(stem + tail))
