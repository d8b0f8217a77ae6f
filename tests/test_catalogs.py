"""Product lists as shops keep them, through ``odiqueue generate`` against the emulator:
delimiters, encodings, .xlsx, columns as written, ids and names, skipped rows, Shopify and
WooCommerce exports. Every file is built by the test itself."""

from __future__ import annotations

import csv
import datetime
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import openpyxl
import pytest

from odiqueue import AsyncClient, BatchItem, ImageRequest
from odiqueue.testing import Emulator, EmulatorConfig
from tests.helpers import image_files
from tests.test_cli import odiqueue

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
RUSSIAN = [
    ["Артикул", "Название", "Цвет", "Описание"],
    ["KR-101", "кружка", "васильковый", "Кружка 300 мл, матовая глазурь"],
    ["KR-102", "чайник", "молочный", "Чайник на 0,8 л, ситечко из стали"],
]
RUSSIAN_TEMPLATE = "Фото: {название}, цвет {Цвет}"
RUSSIAN_PROMPTS = ["Фото: кружка, цвет васильковый", "Фото: чайник, цвет молочный"]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(workers=4, job_seconds=0.05)) as running:
        yield running


def text_file(path: Path, rows: list[list[str]], *, delimiter: str, encoding: str) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def prompts(emu: Emulator) -> list[str]:
    return sorted(job.params["prompt"] for job in emu.stats.jobs.values())


def sent(emu: Emulator) -> int:
    return sum(emu.stats.requests.values())


async def generate(emu: Emulator, source: Path, out: Path, *args: str) -> tuple[int, str, str]:
    return await odiqueue("generate", source, "--out", out, "--base-url", emu.base_url, *args)


# --- delimiters and encodings ----------------------------------------------------------------


async def test_semicolon_cp1251_list_names_the_encoding_then_reads_with_it(
    emu: Emulator, tmp_path: Path
) -> None:
    """A ``;`` list saved in cp1251 is refused with the position, the likely encoding and
    the flag; with ``--encoding cp1251`` its rows go out as written, named by their id."""
    source = text_file(tmp_path / "ru.csv", RUSSIAN, delimiter=";", encoding="cp1251")
    out = tmp_path / "out"
    code, _, err = await generate(emu, source, out, "--template", RUSSIAN_TEMPLATE)
    assert code == 2
    assert "not UTF-8 text (line 1, column 1" in err
    assert "--encoding cp1251" in err
    assert len(err.strip().splitlines()) == 1
    assert sent(emu) == 0
    code, _, err = await generate(
        emu,
        source,
        out,
        "--template",
        RUSSIAN_TEMPLATE,
        "--encoding",
        "cp1251",
        "--id-column",
        "артикул",
    )
    assert code == 0, err
    assert prompts(emu) == RUSSIAN_PROMPTS
    assert [p.name for p in image_files(out)] == ["KR-101.png", "KR-102.png"]


async def test_wrong_delimiter_is_said_once_with_the_fix(emu: Emulator, tmp_path: Path) -> None:
    """A ``;`` file read with ``--delimiter ,`` gets one line naming the delimiter that fits,
    not a line per row; without the flag the delimiter is found and the rows go out."""
    rows = RUSSIAN + [[f"X-{i}", f"товар {i}", "серый", "Описание, с запятой"] for i in range(30)]
    source = text_file(tmp_path / "ru.csv", rows, delimiter=";", encoding="utf-8")
    code, _, err = await generate(
        emu, source, tmp_path / "o", "--template", RUSSIAN_TEMPLATE, "--delimiter", ","
    )
    assert code == 2
    assert err.strip().splitlines() == [
        f"odiqueue generate: {source}: every row has 4 cells separated by ';', but the header "
        "was given as ',': pass --delimiter ';'"
    ]
    assert sent(emu) == 0
    code, _, err = await generate(
        emu, source, tmp_path / "o", "--template", RUSSIAN_TEMPLATE, "--dry-run"
    )
    assert code == 0, err
    assert "separated by ';'" in err


