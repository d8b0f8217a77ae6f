"""``python -m benchmarks.product_lists``: how long reading and checking a product list takes.

Everything is read and checked before anything is sent, so this time is spent before the
first submit. Builds its own files in a temporary folder (a ``;`` cp1251 CSV, a Shopify
export, an .xlsx) and prints the best of three reads of each, in rows per second.
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
import time
from pathlib import Path

import openpyxl

from odiqueue._cli._products import ListOptions, read_products
from odiqueue._cli._sheets import ReadSettings

ROWS = 20_000


def _cp1251(folder: Path) -> tuple[Path, ListOptions]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Артикул", "Название", "Цвет", "Описание"])
    for i in range(ROWS):
        writer.writerow([f"KR-{i}", f"кружка {i}", "синий", "Керамика, 300 мл, матовая"])
    path = folder / "ru.csv"
    path.write_bytes(buffer.getvalue().encode("cp1251"))
    options = ListOptions(
        template="Фото: {Название}, {Цвет}. {Описание}",
        id_column="Артикул",
        read=ReadSettings(encoding="cp1251"),
    )
    return path, options


def _shopify(folder: Path) -> tuple[Path, ListOptions]:
    header = ["Handle", "Title", "Body (HTML)", "Vendor", "Option1 Name", "Option1 Value"]
    header += ["Variant SKU", "Variant Price", "Image Src"]
    path = folder / "shopify.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(ROWS // 4):
            body = f"<p>Product <b>{i}</b> in cotton.</p><ul><li>Washable</li></ul>"
            writer.writerow([f"p-{i}", f"Tee {i}", body, "V", "Color", "Red", f"S{i}R", "9", ""])
            for colour in ("Blue", "Green"):
                writer.writerow([f"p-{i}", "", "", "", "", colour, f"S{i}{colour}", "9", ""])
            writer.writerow([f"p-{i}", "", "", "", "", "", "", "", "https://cdn.test/x.jpg"])
    template = "{Title} in {Option1 Value}: {Body (HTML)|text}"
    return path, ListOptions(template=template)


def _xlsx(folder: Path) -> tuple[Path, ListOptions]:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Products")
    sheet.append(["Catalogue"])
    sheet.append(["SKU", "Product Name", "Main Colour", "Price"])
    for i in range(ROWS):
        sheet.append([f"A-{i}", f"mug {i}", "sage", 19.5 + i])
    path = folder / "list.xlsx"
    book.save(path)
    return path, ListOptions(template="{Product Name} in {Main Colour}, {Price} EUR")


def main() -> None:
    """Print the best of three reads of each file."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"python {sys.version.split()[0]}, {ROWS:,} rows per file (best of 3)")
        for label, build in (("cp1251 ';' CSV", _cp1251), ("Shopify", _shopify), (".xlsx", _xlsx)):
            path, options = build(folder)
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                found = read_products(path, defaults={}, options=options)
                best = min(best, time.perf_counter() - started)
            items = len(found.items)
            print(f"{label:16} {items:>6} items  {best:6.2f} s  {items / best:>9,.0f} rows/s")


if __name__ == "__main__":
    main()
