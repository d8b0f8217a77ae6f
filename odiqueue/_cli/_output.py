"""Output that must not stop a batch: stdout on a full disk, or a device that fails.

A batch that is paying for jobs keeps going when its progress lines cannot be printed: the
first error is kept (and said once, on stderr, at the end), later lines are dropped. A
closed pipe is not such an error: its reader has left, which stops the batch (see
``odiqueue._cli.main``).
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import TextIO

__all__ = ["Guarded"]


class Guarded(io.TextIOBase):
    """A text stream that keeps its first write error in :attr:`error` instead of raising."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self._inner = inner
        #: The error that stopped the output, if any.
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        """Write ``text``, or drop it once the stream has failed."""
        if self.error is None:
            try:
                self._inner.write(text)
            except BrokenPipeError:
                raise
            except OSError as exc:
                self._fail(exc)
        return len(text)

    def flush(self) -> None:
        """Flush the stream, unless it has failed."""
        if self.error is None:
            try:
                self._inner.flush()
            except BrokenPipeError:
                raise
            except OSError as exc:
                self._fail(exc)

    def isatty(self) -> bool:
        """Whether the stream is a terminal."""
        return self._inner.isatty()

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        # What the text left in the stream's buffer would hit again when the interpreter
        # flushes it on exit (a traceback there): Python's own advice for a closed stdout
        # is to point the descriptor at devnull.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._inner.fileno())
            os.close(devnull)