@pytest.mark.parametrize(
    ("name", "delimiter", "encoding"),
    [
        ("utf16.csv", ",", "utf-16"),  # with its BOM, as Python and Excel write it
        ("bom.csv", "|", "utf-8-sig"),
        ("tabs.tsv", "\t", "utf-8"),
    ],
)
async def test_utf16_bom_and_tab_files_read_as_they_are(
    emu: Emulator, tmp_path: Path, name: str, delimiter: str, encoding: str
) -> None:
    """UTF-16 with a BOM, UTF-8 with a BOM and a ``|`` delimiter, and a tab-separated
    .tsv are read without any flag."""
    rows = [["Артикул", "Название", "Цвет"], ["KR-101", "кружка", "васильковый, матовый"]]
    source = text_file(tmp_path / name, rows, delimiter=delimiter, encoding=encoding)
    code, _, err = await generate(emu, source, tmp_path / "o", "--template", "{Название} {цвет}")
    assert code == 0, err
    assert prompts(emu) == ["кружка васильковый, матовый"]


async def test_encoding_flag_is_checked(tmp_path: Path) -> None:
    """An encoding Python does not know is refused by ``--encoding``, before reading."""
    source = text_file(tmp_path / "p.csv", [["prompt"], ["a"]], delimiter=",", encoding="utf-8")
    code, _, err = await odiqueue(
        "generate", source, "--out", tmp_path / "o", "--encoding", "klingon", "--emulator"
    )
    assert code == 2
    assert "--encoding" in err
    assert "klingon" in err


# --- .xlsx -------------------------------------------------------------------------------------


def workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Notes"
    sheet.append(["nothing to read here"])
    products = book.create_sheet("Products")
    products.append(["Spring catalogue 2026"])
    products.append([])
    products.append(["SKU", "Product Name", "Main Colour", "Price", "Added", "Pieces"])
    products.append(["MUG-1", "mug", "sage", 19.9, datetime.date(2026, 3, 1), 2.0])
    products.append([None, None, None, None, None, None])
    products.append([1042, "lamp", "brass", 120, datetime.datetime(2026, 3, 2, 10, 30), 1])
    products["D4"].number_format = "0.00"
    book.save(path)
    return path


async def test_xlsx_sheet_is_read_as_it_shows(emu: Emulator, tmp_path: Path) -> None:
    """``--sheet`` picks the sheet; the header is found below a title row; numbers read
    without ``.0`` and with the cell's decimals, dates as dates; empty rows are skipped;
    the ``SKU`` column is the id."""
    source = workbook(tmp_path / "catalogue.xlsx")
    template = "{Product Name} in {main colour}, {Pieces} pieces, {Price} EUR, {Added}"
    code, _, err = await generate(
        emu, source, tmp_path / "o", "--sheet", "products", "--template", template
    )
    assert code == 0, err
    assert prompts(emu) == [
        "lamp in brass, 1 pieces, 120 EUR, 2026-03-02 10:30",
        "mug in sage, 2 pieces, 19.90 EUR, 2026-03-01",
    ]
    assert [p.name for p in image_files(tmp_path / "o")] == ["1042.png", "MUG-1.png"]
    assert "row 3" in err  # the note on where the header was found


async def test_xlsx_unknown_sheet_lists_the_sheets(emu: Emulator, tmp_path: Path) -> None:
    """An unknown ``--sheet`` is one line listing the workbook's sheets; nothing is sent."""
    source = workbook(tmp_path / "catalogue.xlsx")
    code, _, err = await generate(emu, source, tmp_path / "o", "--sheet", "Prices")
    assert code == 2
    assert "'Notes', 'Products'" in err
    assert sent(emu) == 0


def _no_header_sheet(path: Path) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([1, 2.5, 3])
    sheet.append([4, 5, 6])
    book.save(path)
    return path.read_bytes()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("products.csv", "prompt\na mug\n")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
        ("photo.jpg.csv", b"\xff\xd8\xff\xe0" + bytes(64), "a JPEG image"),
        ("bundle.csv", _zip(), "a zip archive"),
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\r\n\r\n  \n", "empty"),
        ("text.xlsx", b"prompt\na mug\n", "not an .xlsx workbook"),
        ("old.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "old Excel .xls"),
        ("numbers.xlsx", None, "no header row"),
        ("numbers.csv", b"1,2,3\n4,5,6\n", "holds numbers, not column names"),
    ],
)
async def test_a_file_that_is_not_a_product_list_gets_one_line(
    emu: Emulator, tmp_path: Path, name: str, content: bytes | None, said: str
) -> None:
    """An image, an archive, an empty file or a sheet without a header: one clear line,
    exit 2, nothing sent."""
    source = tmp_path / name
    if content is None:
        _no_header_sheet(source)
    else:
        source.write_bytes(content)
    code, _, err = await generate(emu, source, tmp_path / "o", "--template", "a {x}")
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert said in err
    assert "Traceback" not in err
    assert sent(emu) == 0


