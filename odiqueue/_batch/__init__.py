"""The batch engine: many jobs at once, through the client's public surface only.

Items in, then for each: admit (identity, the earlier run's record, free file names:
``_items``, ``_admit``), submit under limits (``_throttle``), poll on one shared plan
(``_poll``, ``_plan``), save each image (``_save``), record every step (``_manifest``),
cancel what is left on exit (``_jobs``) or stop gracefully (``_stop``), and count it all
(``_progress``). ``_engine``
holds the :class:`Batch` that wires them together. Its settings, :class:`BatchOptions`,
are core settings (``odiqueue._config``), so the client can spell them out.
"""

from __future__ import annotations

from odiqueue._batch._engine import Batch
from odiqueue._batch._progress import Progress
from odiqueue._batch._stop import DEFAULT_STOP_GRACE, StopReport

__all__ = ["DEFAULT_STOP_GRACE", "Batch", "Progress", "StopReport"]
