"""The public surface is exactly ``__all__``."""

from __future__ import annotations
import __future__

from types import ModuleType

import odiqueue
import odiqueue.testing


def test_all_matches_public_names() -> None:
    """Every public name is in __all__, sorted, and every __all__ entry exists."""
    for module in (odiqueue, odiqueue.testing):
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, (ModuleType, __future__._Feature))
        }
        assert set(module.__all__) == public, module.__name__
        assert list(module.__all__) == sorted(module.__all__)


def test_public_names_have_docstrings() -> None:
    """Every exported name documents itself."""
    for module in (odiqueue, odiqueue.testing):
        for name in module.__all__:
            assert getattr(module, name).__doc__, name
