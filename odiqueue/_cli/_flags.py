"""The command line's names for the library's settings: an error's fix, told as a flag.

An error that a setting would resolve carries it as a :class:`~odiqueue.Fix` (parameter and
value); its message names the Python parameter. Everything the command line prints goes
through :func:`told`, so a CLI user reads ``--overwrite``, never ``overwrite=True``.
"""

from __future__ import annotations

from typing import Final

from odiqueue._errors import Fix, OdiqueueError

__all__ = ["FLAGS", "flag", "told"]

#: The flag of each setting an error may name as its fix.
FLAGS: Final = {"overwrite": "--overwrite", "redo": "--redo"}


def flag(fix: Fix) -> str:
    """The fix as it is typed on the command line: ``--overwrite``, ``--redo changed``,
    ``--redo sku-1,sku-2``."""
    name = FLAGS[fix.parameter]
    if isinstance(fix.value, bool):
        return name
    value = fix.value if isinstance(fix.value, str) else ",".join(fix.value)
    return f"{name} {value}"


def told(error: BaseException | None, *, context: bool = True) -> str:
    """The error as the command line says it: its fix named by flag. Without ``context``,
    the message alone (no request id or HTTP status after it)."""
    if error is None:
        return ""
    if not isinstance(error, OdiqueueError):
        return str(error)
    if error.fix is None:
        return str(error) if context else error.message
    if context:
        return error.told(flag(error.fix))
    return f"{error.problem}: {error.fix.advice.format(setting=flag(error.fix))}"
