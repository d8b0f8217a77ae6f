"""The ``odiqueue`` console script, driven in a subprocess against the emulator."""

from __future__ import annotations

import base64
import csv
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from PIL import Image as PILImage

from odiqueue.testing import Emulator, EmulatorConfig
from tests.helpers import CLI_KEY, COMMAND, PNG_1X1, env, image_files, odiqueue, until, write_csv
from tests.scripted import Scripted, scripted_server

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
KEY = CLI_KEY


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(workers=4, job_seconds=0.05)) as running:
        yield running


async def test_csv_with_template(emu: Emulator, tmp_path: Path) -> None:
    """A CSV filled into --template generates one file per row, named by id."""
    source = write_csv(
        tmp_path / "p.csv", ["id", "name", "color"], [["a", "mug", "red"], ["b", "lamp", "blue"]]
    )
    out = tmp_path / "out"
    code, stdout, _ = await odiqueue(
        "generate",
        source,
        "--out",
        out,
        "--base-url",
        emu.base_url,
        "--template",
        "A {color} {name}",
    )
    assert code == 0
    assert [p.name for p in image_files(out)] == ["a.png", "b.png"]
    prompts = sorted(job.params["prompt"] for job in emu.stats.jobs.values())
    assert prompts == ["A blue lamp", "A red mug"]
    assert "2 saved" in stdout
    assert (out / "manifest.jsonl").exists()


async def test_jsonl_with_per_row_overrides(emu: Emulator, tmp_path: Path) -> None:
    """JSONL rows set their own format and size over the command line's defaults."""
    source = tmp_path / "rows.jsonl"
    source.write_text(
        '{"prompt": "a cup", "format": "jpeg", "size": "1536x1024", "filename": "cup"}\n'
        "\n"
        '{"prompt": "a pen", "filename": "pen"}\n'
    )
    out = tmp_path / "out"
    code, _, err = await odiqueue(
        "generate", source, "--out", out, "--base-url", emu.base_url, "--format", "webp"
    )
    assert code == 0, err
    with PILImage.open(out / "cup.jpg") as cup, PILImage.open(out / "pen.webp") as pen:
        assert (cup.format, cup.size) == ("JPEG", (1536, 1024))
        assert pen.format == "WEBP"


async def test_txt_skips_blank_lines_and_comments(emu: Emulator, tmp_path: Path) -> None:
    """A .txt is one prompt per line; blank lines and # comments are skipped."""
    source = tmp_path / "prompts.txt"
    source.write_text("# spring catalogue\na red kite\n\n  a green kite  \n")
    code, _, _ = await odiqueue(
        "generate", source, "--out", tmp_path / "o", "--base-url", emu.base_url
    )
    assert code == 0
    assert len(image_files(tmp_path / "o")) == 2
    assert sorted(j.params["prompt"] for j in emu.stats.jobs.values()) == [
        "a green kite",
        "a red kite",
    ]


async def test_bad_rows_are_reported_and_nothing_is_sent(emu: Emulator, tmp_path: Path) -> None:
    """Every bad row is named with its column and reason; exit 2; no request is made."""
    source = write_csv(
        tmp_path / "p.csv",
        ["prompt", "size", "n"],
        [["fine", "", ""], ["too big", "4096x4096", ""], ["", "auto", ""], ["many", "", "eleven"]],
    )
    code, _, err = await odiqueue(
        "generate", source, "--out", tmp_path / "o", "--base-url", emu.base_url
    )
    assert code == 2
    assert "row 3, column 'size'" in err
    assert "4096x4096" in err
    assert "row 4, column 'prompt'" in err
    assert "row 5, column 'n'" in err
    assert sum(emu.stats.requests.values()) == 0


