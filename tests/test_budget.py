"""Cost known before and capped during: price estimates, ``--max-images``, ``--max-cost``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odiqueue import (
    BudgetExceededError,
    ConfigurationError,
    ImageRequest,
    PriceTable,
    load_prices,
)
from odiqueue.testing import Emulator, EmulatorConfig
from tests.helpers import collect, emulated, manifest_lines, odiqueue, write_csv

pytestmark = pytest.mark.anyio

EXIT_BUDGET = 4


def products(path: Path, count: int, quality: str = "low") -> Path:
    """A product list of ``count`` rows at one quality and the square size."""
    rows = [[f"p{i}", f"product {i}", quality, "1024x1024"] for i in range(count)]
    return write_csv(path, ["id", "prompt", "quality", "size"], rows)


def test_defaults_are_the_list_prices() -> None:
    """The default table prices gpt-image-1 as OpenAI's list does, per image and ``n``."""
    table = PriceTable()
    assert table.estimate(ImageRequest("x", quality="low", size="1024x1024"), "gpt_image_1") == (
        0.011
    )
    portrait = ImageRequest("x", quality="high", size="1024x1536", n=4)
    assert table.estimate(portrait, "gpt_image_1") == 1.0
    assert table.estimate(portrait, "gpt_image_1_edit") == 1.0


def test_auto_is_priced_at_the_dearest_choice() -> None:
    """A quality or size the server picks is priced at the most it may cost."""
    table = PriceTable()
    assert table.estimate(ImageRequest("x"), "gpt_image_1") == 0.25
    assert table.estimate(ImageRequest("x", quality="medium"), "gpt_image_1") == 0.063


def test_unknown_model_has_no_price() -> None:
    """A model the table does not know is priced None, never zero."""
    assert PriceTable().estimate(ImageRequest("x", quality="low"), "gpt_image_2") is None


def test_price_file_is_laid_over_the_defaults(tmp_path: Path) -> None:
    """A JSON price file adds models and replaces single prices, keeping the rest."""
    file = tmp_path / "prices.json"
    file.write_text(json.dumps({"gpt_image_2": {"low": {"*": 0.005}}, "gpt_image_1": {}}))
    table = load_prices(file)
    assert table.unit_price("gpt_image_2", "low", "2048x1152") == 0.005
    assert table.unit_price("gpt_image_1", "low", "1024x1024") == 0.011


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not JSON"),
        ('{"gpt_image_2": {"low": {"*": -1}}}', "0 or more"),
        ('{"gpt_image_2": {"low": {"*": "cheap"}}}', "must be a number"),
        ('{"gpt_image_2": 3}', "must map names"),
    ],
)
def test_bad_price_file_names_the_problem(tmp_path: Path, text: str, words: str) -> None:
    """A price file that cannot be used says which file and what is wrong."""
    file = tmp_path / "prices.json"
    file.write_text(text)
    with pytest.raises(ConfigurationError, match=words) as caught:
        load_prices(file)
    assert str(file) in str(caught.value)


async def test_max_images_stops_exactly_at_the_cap_with_many_workers(tmp_path: Path) -> None:
    """However many workers submit at once, the batch pays for no image past the cap; the
    rest are told why, and nothing is left half-done."""
    items = [ImageRequest(f"product {i}", quality="low", size="1024x1024") for i in range(30)]
    async with emulated(workers=16, job_seconds=0.01) as (emu, client):
        outcomes = await collect(client, items, tmp_path, max_in_flight=16, max_images=7)
        submits = emu.stats.requests["submit"]
    assert submits == 7
    assert sum(o.ok for o in outcomes) == 7
    stopped = [o for o in outcomes if not o.ok]
    assert len(stopped) == 23
    assert all(isinstance(o.error, BudgetExceededError) for o in stopped)


async def test_max_cost_counts_n_and_records_each_estimate(tmp_path: Path) -> None:
    """The cost cap counts every image of a job; each paid job's estimate is recorded."""
    items = [ImageRequest(f"p{i}", quality="low", size="1024x1024", n=2) for i in range(10)]
    async with emulated(workers=8, job_seconds=0.01) as (emu, client):
        # 0.022 a job: five jobs fit under 0.12, the sixth would pass it.
        outcomes = await collect(client, items, tmp_path, max_in_flight=8, max_cost=0.12)
        submits = emu.stats.requests["submit"]
    assert submits == 5
    assert sum(o.ok for o in outcomes) == 5
    estimates = [line["estimated_cost"] for line in manifest_lines(tmp_path) if "request" in line]
    assert estimates == [0.022] * 5