# --- columns as written, ids and names -------------------------------------------------------


def plain(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    return text_file(path, [header, *rows], delimiter=",", encoding="utf-8")


async def test_template_fields_match_columns_as_written(emu: Emulator, tmp_path: Path) -> None:
    """``{Main Colour}``, `` {main  colour} `` and ``{Body (HTML)|text}`` are columns as
    written; the HTML cell goes in as plain text."""
    source = plain(
        tmp_path / "p.csv",
        ["sku", " Main Colour ", "Body (HTML)"],
        [["A-1", "sage", "<p>Soft <b>linen</b> &amp; cotton</p><ul><li>Washable</li></ul>"]],
    )
    template = "{Main Colour} / { main  colour } / {Body (HTML)|text}"
    code, _, err = await generate(emu, source, tmp_path / "o", "--template", template)
    assert code == 0, err
    assert prompts(emu) == ["sage / sage / Soft linen & cotton. Washable"]


async def test_unknown_field_is_reported_once_with_the_columns(
    emu: Emulator, tmp_path: Path
) -> None:
    """A misspelt field is one line naming the real columns and the nearest one."""
    rows = [[f"A-{i}", "sage", "mug"] for i in range(50)]
    source = plain(tmp_path / "p.csv", ["SKU", "Main Colour", "Product Name"], rows)
    code, _, err = await generate(
        emu, source, tmp_path / "o", "--template", "A {Main Color} {Product Name}"
    )
    assert code == 2
    assert err.strip().splitlines() == [
        "odiqueue generate: --template: 'Main Color' is not a column of p.csv (did you mean "
        "'Main Colour'?); its columns are: SKU, Main Colour, Product Name"
    ]
    assert sent(emu) == 0


@pytest.mark.parametrize("column", ["id", "SKU", "Handle"])
async def test_id_sku_or_handle_column_is_the_id(
    emu: Emulator, tmp_path: Path, column: str
) -> None:
    """A column called id, sku or handle (any case) names the rows' files; a row asking
    for one image has no ``_0``, one asking for two gets ``_0`` and ``_1``."""
    source = plain(tmp_path / "p.csv", [column, "prompt", "n"], [["mug-1", "a mug", ""]])
    source.write_text(source.read_text() + "lamp-2,a lamp,2\n")
    code, _, err = await generate(emu, source, tmp_path / "o")
    assert code == 0, err
    names = [p.name for p in image_files(tmp_path / "o")]
    assert names == ["lamp-2_0.png", "lamp-2_1.png", "mug-1.png"]


async def test_id_column_and_name_template(emu: Emulator, tmp_path: Path) -> None:
    """``--id-column`` picks the id (an empty one is a row error) and ``--name-template``
    names files from columns, made safe as any name."""
    header = ["Code", "Handle", "Colour", "prompt"]
    source = plain(tmp_path / "p.csv", header, [["c1", "tee", "Red/Blue", "a tee"]])
    code, stdout, err = await generate(
        emu,
        source,
        tmp_path / "o",
        "--id-column",
        "code",
        "--name-template",
        "{Handle}-{Colour}",
        "--dry-run",
    )
    assert code == 0, err
    assert '"key": "c1", "name": "tee-Red/Blue", "files": ["tee-Red_Blue.png"]' in stdout
    code, _, err = await generate(
        emu, source, tmp_path / "o", "--id-column", "code", "--name-template", "{Handle}-{Colour}"
    )
    assert code == 0, err
    assert [p.name for p in image_files(tmp_path / "o")] == ["tee-Red_Blue.png"]
    assert (tmp_path / "o" / "manifest.jsonl").read_text().count('"c1"') >= 1
    bad = plain(tmp_path / "q.csv", header, [["", "tee", "Red", "a tee"]])
    code, _, err = await generate(emu, bad, tmp_path / "o2", "--id-column", "Code")
    assert code == 2
    assert "row 2, column 'Code': empty" in err
    code, _, err = await generate(emu, bad, tmp_path / "o2", "--id-column", "Cod")
    assert code == 2
    assert "--id-column: 'Cod' is not a column of q.csv (did you mean 'Code'?)" in err


async def test_a_folder_an_earlier_version_filled_resumes_without_paying(
    emu: Emulator, tmp_path: Path
) -> None:
    """Images an earlier version saved as ``key_0.png`` are found by the manifest's names:
    the rerun sends nothing and names nothing anew."""
    out = tmp_path / "o"
    async with AsyncClient("sk-old-run-key-1234", base_url=emu.base_url) as client:
        async with client.generate_many(
            [BatchItem(ImageRequest("a mug"), key="mug-1")], out
        ) as outcomes:
            assert [o.ok async for o in outcomes] == [True]
    jobs = len(emu.stats.jobs)
    source = plain(tmp_path / "p.csv", ["id", "prompt"], [["mug-1", "a mug"]])
    code, _, err = await generate(emu, source, out)
    assert code == 0, err
    assert len(emu.stats.jobs) == jobs
    assert [p.name for p in image_files(out)] == ["mug-1_0.png"]


# --- skipping invalid rows ---------------------------------------------------------------------


async def test_skip_invalid_sends_the_valid_rows_and_lists_the_others(
    emu: Emulator, tmp_path: Path
) -> None:
    """Without ``--skip-invalid`` nothing is sent while a row is bad; with it the valid
    rows go out, and each skipped one is in the summary and failed.csv with its row,
    column and reason; exit 1."""
    source = plain(
        tmp_path / "p.csv",
        ["id", "prompt", "size"],
        [["a", "a mug", ""], ["b", "a lamp", "huge"], ["c", "", ""], ["d", "a cup", "auto"]],
    )
    out = tmp_path / "o"
    code, _, err = await generate(emu, source, out)
    assert code == 2
    assert "--skip-invalid" in err
    assert sent(emu) == 0
    code, stdout, err = await generate(emu, source, out, "--skip-invalid")
    assert code == 1, err
    assert prompts(emu) == ["a cup", "a mug"]
    said = stdout + err
    assert "2 invalid row(s) skipped" in said
    assert "row 3, column 'size'" in said
    assert "row 4, column 'prompt': empty" in said
    with (out / "failed.csv").open(newline="", encoding="utf-8") as f:
        failed = list(csv.DictReader(f))
    assert [(r["row"], r["column"], r["error_type"]) for r in failed] == [
        ("3", "size", "INVALID_ROW"),
        ("4", "prompt", "INVALID_ROW"),
    ]
    assert "huge" in failed[0]["error"]


async def test_skip_invalid_with_no_valid_row_sends_nothing(emu: Emulator, tmp_path: Path) -> None:
    """When every row is bad, ``--skip-invalid`` has nothing to send: exit 2, all listed."""
    source = plain(tmp_path / "p.csv", ["prompt", "n"], [["a", "x"], ["", "2"]])
    code, _, err = await generate(emu, source, tmp_path / "o", "--skip-invalid")
    assert code == 2
    assert "no valid rows" in err
    assert "row 2, column 'n'" in err
    assert "row 3, column 'prompt'" in err
    assert sent(emu) == 0


# --- Shopify and WooCommerce -------------------------------------------------------------------

SHOPIFY_HEADER = [
    "Handle",
    "Title",
    "Body (HTML)",
    "Vendor",
    "Type",
    "Tags",
    "Published",
    "Option1 Name",
    "Option1 Value",
    "Option2 Name",
    "Option2 Value",
    "Variant SKU",
    "Variant Price",
    "Image Src",
    "Image Position",
    "Variant Image",
    "Status",
]


def shopify(path: Path) -> Path:
    def row(**cells: str) -> list[str]:
        return [
            cells.get(h.replace(" ", "_").replace("(", "").replace(")", ""), "")
            for h in SHOPIFY_HEADER
        ]

    rows = [
        row(
            Handle="kite",
            Title="Box Kite",
            Body_HTML="<p>A <em>cotton</em> box kite.</p>",
            Vendor="Windworks",
            Option1_Name="Color",
            Option1_Value="Red",
            Option2_Name="Size",
            Option2_Value="S",
            Variant_SKU="K-R-S",
            Variant_Price="20.00",
            Image_Src="https://cdn.test/kite-1.jpg",
            Image_Position="1",
            Variant_Image="https://cdn.test/kite-red.jpg",
            Status="active",
        ),
        row(
            Handle="kite",
            Option1_Value="Blue",
            Option2_Value="L",
            Variant_SKU="K-B-L",
            Variant_Price="24.00",
            Image_Src="https://cdn.test/kite-2.jpg",
            Image_Position="2",
            Variant_Image="https://cdn.test/kite-blue.jpg",
        ),
        row(Handle="kite", Image_Src="https://cdn.test/kite-3.jpg", Image_Position="3"),
        row(
            Handle="spool",
            Title="Line Spool",
            Body_HTML="Waxed line &amp; a wooden spool",
            Vendor="Windworks",
            Option1_Name="Title",
            Option1_Value="Default Title",
            Variant_SKU="SP-1",
            Variant_Price="9.00",
            Image_Src="https://cdn.test/spool.jpg",
            Image_Position="1",
            Status="active",
        ),
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([SHOPIFY_HEADER, *rows])
    return path


async def test_shopify_export_works_as_exported(emu: Emulator, tmp_path: Path) -> None:
    """Variant rows inherit their product's fields, each variant's id is its Handle with
    its options (none for ``Default Title``), a row that only adds a photo is the
    product's, and the photo columns are plain columns."""
    source = shopify(tmp_path / "products_export_1.csv")
    template = "{Title} by {Vendor}, {Option1 Value}: {Body (HTML)|text} [{Variant Image}]"
    code, stdout, err = await generate(
        emu, source, tmp_path / "o1", "--template", template, "--skip-invalid"
    )
    assert code == 1, err  # the spool has no Variant Image: skipped, and said
    assert "row 5, column 'Variant Image'" in stdout
    code, _, err = await generate(
        emu, source, tmp_path / "o", "--template", "{Title}, {Option1 Value}: {Body (HTML)|text}"
    )
    assert code == 0, err
    assert "Shopify product export" in err
    assert "1 row(s) only add a photo" in err
    assert prompts(emu) == [
        "Box Kite by Windworks, Blue: A cotton box kite. [https://cdn.test/kite-blue.jpg]",
        "Box Kite by Windworks, Red: A cotton box kite. [https://cdn.test/kite-red.jpg]",
        "Box Kite, Blue: A cotton box kite.",
        "Box Kite, Red: A cotton box kite.",
        "Line Spool, Default Title: Waxed line & a wooden spool",
    ]
    assert [p.name for p in image_files(tmp_path / "o")] == [
        "kite-Blue-L.png",
        "kite-Red-S.png",
        "spool.png",
    ]


async def test_fill_down_can_be_turned_off_or_named(emu: Emulator, tmp_path: Path) -> None:
    """``--fill-down none`` leaves a variant row's Title empty (a row error naming it);
    ``--fill-down`` on a plain file fills the named column from the row above."""
    source = shopify(tmp_path / "export.csv")
    code, _, err = await generate(
        emu, source, tmp_path / "o", "--template", "{Title}", "--fill-down", "none", "--dry-run"
    )
    assert code == 2
    assert "row 3, column 'Title': the template needs it, but it is empty" in err
    flat = plain(tmp_path / "p.csv", ["id", "Product", "Colour"], [["1", "mug", "red"]])
    flat.write_text(flat.read_text() + "2,,blue\n")
    code, _, err = await generate(
        emu, flat, tmp_path / "o2", "--template", "{Product} {Colour}", "--fill-down", "product"
    )
    assert code == 0, err
    assert prompts(emu) == ["mug blue", "mug red"]


async def test_woocommerce_export_works_as_exported(emu: Emulator, tmp_path: Path) -> None:
    """A WooCommerce export's ``SKU`` is the id (``ID`` where SKU is empty), its ``Images``
    cell lists URLs (``|first`` takes one), its description is HTML."""
    header = ["ID", "Type", "SKU", "Name", "Published", "Description", "Regular price", "Images"]
    rows = [
        [
            "11",
            "simple",
            "WC-MUG",
            "Sage Mug",
            "1",
            "<p>Stoneware mug</p>",
            "18",
            "https://cdn.test/mug.jpg, https://cdn.test/mug-2.jpg",
        ],
        ["12", "variation", "", "Tee - Red", "1", "Cotton tee", "25", "https://cdn.test/tee.jpg"],
    ]
    source = plain(tmp_path / "wc-product-export.csv", header, rows)
    code, _, err = await generate(
        emu, source, tmp_path / "o", "--template", "{Name}: {Description|text} ({Images|first})"
    )
    assert code == 0, err
    assert "WooCommerce product export" in err
    assert prompts(emu) == [
        "Sage Mug: Stoneware mug (https://cdn.test/mug.jpg)",
        "Tee - Red: Cotton tee (https://cdn.test/tee.jpg)",
    ]
    assert [p.name for p in image_files(tmp_path / "o")] == ["12.png", "WC-MUG.png"]


# --- the examples ------------------------------------------------------------------------------

EXAMPLES = {
    "shopify-products.csv": [
        "--template",
        "Studio product photo of the {Title} by {Vendor}, {Option1 Value}: {Body (HTML)|text}",
    ],
    "products-cp1251.csv": [
        "--encoding",
        "cp1251",
        "--id-column",
        "Артикул",
        "--template",
        "Студийное фото товара: {Название}, цвет {Цвет}, материал {Материал}",
    ],
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_examples_run_with_their_readme_command(tmp_path: Path, name: str) -> None:
    """Each example list runs with the command the README gives, on the bundled emulator."""
    out = tmp_path / "out"
    code, stdout, err = await odiqueue(
        "generate",
        ROOT / "examples" / name,
        *EXAMPLES[name],
        "--out",
        out,
        "--emulator",
        key=None,
    )
    assert code == 0, err
    assert len(image_files(out)) >= 6
    assert "saved" in stdout


# --- hostile input -----------------------------------------------------------------------------


async def test_dry_run_of_a_lone_surrogate_is_a_row_error(emu: Emulator, tmp_path: Path) -> None:
    """``--dry-run`` over a JSONL prompt holding ``\\udc80`` names the row (it crashed), and
    a real run sends nothing."""
    source = tmp_path / "p.jsonl"
    source.write_text('{"prompt": "a mug"}\n{"prompt": "a \\udc80 lamp"}\n', "utf-8")
    for extra in (["--dry-run"], []):
        code, _, err = await generate(emu, source, tmp_path / "o", *extra)
        assert code == 2
        assert "row 2, column 'prompt': holds U+DC80" in err
        assert "Traceback" not in err
    assert sent(emu) == 0


async def test_library_refuses_names_equal_once_folded(tmp_path: Path) -> None:
    """``generate_many`` treats ``straße`` and ``STRASSE`` as one file name: the second
    item is refused before it is paid for."""
    items = [
        BatchItem(ImageRequest("a street sign"), key="a", name="straße"),
        BatchItem(ImageRequest("another sign"), key="b", name="STRASSE"),
    ]
    async with Emulator(EmulatorConfig(job_seconds=0.01)) as emu:
        async with AsyncClient("sk-fold-test-key-1234", base_url=emu.base_url) as client:
            async with client.generate_many(items, tmp_path) as outcomes:
                results = {o.key: o async for o in outcomes}
        assert len(emu.stats.jobs) == 1
    assert results["a"].ok
    assert "straße" in str(results["a"].paths[0])
    assert not results["b"].ok
    assert "STRASSE.png" in str(results["b"].error)


async def test_results_table_gives_back_a_cp1251_list_as_written(
    emu: Emulator, tmp_path: Path
) -> None:
    """The folder's results.csv gives back each row of a ``;`` cp1251 list with its cells as
    written: the input is read again with the run's own --encoding."""
    source = text_file(tmp_path / "ru.csv", RUSSIAN, delimiter=";", encoding="cp1251")
    out = tmp_path / "out"
    code, _, err = await generate(
        emu, source, out, "--template", RUSSIAN_TEMPLATE, "--encoding", "cp1251"
    )
    assert code == 0, err
    with (out / "results.csv").open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [(r["Артикул"], r["Название"], r["status"]) for r in rows] == [
        ("KR-101", "кружка", "saved"),
        ("KR-102", "чайник", "saved"),
    ]


async def test_a_size_column_of_the_product_is_said_once(emu: Emulator, tmp_path: Path) -> None:
    """A shop's ``Size`` column (S, M, L) is not an image size: one line says so and how to
    rename it, instead of a line per row; nothing is sent."""
    rows = [[f"T-{i}", "tee", size] for i, size in enumerate(["S", "M", "L"] * 10)]
    source = plain(tmp_path / "p.csv", ["SKU", "Product", "Size"], rows)
    code, _, err = await generate(emu, source, tmp_path / "o", "--template", "{Product} {Size}")
    assert code == 2
    assert err.strip().splitlines() == [
        "odiqueue generate: p.csv: column 'Size' sets each row's image size (as --size does), "
        "but none of its values is one (e.g. 'S'): if it is the product's, rename the column "
        "(e.g. 'Product Size') and use it in --template as {Product Size}"
    ]
    assert sent(emu) == 0