async def test_missing_key_says_how_to_set_it(tmp_path: Path) -> None:
    """Without a key the command explains ODIQUEUE_API_KEY (and the emulator) and exits 2."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\n")
    code, _, err = await odiqueue("generate", source, "--out", tmp_path / "o", key=None)
    assert code == 2
    assert "export ODIQUEUE_API_KEY=" in err
    assert "--emulator" in err


async def test_failed_rows_exit_1_and_failed_csv(emu: Emulator, tmp_path: Path) -> None:
    """A row that fails is listed with its row number and reason in failed.csv; exit 1."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\na weapon [fail:CONTENT_BLOCKED]\n")
    out = tmp_path / "o"
    code, stdout, _ = await odiqueue("generate", source, "--out", out, "--base-url", emu.base_url)
    assert code == 1
    rows = list(csv.DictReader((out / "failed.csv").read_text().splitlines()))
    assert [(r["row"], r["error_type"]) for r in rows] == [("2", "CONTENT_BLOCKED")]
    assert "row 2" in stdout


async def test_bad_key_exits_3(tmp_path: Path) -> None:
    """A key the server refuses is a fatal API error: exit 3."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\nanother kite\n")
    async with Emulator(EmulatorConfig(api_key="the-only-good-key")) as emu:
        code, _, err = await odiqueue(
            "generate", source, "--out", tmp_path / "o", "--base-url", emu.base_url
        )
    assert code == 3
    assert "Authorization" in err or "401" in err


async def test_usage_errors_name_the_flag(tmp_path: Path) -> None:
    """A bad option value names the flag and what is allowed; exit 2."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\n")
    code, _, err = await odiqueue("generate", source, "--out", tmp_path / "o", "--n", "20")
    assert code == 2
    assert "--n 20" in err
    assert "1 to 10" in err
    code, _, err = await odiqueue("generate", source, "--out", tmp_path / "o", "--concurrency", "0")
    assert code == 2
    assert "--concurrency" in err
    code, _, err = await odiqueue("generate", tmp_path / "missing.csv", "--out", tmp_path / "o")
    assert code == 2
    assert "no such file" in err


async def test_dry_run_sends_nothing(emu: Emulator, tmp_path: Path) -> None:
    """--dry-run prints each request and sends none."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\n")
    code, stdout, _ = await odiqueue(
        "generate",
        source,
        "--out",
        tmp_path / "o",
        "--base-url",
        emu.base_url,
        "--dry-run",
        "--size",
        "1024x1024",
    )
    assert code == 0
    first = json.loads(stdout.splitlines()[0])
    assert first["request"] == {"prompt": "a kite", "size": "1024x1024"}
    assert sum(emu.stats.requests.values()) == 0


async def test_json_lines(emu: Emulator, tmp_path: Path) -> None:
    """--json prints one JSON object per line, ending with the summary."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\n")
    code, stdout, _ = await odiqueue(
        "generate", source, "--out", tmp_path / "o", "--base-url", emu.base_url, "--json"
    )
    assert code == 0
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events[-1]["event"] == "summary"
    assert events[-1]["saved"] == 1
    assert any(e["event"] == "outcome" and e["ok"] for e in events)


async def test_emulator_demo_from_the_readme(tmp_path: Path) -> None:
    """The README's first command makes a dozen real images and a manifest, keyless."""
    code, stdout, err = await odiqueue(
        "generate",
        ROOT / "examples" / "products.csv",
        "--out",
        "out",
        "--emulator",
        key=None,
        cwd=tmp_path,
    )
    assert code == 0, err
    files = image_files(tmp_path / "out")
    assert len(files) == 12
    for path in files:
        with PILImage.open(path) as img:
            img.verify()
    assert (tmp_path / "out" / "manifest.jsonl").exists()
    assert "saved" in stdout


