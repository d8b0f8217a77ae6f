"""The ``odiqueue`` logger and the one small handler the command line and ``ODIQUEUE_LOG`` use.

What each level shows:

- ``WARNING``: what a user should know that does not stop the work (a server URL on
  another origin, a job that could not be cancelled, an item that failed, a torn manifest line).
- ``INFO``: each job's milestones (``submitted request …``, ``cancel of request …``, a
  batch's resubmits and remote cancels).
- ``DEBUG``: every HTTP exchange (``status of request … : GET /path -> HTTP 200 in 0.012s``),
  every retry and its wait, and reply fields that were ignored. Each line starts with the
  call (submit, status, result, cancel, image) and the request id (``(new)`` for a submit
  whose id is not known yet). No line ever holds the API key.

A library adds no handler by default: an application configures ``logging`` as it likes.
Setting ``ODIQUEUE_LOG`` (``debug``, ``info``, ``warning`` or ``error``) before importing
odiqueue adds one handler printing to stderr, for scripts that configure nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, TextIO

__all__ = ["ENV_LOG", "LEVELS", "LOGGER", "configure_from_env", "log_to_stderr"]

#: The name of the package's one logger.
LOGGER: Final = "odiqueue"
#: The environment variable that turns logging to stderr on for scripts.
ENV_LOG: Final = "ODIQUEUE_LOG"
#: The levels ``ODIQUEUE_LOG`` takes.
LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


if TYPE_CHECKING:
    _Handler = logging.StreamHandler[TextIO]
else:  # subscriptable only from Python 3.11
    _Handler = logging.StreamHandler


class _StderrHandler(_Handler):
    """Ours (added once however often it is asked for), writing to ``sys.stderr`` as it is
    at each record, so a redirected stderr (a notebook's, a test's) is honoured."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass  # StreamHandler.__init__ sets it; the property above wins


def log_to_stderr(level: int) -> None:
    """Print the ``odiqueue`` logger's records of ``level`` and above on stderr."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    ours = [h for h in logger.handlers if isinstance(h, _StderrHandler)]
    if not ours:
        ours = [_StderrHandler()]
        ours[0].setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(ours[0])
    ours[0].setLevel(level)


def configure_from_env(environ: Mapping[str, str] = os.environ) -> None:
    """Apply ``ODIQUEUE_LOG`` if it is set (called when odiqueue is imported)."""
    raw = environ.get(ENV_LOG)
    if raw is None or not raw.strip():
        return
    level = LEVELS.get(raw.strip().lower())
    if level is None:
        log_to_stderr(logging.WARNING)
        logging.getLogger(LOGGER).warning(
            "%s=%r is not one of %s: showing warnings only", ENV_LOG, raw, ", ".join(LEVELS)
        )
        return
    log_to_stderr(level)
