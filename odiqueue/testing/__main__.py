"""``python -m odiqueue.testing``: serve the emulator until Ctrl-C (see ``--help``).

Example::

    python -m odiqueue.testing --port 8000 --workers 8 --job-seconds 20 --time-scale 0.05
"""

from __future__ import annotations

import sys

from odiqueue.testing._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
