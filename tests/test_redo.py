"""Redo: chosen rows generated again, nothing else paid for, earlier images kept aside."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from odiqueue import (
    AsyncClient,
    BatchItem,
    BatchOptions,
    ConfigurationError,
    ImageRequest,
    RetryPolicy,
    instant_waits,
)
from odiqueue.testing import Emulator, EmulatorConfig, Faults
from tests.helpers import collect, emulated, manifest_lines, odiqueue, write_csv

pytestmark = pytest.mark.anyio

ROWS = 20
CHOSEN = ("p3", "p7", "p11")


def items(changed: dict[str, str] | None = None) -> list[BatchItem]:
    """``ROWS`` keyed items; ``changed`` gives some of them a new prompt."""
    prompts = {f"p{i}": f"product {i}" for i in range(ROWS)}
    prompts.update(changed or {})
    return [BatchItem(ImageRequest(prompt), key=key) for key, prompt in prompts.items()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def saved_ids(out: Path) -> dict[str, str]:
    """Each key's request id from its last saved line."""
    return {
        line["key"]: line["request_id"] for line in manifest_lines(out) if line["event"] == "saved"
    }


def previous_files(out: Path) -> list[str]:
    folder = out / "previous"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def staged_leftovers(out: Path) -> list[str]:
    """Image files in ``out`` named by a request id (a redo's images before their swap)."""
    return sorted(p.name for p in out.glob("*_0.*.png"))


async def test_redo_keys_submits_only_those_and_moves_the_earlier_images_aside(
    tmp_path: Path,
) -> None:
    """redo=[keys] with 16 workers submits exactly those rows; each earlier image is moved
    to previous/<name>.<earlier request id>.png and the new one takes its name."""
    better = {key: f"a better prompt for {key}" for key in CHOSEN}
    async with emulated(workers=16, job_seconds=0.01) as (emu, client):
        await collect(client, items(), tmp_path, max_in_flight=16)
        before = {key: digest(tmp_path / f"{key}_0.png") for key in CHOSEN}
        first_ids = saved_ids(tmp_path)
        outcomes = await collect(
            client, items(better), tmp_path, max_in_flight=16, redo=list(CHOSEN)
        )
        submits = emu.stats.requests["submit"]
    assert submits == ROWS + len(CHOSEN)
    redone = {o.key: o for o in outcomes if o.redone}
    assert sorted(redone) == sorted(CHOSEN)
    assert all(o.ok for o in outcomes)
    for key in CHOSEN:
        kept = tmp_path / "previous" / f"{key}_0.{first_ids[key]}.png"
        assert redone[key].previous == (kept,)
        assert digest(kept) == before[key]
        assert redone[key].paths == (tmp_path / f"{key}_0.png",)
        assert digest(tmp_path / f"{key}_0.png") != before[key]
    assert len(previous_files(tmp_path)) == len(CHOSEN)
    assert staged_leftovers(tmp_path) == []


async def test_redo_progress_counts_redone_apart_from_already_saved(tmp_path: Path) -> None:
    """Progress counts the redone rows apart from those an earlier run saved."""
    async with emulated(job_seconds=0.01) as (_, client):
        await collect(client, items(), tmp_path)
        async with client.generate_many(items(), tmp_path, redo=["p1", "p2"]) as outcomes:
            _ = [outcome async for outcome in outcomes]
            final = outcomes.progress
    assert (final.saved, final.redone, final.skipped, final.failed) == (ROWS, 2, ROWS - 2, 0)


