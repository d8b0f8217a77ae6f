"""``odiqueue.testing``: a local emulator of the queue API, for your tests and ours.

The emulator is a real aiohttp.web server on 127.0.0.1 that speaks every documented (and
observed) reply shape, runs jobs on a configurable number of workers with seeded durations,
serves real decodable images from a second, CDN-like origin, injects seeded faults, and
counts everything it sees::

    from odiqueue import AsyncClient, instant_waits
    from odiqueue.testing import Emulator, EmulatorConfig

    async with Emulator(EmulatorConfig(workers=4)) as emu:
        async with AsyncClient("any-key", base_url=emu.base_url) as client:
            with instant_waits():
                result = await client.generate("a red apple")
        assert emu.stats.requests["submit"] == 1

From the shell: ``odiqueue emulator --port 8000`` (or ``python -m odiqueue.testing``).
:func:`instant_waits` makes odiqueue's retry and poll waits return at once.
"""

from __future__ import annotations

from odiqueue._backoff import instant_waits
from odiqueue.testing._cli import main
from odiqueue.testing._config import EmulatorConfig, Faults
from odiqueue.testing._server import Emulator
from odiqueue.testing._state import JobRecord, Stats

__all__ = ["Emulator", "EmulatorConfig", "Faults", "JobRecord", "Stats", "instant_waits", "main"]
