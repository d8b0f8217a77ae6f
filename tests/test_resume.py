"""What an earlier run's manifest decides about an item (pure rules, no requests)."""

from __future__ import annotations

from pathlib import Path

from odiqueue import JobFailedError, JobHandle
from odiqueue._batch._admit import decide, first_taken
from odiqueue._batch._records import KeyState

HANDLE = JobHandle(
    request_id="mmsu_1",
    status_url="https://a/s",
    response_url="https://a/r",
    cancel_url="https://a/c",
)


def test_new_item_is_submitted(tmp_path: Path) -> None:
    """An item no run has recorded is paid for, and is not "resumed"."""
    decision = decide("k", None, tmp_path)
    assert (decision.verdict, decision.resumed, decision.attempts) == ("submit", False, 0)


def test_saved_item_with_its_files_is_skipped(tmp_path: Path) -> None:
    """Saved and still on disk at the recorded size: skipped; otherwise fetched by id."""
    (tmp_path / "k_0.png").write_bytes(b"12345")
    files = ({"name": "k_0.png", "size": 5},)
    saved = KeyState("saved", attempt=1, handle=HANDLE, files=files)
    assert decide("k", saved, tmp_path).verdict == "skip"
    assert decide("k", saved, tmp_path).files == ("k_0.png",)
    (tmp_path / "k_0.png").write_bytes(b"123")  # changed since: not trusted
    refetch = decide("k", saved, tmp_path)
    assert (refetch.verdict, refetch.handle) == ("attach", HANDLE)


def test_submitted_item_is_followed_not_paid_again(tmp_path: Path) -> None:
    """A job an earlier run submitted is followed by id, keeping its attempt count."""
    decision = decide("k", KeyState("submitted", attempt=2, handle=HANDLE), tmp_path)
    assert (decision.verdict, decision.handle, decision.attempts) == ("attach", HANDLE, 2)


def test_unanswered_submit_is_uncertain(tmp_path: Path) -> None:
    """An intent with no submitted line: submitted again, and flagged uncertain."""
    decision = decide("k", KeyState("intent", attempt=1), tmp_path)
    assert (decision.verdict, decision.uncertain, decision.resumed) == ("submit", True, True)


def test_failures_permanent_or_not(tmp_path: Path) -> None:
    """A permanent failure is reported again without a request; a transient one retried."""
    permanent = KeyState("failed", attempt=1, error="blocked", error_type="CONTENT_BLOCKED")
    permanent.permanent = True
    decision = decide("k", permanent, tmp_path)
    assert decision.verdict == "fail"
    assert isinstance(decision.error, JobFailedError)
    assert decision.error.error_type == "CONTENT_BLOCKED"
    transient = KeyState("failed", attempt=1, error="timeout", error_type="INFERENCE_TIMEOUT")
    assert decide("k", transient, tmp_path).verdict == "submit"


def test_taken_names_are_refused(tmp_path: Path) -> None:
    """The first existing file among an item's names is the one the error names."""
    free, taken = tmp_path / "a.png", tmp_path / "b.png"
    taken.write_bytes(b"x")
    assert first_taken([free]) is None
    error = first_taken([free, taken])
    assert error is not None
    assert "b.png" in str(error)