async def test_redo_changed_submits_exactly_the_changed_rows(tmp_path: Path) -> None:
    """A changed row without redo is refused naming redo='changed' and nothing is sent;
    redo='changed' with 16 workers then submits exactly the changed rows."""
    better = {f"p{i}": f"sharper product {i}" for i in (0, 5, 9, 13)}
    async with emulated(workers=16, job_seconds=0.01) as (emu, client):
        await collect(client, items(), tmp_path, max_in_flight=16)
        refused = await collect(client, items(better), tmp_path, max_in_flight=16)
        assert emu.stats.requests["submit"] == ROWS
        errors = [o.error for o in refused if not o.ok]
        assert len(errors) == len(better)
        assert all(isinstance(e, ConfigurationError) for e in errors)
        assert all("redo='changed'" in str(e) for e in errors)
        assert all(e is not None and e.fix is not None and e.fix.value == "changed" for e in errors)
        outcomes = await collect(client, items(better), tmp_path, max_in_flight=16, redo="changed")
        submits = emu.stats.requests["submit"]
    assert submits == ROWS + len(better)
    assert sorted(o.key for o in outcomes if o.redone) == sorted(better)
    assert len(previous_files(tmp_path)) == len(better)


async def test_redo_failed_submits_exactly_the_failed_rows(tmp_path: Path) -> None:
    """redo='failed' submits again only the rows whose job failed for good (a blocked
    prompt); the rest stay skipped."""
    blocked = {f"p{i}": f"product {i} [fail:CONTENT_BLOCKED]" for i in (2, 4, 6)}
    async with emulated(workers=16, job_seconds=0.01) as (emu, client):
        first = await collect(client, items(blocked), tmp_path, max_in_flight=16)
        assert sum(not o.ok for o in first) == len(blocked)
        again = await collect(client, items(blocked), tmp_path, max_in_flight=16)
        assert emu.stats.requests["submit"] == ROWS  # a failure for good is not paid again
        assert sum(not o.ok for o in again) == len(blocked)
        outcomes = await collect(client, items(blocked), tmp_path, max_in_flight=16, redo="failed")
        submits = emu.stats.requests["submit"]
    assert submits == ROWS + len(blocked)
    assert sorted(o.key for o in outcomes if o.attempts) == sorted(blocked)


async def test_failed_redo_keeps_the_earlier_image_in_place(tmp_path: Path) -> None:
    """A redo whose new job fails leaves the earlier image where it was, untouched."""
    async with emulated(job_seconds=0.01) as (_, client):
        await collect(client, items(), tmp_path)
        before = digest(tmp_path / "p1_0.png")
        doomed = {"p1": "product 1 [fail:CONTENT_BLOCKED]"}
        outcomes = await collect(client, items(doomed), tmp_path, redo=["p1"])
    (failed,) = [o for o in outcomes if not o.ok]
    assert failed.key == "p1"
    assert not failed.redone
    assert digest(tmp_path / "p1_0.png") == before
    assert previous_files(tmp_path) == []
    assert staged_leftovers(tmp_path) == []


async def test_redo_whose_images_could_not_be_fetched_is_finished_by_a_rerun(
    tmp_path: Path,
) -> None:
    """A redo's new job, paid for but not fetched, is fetched by id on a plain rerun (not
    paid again): only then is the earlier image moved aside."""
    async with emulated(job_seconds=0.01) as (emu, client):
        await collect(client, items(), tmp_path)
        before = digest(tmp_path / "p1_0.png")
        first_id = saved_ids(tmp_path)["p1"]
        better = items({"p1": "a better product 1"})
        emu.set_faults(Faults(rate_500=1.0, calls=frozenset({"image"})))
        async with AsyncClient(
            "sk-test-key-0123456789", base_url=emu.base_url, retry=RetryPolicy(attempts=2)
        ) as short:
            with instant_waits():
                outcomes = await collect(short, better, tmp_path, redo=["p1"])
        (lost,) = [o for o in outcomes if not o.ok]
        assert digest(tmp_path / "p1_0.png") == before  # still the earlier image
        emu.set_faults(Faults())
        rerun = await collect(client, better, tmp_path)
        submits = emu.stats.requests["submit"]
    assert submits == ROWS + 1
    (done,) = [o for o in rerun if o.key == "p1"]
    assert done.ok
    assert done.redone
    assert done.request_id == lost.request_id
    assert done.previous == (tmp_path / "previous" / f"p1_0.{first_id}.png",)
    assert digest(done.previous[0]) == before
    assert staged_leftovers(tmp_path) == []


