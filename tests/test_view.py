"""What the command line prints about outcomes: text as it is, never read as markup."""

from __future__ import annotations

import io

from odiqueue import ImageRequest, OdiqueueError, Outcome
from odiqueue._cli._bar import BarView


def test_brackets_in_keys_and_errors_print_as_written() -> None:
    """A row id or server message holding ``[/]`` or ``[bold]`` is printed literally
    (rich markup would raise on the first and swallow the second)."""
    out = io.StringIO()
    view = BarView(2, out)
    outcome = Outcome(
        key="mug[/]",
        index=0,
        request=ImageRequest("a mug"),
        error=OdiqueueError("blocked: [bold]nudity[/bold]"),
    )
    view.outcome(outcome, row=2)
    view.message("[/] done")
    text = out.getvalue()
    assert "row 2 (mug[/]) failed:" in text
    assert "blocked: [bold]nudity[/bold]" in text
    assert "[/] done" in text
