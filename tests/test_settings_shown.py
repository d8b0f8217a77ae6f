"""Settings refused before anything is sent: the message says what is wrong, and shows no
secret (a base URL's password or query, the key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from odiqueue import ConfigurationError
from odiqueue._account import resolve_api_key, resolve_base_url
from tests.helpers import odiqueue

SECRET = "hunter2-sk-0123456789"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://alice:{SECRET}@api.example.com/model", "https://***:***@api.example.com"),
        (f"https://{SECRET}@api.example.com/model", "https://***@api.example.com"),
        (f"https://api.example.com/model?api_key={SECRET}&v=2", "?api_key=***&v=***"),
        (f"https://api.example.com/model?{SECRET}", "model?***"),
        (f"https://alice:{SECRET}@api.example.com:notaport/model", "***:***@"),
    ],
)
def test_base_url_refused_without_its_secrets(url: str, shown: str) -> None:
    """A base URL with credentials or a query is refused, shown with those parts masked."""
    with pytest.raises(ConfigurationError) as caught:
        resolve_base_url(url, None)
    message = str(caught.value)
    assert SECRET not in message
    assert "alice" not in message
    assert shown in message


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("sk-abc\tdef0123456789", "a tab"),
        ("sk-abc def0123456789", "a space"),
        ("sk-abc\x07def0123456789", "a control character"),
    ],
)
def test_a_key_with_a_blank_inside_says_what_is_wrong(key: str, says: str) -> None:
    """A key with a tab, space or control character inside names that character and where."""
    with pytest.raises(ConfigurationError) as caught:
        resolve_api_key(key)
    message = str(caught.value)
    assert says in message
    assert "position 7" in message
    assert "def0123456789" not in message


@pytest.mark.anyio
async def test_command_line_names_the_bad_key_and_hides_the_url_password(tmp_path: Path) -> None:
    """The command line says the key holds a tab (not "no API key"), and never prints a base
    URL's password; exit 2, nothing sent."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\n")
    code, _, err = await odiqueue(
        "generate", source, "--out", tmp_path / "o", key="sk-abc\tdef0123456789"
    )
    assert code == 2
    assert "tab" in err
    assert "no API key" not in err
    code, _, err = await odiqueue(
        "generate",
        source,
        "--out",
        tmp_path / "o",
        "--base-url",
        f"https://alice:{SECRET}@api.example.com/model",
    )
    assert code == 2
    assert "credentials" in err
    assert SECRET not in err
