"""Reading the command line's input files: rows kept whole, and every clash found before
anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odiqueue._cli._products import InputError, ListOptions, read_items, read_products
from odiqueue._cli._sheets import ReadSettings
from odiqueue._naming import safe_component


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


# --- hostile input: each is a row error or a safe name ------------------------------------------


def test_jsonl_lone_surrogate_is_a_row_error(tmp_path: Path) -> None:
    """A ``\\ud800`` escape in a JSONL prompt is half a character: a row error, never sent."""
    source = tmp_path / "p.jsonl"
    source.write_text('{"prompt": "a mug"}\n{"prompt": "a \\ud800 lamp"}\n', "utf-8")
    (problem,) = problems_of(source)
    assert problem.startswith("row 2, column 'prompt': holds U+D800 at character 3")


def test_jsonl_number_of_5000_digits_is_a_row_error(tmp_path: Path) -> None:
    """A number too long for Python to read is a row error, not a traceback."""
    source = tmp_path / "p.jsonl"
    source.write_text('{"prompt": "a mug", "n": ' + "1" * 5000 + "}\n", "utf-8")
    (problem,) = problems_of(source)
    assert problem == "row 1: holds a number with too many digits to read"


def test_csv_number_of_5000_digits_is_named_briefly(tmp_path: Path) -> None:
    """A 5,000-digit ``n`` cell is a row error that does not print the 5,000 digits."""
    source = tmp_path / "p.csv"
    source.write_text("prompt,n\na mug," + "7" * 5000 + "\n", "utf-8")
    (problem,) = problems_of(source)
    assert problem.startswith("row 2, column 'n': '777")
    assert "is not a whole number" in problem
    assert len(problem) < 200


def test_nul_in_a_csv_cell_is_a_row_error(tmp_path: Path) -> None:
    """A NUL byte inside a cell is named by row and column instead of being sent."""
    source = tmp_path / "p.csv"
    source.write_bytes(b"id,name\nmug,a red\x00 mug\n")
    with pytest.raises(InputError) as caught:
        read_items(source, defaults={}, template="Photo of {name}")
    (problem,) = caught.value.problems
    assert (
        str(problem)
        == "row 2, column 'name': holds a NUL character (U+0000) at character 6: remove it"
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [("straße", "STRASSE"), ("ＡＢＣ", "abc"), ("Cafe\u0301", "CAFÉ")],
)
def test_names_equal_under_case_folding_or_nfkc_clash(
    tmp_path: Path, first: str, second: str
) -> None:
    """Names that fold to one (``straße``/``STRASSE``, ``ＡＢＣ``/``abc``) are one name."""
    source = tmp_path / "p.csv"
    source.write_text(f"prompt,filename\nred,{first}\nblue,{second}\n", "utf-8")
    (problem,) = problems_of(source)
    assert problem.startswith("row 3, column 'filename': its image would be saved as")
    assert "row 2's" in problem


@pytest.mark.parametrize("hidden", ["\u202e", "\u200b", "\u2066", "\ufeff", "\x85", "\u2028"])
def test_format_characters_never_reach_a_file_name(hidden: str) -> None:
    """U+202E (which shows ``x\\u202egnp.exe`` as ``xexe.png``) and other invisible
    format, control and separator characters are replaced in file names."""
    name = safe_component(f"x{hidden}gnp.exe")
    assert hidden not in name
    assert name == "x_gnp.exe"


def test_utf16_without_a_bom_is_named_with_the_flag(tmp_path: Path) -> None:
    """UTF-16 text without its byte order mark is recognised and the flag that reads it named."""
    source = tmp_path / "p.csv"
    source.write_bytes("prompt\na mug\n".encode("utf-16-le"))
    with pytest.raises(InputError, match="--encoding utf-16-le"):
        read_items(source, defaults={})
    rows = read_products(
        source, defaults={}, options=ListOptions(read=ReadSettings(encoding="utf-16-le"))
    ).items
    assert [item.request.prompt for _, item in rows] == ["a mug"]


@pytest.mark.parametrize(
    ("name", "settings", "said"),
    [
        ("p.csv", ReadSettings(sheet="Products"), "--sheet 'Products': p.csv is not an .xlsx"),
        ("p.jsonl", ReadSettings(delimiter=";"), "--delimiter: p.jsonl is not a .csv or .tsv"),
        ("p.xlsx", ReadSettings(encoding="cp1251"), "--encoding: p.xlsx is a workbook"),
    ],
)
def test_a_reading_flag_that_does_not_apply_is_refused(
    tmp_path: Path, name: str, settings: ReadSettings, said: str
) -> None:
    """``--sheet`` on a CSV, ``--delimiter`` on JSONL, ``--encoding`` on a workbook: said."""
    source = tmp_path / name
    source.write_text("prompt\n", "utf-8")
    with pytest.raises(InputError, match=said):
        read_products(source, defaults={}, options=ListOptions(read=settings))


def test_a_cell_over_128_kib_is_read(tmp_path: Path) -> None:
    """A product description larger than the csv module's default cell limit (an HTML body
    with an embedded image) is read, not a traceback."""
    source = tmp_path / "p.csv"
    source.write_text("id,prompt,Body (HTML)\na,a mug," + "x" * 300_000 + "\n", "utf-8")
    ((row, item),) = read_items(source, defaults={})
    assert (row, item.key, item.request.prompt) == (2, "a", "a mug")
