"""Reading the command line's input files: rows kept whole, and every clash found before
anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odiqueue._cli._products import InputError, read_items


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        read_items(path, defaults={})
    return [str(problem) for problem in caught.value.problems]


def test_quoted_csv_cell_keeps_its_line_break_and_rows_keep_their_numbers(tmp_path: Path) -> None:
    """A quoted cell spanning two lines is one prompt, sent as written; a row is numbered
    by the line it starts on, and a U+2028 inside a cell splits nothing."""
    source = tmp_path / "p.csv"
    source.write_text('prompt\n"line one\nline two"\nsecond\u2028half\n\nthird\n', "utf-8")
    rows = [(number, item.request.prompt) for number, item in read_items(source, defaults={})]
    assert rows == [(2, "line one\nline two"), (4, "second\u2028half"), (6, "third")]


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_line_files_split_at_line_ends_only(tmp_path: Path, suffix: str) -> None:
    """Form feeds and U+2028/U+0085 in a prompt are characters of that prompt, not line ends."""
    prompts = ["a mug\u2028on oak", "a lamp\x0cin blue", "a cup\x85of tea"]
    if suffix == ".txt":
        text = "\r\n".join(prompts) + "\r\n"
    else:
        # As json.dumps writes them: U+2028 and U+0085 raw, the form feed escaped.
        text = "\n".join(json.dumps({"prompt": p}, ensure_ascii=False) for p in prompts) + "\n"
    source = tmp_path / f"p{suffix}"
    source.write_text(text, "utf-8", newline="")
    rows = [(number, item.request.prompt) for number, item in read_items(source, defaults={})]
    assert rows == list(enumerate(prompts, 1))


def test_file_names_that_clash_once_cleaned_are_refused(tmp_path: Path) -> None:
    """Two rows whose images would get one file name (after cleaning, with the extension,
    ignoring case) are both named, before anything is sent."""
    source = tmp_path / "p.csv"
    source.write_text(
        "prompt,filename\nred,a\nblue,A.png\ngreen,x/y\nyellow,x_y\nwhite,z\n", "utf-8"
    )
    problems = problems_of(source)
    assert len(problems) == 2
    assert "row 3" in problems[0]
    assert "'a.png'" in problems[0]
    assert "row 2" in problems[0]
    assert "row 5" in problems[1]
    assert "'x_y.png'" in problems[1]


def test_ids_that_clash_once_cleaned_are_refused(tmp_path: Path) -> None:
    """Ids name the files too: ``cup/1`` and ``cup:1`` would both be saved as ``cup_1``."""
    source = tmp_path / "p.csv"
    source.write_text("id,prompt\ncup/1,red\ncup:1,blue\n", "utf-8")
    (problem,) = problems_of(source)
    assert "row 3, column 'id'" in problem
    assert "cup_1.png" in problem