async def test_changed_row_whose_job_is_not_saved_is_never_paid_again(tmp_path: Path) -> None:
    """A row whose request changed while its paid job is not saved yet is refused, with or
    without redo='changed': paying again under its key would hide that job."""
    async with emulated(job_seconds=0.01) as (emu, client):
        emu.set_faults(Faults(rate_500=1.0, calls=frozenset({"image"})))
        async with AsyncClient(
            "sk-test-key-0123456789", base_url=emu.base_url, retry=RetryPolicy(attempts=2)
        ) as short:
            with instant_waits():
                await collect(short, items()[:2], tmp_path)
        emu.set_faults(Faults())
        changed = items({"p0": "another product 0"})[:2]
        for redo in (None, "changed"):
            outcomes = await collect(client, changed, tmp_path, redo=redo)
            (refused,) = [o for o in outcomes if o.key == "p0"]
            assert isinstance(refused.error, ConfigurationError)
            assert "not saved yet" in str(refused.error)
        submits = emu.stats.requests["submit"]
    assert submits == 2


async def test_unknown_redo_keys_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """A redo key no earlier run recorded is an error naming it and the nearest known key,
    raised before any submit."""
    async with emulated(job_seconds=0.01) as (emu, client):
        await collect(client, items(), tmp_path)
        with pytest.raises(ConfigurationError, match=r"'p-11' \(nearest: 'p11'"):
            await collect(client, items(), tmp_path, redo=["p3", "p-11"])
        assert emu.stats.requests["submit"] == ROWS


def test_redo_takes_keys_as_a_collection_not_a_single_string() -> None:
    """A lone string other than 'failed'/'changed' is refused, telling to pass a list."""
    with pytest.raises(ConfigurationError, match=r"redo=\['sku-1'\]"):
        BatchOptions(redo="sku-1")
    assert BatchOptions(redo=["sku-1"]).redo == frozenset({"sku-1"})
    with pytest.raises(ConfigurationError, match="resume=False"):
        BatchOptions(redo="failed", resume=False)


# --- the command line -------------------------------------------------------------------


def product_csv(path: Path, changed: dict[str, str] | None = None) -> Path:
    prompts = {f"p{i}": f"product {i}" for i in range(ROWS)}
    prompts.update(changed or {})
    return write_csv(path, ["id", "prompt"], [[key, p] for key, p in prompts.items()])


async def test_cli_redo_keys_with_many_workers(tmp_path: Path) -> None:
    """--redo KEY,KEY with --concurrency 16 submits exactly those rows, keeps the earlier
    images in previous/, and the summary counts redone and already saved apart."""
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(workers=16, job_seconds=0.01)) as emu:
        base = ["--out", out, "--base-url", emu.base_url, "--concurrency", "16"]
        code, _, err = await odiqueue("generate", product_csv(tmp_path / "a.csv"), *base)
        assert code == 0, err
        better = product_csv(tmp_path / "b.csv", {key: f"better {key}" for key in CHOSEN})
        code, stdout, err = await odiqueue("generate", better, *base, "--redo", ",".join(CHOSEN))
        assert code == 0, err
        assert emu.stats.requests["submit"] == ROWS + len(CHOSEN)
    assert "20 saved (0 new, 3 redone, 17 already saved), 0 failed" in stdout
    assert len(previous_files(out)) == len(CHOSEN)


