"""The ``odiqueue`` command line: bulk generation from a product list, and single-job calls.

The layer above the batch engine: it reads arguments and product lists, runs a command,
and prints. Nothing below it imports from here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import anyio

from odiqueue._cli._args import (
    EXIT_FAILED,
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT_CLOSED,
    EXIT_USAGE,
    emulator_url,
    parser,
    set_verbosity,
)
from odiqueue._cli._gallery import run_report
from odiqueue._cli._generate import run_generate
from odiqueue._cli._single import single_job
from odiqueue._errors import ConnectError, OdiqueueError

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    A reader that leaves early (``odiqueue generate ... --json | head``) ends the run as
    Unix tools end: quietly, the batch stopped as by Ctrl-C (the manifest resumes it).
    """
    try:
        code = _run(argv)
    except SystemExit:  # --help, --version, a usage error: their words may be buffered
        _flush_or_silence()
        raise
    except BaseException as exc:
        if not _only_broken_pipes(exc):
            raise
        _silence_stdout()
        return EXIT_OUTPUT_CLOSED
    # A closed pipe is met here, rather than in the interpreter's exit (a traceback).
    return code if _flush_or_silence() else EXIT_OUTPUT_CLOSED


def _flush_or_silence() -> bool:
    """Flush stdout; False (and stdout silenced) when its reader has gone."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return False
    return True


def _silence_stdout() -> None:
    """Send whatever is still buffered for stdout nowhere: its reader is gone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _only_broken_pipes(exc: BaseException) -> bool:
    """Whether ``exc`` is a closed stdout (alone, or all a task group's errors)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_broken_pipes(inner) for inner in exc.exceptions)
    return isinstance(exc, BrokenPipeError)


def _run(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "emulator":
        # The emulator owns its options; hand it the rest of the line unchanged.
        from odiqueue.testing import main as emulator_main

        return emulator_main(args_list[1:])
    args = parser().parse_args(args_list)
    set_verbosity(args)
    if args.command == "generate":
        return run_generate(args)
    if args.command == "report":
        return run_report(args.out)
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