async def _interrupt_midway(emu: Emulator, tmp_path: Path, *extra: str) -> tuple[Path, list[str]]:
    source = tmp_path / "p.txt"
    source.write_text("".join(f"product {i} [duration:0.4]\n" for i in range(40)))
    out = tmp_path / "o"
    args = [*COMMAND, "generate", str(source), "--out", str(out), "--base-url", emu.base_url]
    args += ["--concurrency", "8", *extra]
    process = await anyio.open_process(args, env=env())
    manifest = out / "manifest.jsonl"
    await until(lambda: manifest.exists() and manifest.read_text().count('"event":"saved"') >= 5)
    process.send_signal(signal.SIGINT)
    with anyio.fail_after(30):
        code = await process.wait()
    assert process.stderr is not None
    err = (await process.stderr.receive()).decode()
    await process.aclose()
    assert code == 130
    assert "resume" in err
    return out, args


async def test_sigint_then_rerun_pays_nothing_twice(tmp_path: Path) -> None:
    """Ctrl-C with --keep-remote exits 130; the rerun finishes with one submit per row."""
    async with Emulator(EmulatorConfig(workers=4)) as emu:
        out, args = await _interrupt_midway(emu, tmp_path, "--keep-remote")
        assert all(j.cancel_requests == 0 for j in emu.stats.jobs.values())
        with anyio.fail_after(60):
            rerun = await anyio.run_process(args, env=env(), check=False)
        assert rerun.returncode == 0, rerun.stderr.decode()
        assert emu.stats.requests["submit"] == 40
    assert len(image_files(out)) == 40


async def test_single_job_commands(emu: Emulator, tmp_path: Path) -> None:
    """submit prints the id; status, result and cancel take it, with stable --output."""
    code, stdout, _ = await odiqueue(
        "submit", "a kite", "--base-url", emu.base_url, "--output", "id"
    )
    assert code == 0
    request_id = stdout.strip()
    assert request_id in emu.stats.jobs
    with anyio.fail_after(10):
        while True:
            _, stdout, _ = await odiqueue(
                "status", request_id, "--base-url", emu.base_url, "--output", "json"
            )
            if json.loads(stdout)["state"] == "succeeded":
                break
    code, stdout, _ = await odiqueue(
        "result", request_id, "--base-url", emu.base_url, "--out", tmp_path, "--output", "json"
    )
    assert code == 0
    (image,) = json.loads(stdout)["images"]
    assert Path(image["path"]).exists()
    code, stdout, _ = await odiqueue("cancel", request_id, "--base-url", emu.base_url)
    assert code == 0
    assert "already completed" in stdout
    code, _, err = await odiqueue("status", "no-such-id", "--base-url", emu.base_url)
    assert code == 1
    assert "not found" in err.lower()


@pytest.mark.parametrize("command", ["generate", "submit", "status", "result", "cancel"])
async def test_help_lists_options_with_defaults(command: str) -> None:
    """Each subcommand's help lists its options, with defaults."""
    code, stdout, _ = await odiqueue(command, "--help")
    assert code == 0
    assert "--base-url" in stdout
    assert "default:" in stdout
    if command == "generate":
        for flag in (
            "--template",
            "--concurrency",
            "--rate",
            "--max-retries",
            "--timeout",
            "--overwrite",
            "--no-resume",
            "--keep-remote",
            "--json",
            "--emulator",
            "--dry-run",
            "--size",
            "--quality",
            "--background",
            "--format",
            "--compression",
            "--n",
            "--moderation",
            "--provider",
            "--model",
        ):
            assert flag in stdout, flag


async def test_key_never_in_command_line_output(emu: Emulator, tmp_path: Path) -> None:
    """Neither the bar, the plain lines, --json nor errors ever print the key."""
    source = tmp_path / "p.txt"
    source.write_text("a kite\nbad [fail:CONTENT_BLOCKED]\n")
    outputs = []
    for extra in ([], ["--json"]):
        code, stdout, err = await odiqueue(
            "generate",
            source,
            "--out",
            tmp_path / f"o{len(extra)}",
            "--base-url",
            emu.base_url,
            *extra,
        )
        assert code == 1
        outputs += [stdout, err]
    code, stdout, err = await odiqueue(
        "status", "nope", "--base-url", emu.base_url, "--output", "json"
    )
    outputs += [stdout, err]
    files = [p.read_text() for p in tmp_path.rglob("*") if p.suffix in (".jsonl", ".csv")]
    assert all(KEY not in text for text in outputs + files)