async def test_cli_changed_rows_name_the_flag_and_redo_changed_redoes_them(
    tmp_path: Path,
) -> None:
    """Changed rows without --redo fail with a message naming --redo changed (never the
    Python parameter); --redo changed with 16 workers then submits exactly those rows."""
    out = tmp_path / "out"
    better = {"p2": "better 2", "p8": "better 8"}
    async with Emulator(EmulatorConfig(workers=16, job_seconds=0.01)) as emu:
        base = ["--out", out, "--base-url", emu.base_url, "--concurrency", "16"]
        code, _, err = await odiqueue("generate", product_csv(tmp_path / "a.csv"), *base)
        assert code == 0, err
        source = product_csv(tmp_path / "b.csv", better)
        code, stdout, err = await odiqueue("generate", source, *base)
        assert code == 1
        assert "--redo changed" in stdout + err
        assert "redo=" not in stdout + err
        assert "--redo changed" in (out / "failed.csv").read_text()
        assert emu.stats.requests["submit"] == ROWS
        code, stdout, err = await odiqueue("generate", source, *base, "--redo", "changed")
        assert code == 0, err
        assert emu.stats.requests["submit"] == ROWS + len(better)
    assert "(0 new, 2 redone, 18 already saved)" in stdout
    assert sorted(previous_files(out)) == sorted(
        f"{key}.{rid}.png" for key, rid in _first_saved(out).items() if key in better
    )


async def test_cli_redo_failed_with_many_workers(tmp_path: Path) -> None:
    """--redo failed submits exactly the rows that failed for good, with 16 workers."""
    out = tmp_path / "out"
    blocked = {f"p{i}": f"product {i} [fail:CONTENT_BLOCKED]" for i in (1, 9, 15)}
    async with Emulator(EmulatorConfig(workers=16, job_seconds=0.01)) as emu:
        base = ["--out", out, "--base-url", emu.base_url, "--concurrency", "16"]
        code, _, err = await odiqueue("generate", product_csv(tmp_path / "a.csv", blocked), *base)
        assert code == 1
        fixed = product_csv(tmp_path / "b.csv")
        code, stdout, err = await odiqueue("generate", fixed, *base, "--redo", "failed")
        assert code == 0, err
        assert emu.stats.requests["submit"] == ROWS + len(blocked)
    assert "(0 new, 3 redone, 17 already saved), 0 failed" in stdout


async def test_cli_unknown_redo_keys_are_a_usage_error(tmp_path: Path) -> None:
    """--redo naming an id no row has exits 2 before sending, naming the nearest ids."""
    out = tmp_path / "out"
    async with Emulator(EmulatorConfig(job_seconds=0.01)) as emu:
        base = ["--out", out, "--base-url", emu.base_url]
        source = product_csv(tmp_path / "a.csv")
        code, _, err = await odiqueue("generate", source, *base)
        assert code == 0, err
        code, _, err = await odiqueue("generate", source, *base, "--redo", "p3,P-12")
        assert code == 2
        assert "'P-12' (nearest: 'p12'" in err
        assert "--redo" in err
        assert emu.stats.requests["submit"] == ROWS


async def test_cli_names_overwrite_as_its_flag(tmp_path: Path) -> None:
    """A file in the way is reported with --overwrite, never overwrite=True."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "p0.png").write_bytes(b"someone else's file")
    source = write_csv(tmp_path / "a.csv", ["id", "prompt"], [["p0", "product 0"]])
    async with Emulator(EmulatorConfig(job_seconds=0.01)) as emu:
        code, stdout, err = await odiqueue(
            "generate", source, "--out", out, "--base-url", emu.base_url
        )
        assert emu.stats.requests["submit"] == 0
    assert code == 1
    assert "pass --overwrite, or use another output folder" in stdout + err
    assert "overwrite=True" not in stdout + err + (out / "failed.csv").read_text()


def _first_saved(out: Path) -> dict[str, str]:
    """Each key's request id from its first saved line."""
    first: dict[str, str] = {}
    for line in manifest_lines(out):
        if line["event"] == "saved":
            first.setdefault(line["key"], line["request_id"])
    return first
