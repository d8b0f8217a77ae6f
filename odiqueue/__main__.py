"""``python -m odiqueue``: the command line."""

from __future__ import annotations

import sys

from odiqueue._cli import main

sys.exit(main())