async def test_cli_cap_exits_with_its_own_code_and_a_higher_cap_continues(
    tmp_path: Path,
) -> None:
    """--max-images stops at the cap with exit 4 and says how to go on; the same command with
    a higher cap submits only the rest, never a row already paid for."""
    source = products(tmp_path / "p.csv", 12)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(workers=8, job_seconds=0.01)) as emu:
        base = ["generate", source, "--out", out, "--base-url", emu.base_url, "--concurrency", "8"]
        code, stdout, err = await odiqueue(*base, "--max-images", "5")
        assert code == EXIT_BUDGET, err
        assert "Stopped at --max-images 5: 7 row(s) not submitted" in stdout + err
        assert "max_images" not in stdout + err  # the CLI names its flags, never parameters
        assert emu.stats.requests["submit"] == 5
        assert not (out / "failed.csv").exists()

        code, _, err = await odiqueue(*base, "--max-images", "5")
        assert code == EXIT_BUDGET, err
        assert emu.stats.requests["submit"] == 5  # the earlier run's five count

        code, _, err = await odiqueue(*base, "--max-images", "100")
        assert code == 0, err
        assert emu.stats.requests["submit"] == 12
    saved = [line["key"] for line in manifest_lines(out) if line["event"] == "saved"]
    assert sorted(saved) == sorted(f"p{i}" for i in range(12))


async def test_cli_max_cost_with_many_workers(tmp_path: Path) -> None:
    """--max-cost with 16 workers submits exactly what fits under the cap."""
    source = products(tmp_path / "p.csv", 40)
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(workers=16, job_seconds=0.01)) as emu:
        code, stdout, err = await odiqueue(
            "generate", source, "--out", out, "--base-url", emu.base_url,
            "--concurrency", "16", "--max-cost", "0.1",
        )  # fmt: skip
        # 0.011 an image: nine fit under 0.10.
        assert code == EXIT_BUDGET, err
        assert emu.stats.requests["submit"] == 9
        assert "Stopped at --max-cost 0.1" in stdout + err


async def test_dry_run_prints_the_estimate(tmp_path: Path) -> None:
    """--dry-run gives images and estimated cost per model, quality and size, and a total."""
    rows = [["a", "mug", "high", "1024x1536"], ["b", "lamp", "low", "1024x1024"]]
    source = write_csv(tmp_path / "p.csv", ["id", "prompt", "quality", "size"], rows)
    code, stdout, err = await odiqueue(
        "generate", source, "--out", tmp_path / "out", "--dry-run", "--n", "2"
    )
    assert code == 0, err
    assert "gpt_image_1 high 1024x1536: 2 image(s), $0.50" in stdout
    assert "gpt_image_1 low 1024x1024: 2 image(s), $0.02" in stdout
    assert "total: 4 image(s), $0.52" in stdout
    assert "estimates" in stdout


async def test_unpriced_model_under_a_cost_cap_is_refused_before_sending(tmp_path: Path) -> None:
    """A cost cap cannot hold for a model without a price: exit 2 naming it and --prices,
    nothing sent."""
    source = products(tmp_path / "p.csv", 3)
    async with Emulator() as emu:
        code, _, err = await odiqueue(
            "generate", source, "--out", tmp_path / "out", "--base-url", emu.base_url,
            "--model", "gpt_image_2", "--max-cost", "5",
        )  # fmt: skip
        assert emu.stats.requests["submit"] == 0
    assert code == 2
    assert "gpt_image_2" in err
    assert "--prices" in err


async def test_bad_prices_file_is_a_usage_error(tmp_path: Path) -> None:
    """--prices naming a file that is not a price table stops before anything is sent."""
    source = products(tmp_path / "p.csv", 1)
    bad = tmp_path / "prices.json"
    bad.write_text("[1, 2]")
    code, _, err = await odiqueue(
        "generate", source, "--out", tmp_path / "out", "--dry-run", "--prices", bad
    )
    assert code == 2
    assert "--prices" in err
    assert str(bad) in err