USAGE_ERRORS = [
    (["generate", "{csv}", "--template", "photo of {{0}}", "--dry-run"], "is not a column"),
    (["generate", "{csv}", "--template", "photo of {{name.upper}}", "--dry-run"], "not a column"),
    (["generate", "{csv}", "--template", "photo of {{name!r}}", "--dry-run"], "not a column"),
    (["generate", "{csv}", "--base-url", "https://host:99999/model"], "not a URL"),
    (["generate", "{csv}", "--base-url", "ftp://example.com/model"], "http(s) URL"),
    (["generate", "{csv}", "--model", "/x"], "model name"),
    (["generate", "{csv}", "--rate", "nan"], "--rate nan"),
    (["generate", "{csv}", "--out", "{csv}"], "not a folder"),
    (["status", ""], "non-empty"),
    (["status", "abc", "--base-url", "https://ho st/model"], "http(s) URL"),
    (["submit", "a kite", "--n", "11"], "1 to 10"),
    (["submit", "a kite", "--compression", "50"], "output_compression"),
    (["submit", ""], "prompt"),
]


@pytest.mark.parametrize(("argv", "says"), USAGE_ERRORS)
def test_bad_arguments_exit_2_with_a_message_and_send_nothing(
    argv: list[str],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every bad argument is a one-line message and exit 2, never a traceback (nothing
    listens at the base URL, so a request sent by mistake would end otherwise)."""
    from odiqueue._cli import main

    source = write_csv(tmp_path / "p.csv", ["prompt", "name"], [["a mug", "mug"]])
    monkeypatch.setenv("ODIQUEUE_API_KEY", KEY)
    monkeypatch.setenv("ODIQUEUE_BASE_URL", "http://127.0.0.1:9/model")
    monkeypatch.chdir(tmp_path)
    args = [a.format(csv=source) for a in argv]
    if args[0] == "generate" and "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err


async def test_result_names_files_by_the_format_the_bytes_are(tmp_path: Path) -> None:
    """A result shape without content types (OpenAI's ``data[].url``) gives no hint: a webp
    image is saved as ``.webp``, not under the ``.png`` it was first given."""
    async with Emulator(EmulatorConfig(result_shape="openai_url")) as emu:
        _, stdout, _ = await odiqueue(
            "submit", "a kite", "--format", "webp", "--base-url", emu.base_url, "--output", "id"
        )
        request_id = stdout.strip()
        await until(lambda: emu.stats.jobs[request_id].completed_at is not None)
        code, stdout, err = await odiqueue(
            "result", request_id, "--base-url", emu.base_url, "--out", tmp_path, "--output", "id"
        )
    assert code == 0, err
    (saved,) = tmp_path.iterdir()
    assert saved.name == f"{request_id}_0.webp"
    assert saved.read_bytes()[8:12] == b"WEBP"


async def test_result_with_a_long_odd_content_type_saves_the_image(tmp_path: Path) -> None:
    """A result whose content type is 300 characters of nonsense is no traceback: the image
    is saved under the format its bytes are."""
    async with scripted_server() as server:
        queue = "/model/v1/queue/gpt_image_1/requests/r1"
        inline = base64.b64encode(PNG_1X1).decode()
        body = {"images": [{"b64_json": inline, "content_type": "image/" + "x" * 300}]}
        server.script("GET", f"{queue}/response", Scripted(body=body))
        code, _, err = await odiqueue(
            "result", "r1", "--base-url", f"{server.url}/model", "--out", tmp_path, "--output", "id"
        )
    assert code == 0, err
    (saved,) = tmp_path.iterdir()
    assert saved.suffix == ".png"
    assert saved.read_bytes() == PNG_1X1
