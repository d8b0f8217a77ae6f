"""The command line's arguments: the parser, the options every command shares, exit codes.

Exit codes: 0 all saved, 1 some items (or the job) failed, 2 usage or input error, 3 fatal
API error (key, credits, permission), 4 stopped at a budget cap, 130 interrupted,
141 output closed early (a pipe).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Final

from odiqueue._account import PRESETS
from odiqueue._batch import DEFAULT_STOP_GRACE
from odiqueue._cli._edits import add_edit_options
from odiqueue._cli._list_options import add_list_options
from odiqueue._client import AsyncClient
from odiqueue._config import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_JOB_RETRIES,
    DEFAULT_MODEL,
    VERSION,
    RetryPolicy,
)
from odiqueue._logging import log_to_stderr
from odiqueue._prices import ENV_PRICES
from odiqueue._request import PARAMETERS, ImageRequest

__all__ = [
    "EMULATOR_KEY",
    "EXIT_BUDGET",
    "EXIT_FAILED",
    "EXIT_FATAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTPUT_CLOSED",
    "EXIT_USAGE",
    "client_for",
    "emulator_client",
    "emulator_url",
    "option_names",
    "parser",
    "request_params",
    "set_verbosity",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_FATAL: Final = 3
EXIT_BUDGET: Final = 4
EXIT_INTERRUPTED: Final = 130
#: The key sent to an emulator (any non-empty key is accepted there).
EMULATOR_KEY: Final = "emulator-demo-key"
#: The log level each count of ``-v`` shows on stderr.
VERBOSITY: Final = {1: logging.INFO, 2: logging.DEBUG}
#: What a shell reports for a tool ended by SIGPIPE (128 + 13): the output was closed early.
EXIT_OUTPUT_CLOSED: Final = 141


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, except "None": those options say in words what applies when unset."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def _choices(enum: type[Any]) -> list[str]:
    return [member.value for member in enum]


def _add_request_options(parser: argparse.ArgumentParser, *, for_every_row: bool) -> None:
    scope = " for every row (a row's own column wins)" if for_every_row else ""
    group = parser.add_argument_group("image parameters" + (" (defaults)" if for_every_row else ""))
    for parameter in PARAMETERS:
        if not parameter.flag:
            continue
        api_default = ImageRequest.DEFAULTS.get(parameter.name)
        help_text = f"{parameter.help}{scope}"
        if api_default is not None:
            help_text += f" (API default: {api_default})"
        choices = _choices(parameter.choices) if parameter.choices else None
        metavar = parameter.number
        if parameter.custom and choices:
            # Open-ended (a custom WxH): the model's rules check it, with the flag's name.
            metavar = "{" + ",".join([*choices, parameter.custom]) + "}"
            help_text += f"; {parameter.custom} where the model takes it (gpt_image_2)"
            choices = None
        group.add_argument(
            parameter.option,
            dest=parameter.name,
            choices=choices,
            type=int if parameter.number else str,
            metavar=metavar,
            help=help_text,
        )


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (the key comes from $ODIQUEUE_API_KEY)")
    group.add_argument(
        "--provider",
        choices=sorted(PRESETS),
        help="which service to use (default: $ODIQUEUE_BASE_URL if set, else odirouter)",
    )
    group.add_argument(
        "--base-url",
        help="API base URL, overriding --provider (default: $ODIQUEUE_BASE_URL if set)",
    )
    group.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="model (queue) for rows without a model column: gpt_image_1, gpt_image_1_edit, "
        "gpt_image_2, gpt_image_2_edit, or a newer name (passed through unchecked)",
    )
    group.add_argument(
        "--no-proxy",
        action="store_true",
        help="connect directly, ignoring HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log on stderr: -v each job's milestones, -vv every HTTP call too",
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odiqueue",
        description="Generate images with the gpt_image_1 queue API (odirouter.ai, "
        "cloud.seaart.ai), one job or thousands.",
        epilog="Try it without a key:\n"
        "  odiqueue generate examples/products.csv --out out --emulator\n"
        "Exit codes: 0 all saved, 1 some failed, 2 usage or input error, "
        "3 fatal API error (key, credits), 4 stopped at --max-images or --max-cost, "
        "130 interrupted, 141 output closed early.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"odiqueue {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = commands.add_parser(
        "generate",
        help="generate an image for every row of a product list (.csv, .tsv, .xlsx, .jsonl, .txt)",
        description="Generate images for every row of INPUT into --out. Rows are checked "
        "before anything is sent. Run the same command again to resume.",
        epilog="Columns: prompt (or --template), id (or sku, handle, --id-column: the stable "
        "key and file name), filename, and any of n, size, quality, background, format, "
        "compression, moderation, user, model, images (several separated by '|'), mask, "
        "input_fidelity per row. Shopify and WooCommerce exports are read as they are "
        "exported.",
        formatter_class=_Formatter,
    )
    gen.add_argument(
        "input", type=Path, metavar="INPUT", help=".csv, .tsv, .xlsx, .jsonl or .txt file"
    )
    gen.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder (required)"
    )
    gen.add_argument(
        "--template",
        help='prompt built from columns as written, e.g. "Studio photo of {Title} in '
        '{Main Colour}"; {Body (HTML)|text} takes an HTML cell as text (default: the prompt '
        "column)",
    )
    add_list_options(gen)
    _add_request_options(gen, for_every_row=True)
    add_edit_options(gen, for_rows=True)
    _add_connection_options(gen)
    run = gen.add_argument_group("running")
    run.add_argument(
        "--concurrency", type=int, default=DEFAULT_MAX_IN_FLIGHT, help="jobs in flight at once"
    )
    run.add_argument(
        "--rate", type=float, help="submits per second (default: none until the API asks)"
    )
    run.add_argument(
        "--max-retries",
        type=int,
        default=DEFAULT_MAX_JOB_RETRIES,
        help="resubmits of a failed job",
    )
    run.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="per-job deadline (default: none)"
    )
    run.add_argument("--overwrite", action="store_true", help="replace existing files")
    run.add_argument("--no-resume", action="store_true", help="start over, ignoring the manifest")
    run.add_argument(
        "--redo",
        action="append",
        metavar="KEY[,KEY...]|failed|changed",
        help="generate again the rows with these ids, the rows that failed, or the rows "
        "whose request changed since an earlier run; each earlier image is moved to "
        "DIR/previous/ once its new one is saved, and nothing else is submitted",
    )
    run.add_argument(
        "--keep-remote",
        action="store_true",
        help="on Ctrl-C, cancel nothing: leave queued and running jobs on the server",
    )
    run.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_STOP_GRACE,
        metavar="SECONDS",
        help="on the first Ctrl-C, how long running jobs may take to finish and be saved "
        "(then they are left running, for the rerun to collect)",
    )
    run.add_argument("--json", action="store_true", help="JSON event lines instead of the bar")
    run.add_argument(
        "--emulator", action="store_true", help="run against the bundled emulator (no key)"
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check rows, print what would be sent and its estimated cost",
    )
    budget = gen.add_argument_group("budget (estimates from list prices: see --prices)")
    budget.add_argument(
        "--max-images",
        type=int,
        metavar="N",
        help="stop submitting before the batch pays for more than N images (earlier runs in "
        f"--out count); exit code {EXIT_BUDGET} when it stops",
    )
    budget.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="stop submitting before the estimated cost passes USD (earlier runs count)",
    )
    budget.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help=f"price table (JSON or TOML) laid over the defaults (default: ${ENV_PRICES} if "
        "set, else OpenAI's list prices for gpt-image-1)",
    )

    submit = commands.add_parser(
        "submit", help="submit one prompt, print its request id", formatter_class=_Formatter
    )
    submit.add_argument("prompt", help="the prompt")
    _add_request_options(submit, for_every_row=False)
    add_edit_options(submit, for_rows=False)
    for name, help_text in (
        ("status", "print a job's status"),
        ("result", "download a finished job's images"),
        ("cancel", "cancel a job"),
    ):
        sub = commands.add_parser(name, help=help_text, formatter_class=_Formatter)
        sub.add_argument("request_id", metavar="ID", help="the request id")
        if name == "result":
            sub.add_argument("--out", type=Path, default=Path(), metavar="DIR", help="folder")
    for name in ("submit", "status", "result", "cancel"):
        sub = commands.choices[name]
        _add_connection_options(sub)
        sub.add_argument(
            "--emulator",
            action="store_true",
            help="talk to a running `odiqueue emulator` (no key needed) at --base-url, "
            "default its own address",
        )
        sub.add_argument(
            "--output",
            choices=["text", "json", "id", "url"],
            default="text",
            help="what to print: words, a JSON object, the id, or the URL(s)",
        )
    report = commands.add_parser(
        "report",
        help="rebuild a batch's index.html and results.csv from its output folder",
        description="Rebuild DIR/index.html (a page to review the batch) and DIR/results.csv "
        "(one line per input row) from DIR/manifest.jsonl. `generate` writes both after "
        "every run; this remakes them, e.g. while another process runs the batch.",
        formatter_class=_Formatter,
    )
    report.add_argument("out", type=Path, metavar="DIR", help="the output folder of a batch")
    commands.add_parser(
        "emulator",
        help="serve the local emulator of the API (see: odiqueue emulator --help)",
        add_help=False,
    )
    return parser


def request_params(args: argparse.Namespace) -> dict[str, Any]:
    """The image parameters given on the command line (unset ones left out)."""
    params = {p.name: getattr(args, p.name) for p in PARAMETERS if p.flag}
    return {k: v for k, v in params.items() if v is not None}


def option_names(args: argparse.Namespace) -> dict[str, str]:
    """The option that set each image parameter given on the command line (for messages)."""
    return {p.name: p.option for p in PARAMETERS if p.flag and getattr(args, p.name) is not None}


def client_for(args: argparse.Namespace, api_key: str | None = None) -> AsyncClient:
    """A client for the connection options (key from the environment unless given)."""
    inline = getattr(args, "inline_images", "base64")
    return AsyncClient(
        api_key,
        provider=None if args.base_url else args.provider,
        base_url=args.base_url,
        model=args.model,
        upload_url=getattr(args, "upload_url", None),
        inline_images="data_uri" if inline == "data-uri" else "base64",
        trust_env=not args.no_proxy,
    )


def emulator_url(args: argparse.Namespace) -> str:
    """Where a single-job command finds ``odiqueue emulator``: --base-url, else its default."""
    from odiqueue.testing._config import DEFAULT_PORT, DEFAULT_PREFIX

    return args.base_url or f"http://127.0.0.1:{DEFAULT_PORT}{DEFAULT_PREFIX}"


def emulator_client(args: argparse.Namespace) -> AsyncClient:
    """A client for a local emulator: its placeholder key, and no long retries (a local
    server that refuses the connection is not running, not busy)."""
    return AsyncClient(
        EMULATOR_KEY,
        base_url=emulator_url(args),
        model=args.model,
        retry=RetryPolicy(attempts=2),
        trust_env=not args.no_proxy,
    )


def set_verbosity(args: argparse.Namespace) -> None:
    """Show the ``odiqueue`` logger on stderr at the level ``-v``/``-vv`` asks for."""
    count = getattr(args, "verbose", 0)
    if count:
        log_to_stderr(VERBOSITY[min(count, max(VERBOSITY))])
