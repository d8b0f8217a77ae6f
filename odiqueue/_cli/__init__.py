"""The ``odiqueue`` command line: bulk generation from a product list, and single-job calls.

The layer above the batch engine: it reads arguments and product lists, runs a command,
and prints. Nothing below it imports from here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import anyio

from odiqueue._cli._args import (
    EXIT_FAILED,
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    emulator_url,
    parser,
    set_verbosity,
)
from odiqueue._cli._generate import run_generate
from odiqueue._cli._single import single_job
from odiqueue._errors import ConnectError, OdiqueueError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "emulator":
        # The emulator owns its options; hand it the rest of the line unchanged.
        from odiqueue.testing import main as emulator_main

        return emulator_main(args_list[1:])
    args = parser().parse_args(args_list)
    set_verbosity(args)
    if args.command == "generate":
        return run_generate(args)
    try:
        return anyio.run(single_job, args)
    except ValueError as exc:
        # A setting or argument refused before anything was sent: ConfigurationError,
        # InvalidParameterError (both ValueErrors) or an empty request id.
        print(f"odiqueue: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectError as exc:
        if args.emulator:
            print(
                f"odiqueue: no emulator answers at {emulator_url(args)}: start one with "
                "`odiqueue emulator` in another terminal (or give its address with --base-url)",
                file=sys.stderr,
            )
        else:
            print(f"odiqueue: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OdiqueueError as exc:
        print(f"odiqueue: {exc}", file=sys.stderr)
        return EXIT_FATAL if exc.fatal else EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
