"""The ``odiqueue`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odiqueue",
        description="Client for the gpt_image_1 image-generation queue API.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser(
        "emulator",
        help="serve the local emulator of the queue API (for tests and demos)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "emulator":
        # The emulator owns its options; delegate the rest of the line unchanged.
        from odiqueue.testing import main as emulator_main

        return emulator_main(args[1:])
    _parser().parse_args(args)
    return 0
