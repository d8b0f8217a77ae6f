"""``odiqueue generate``: a product list in, verified image files out, resumable."""

from __future__ import annotations

import argparse
import csv
import math
import os
import shlex
import signal
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

import anyio

from odiqueue._account import ENV_API_KEY, resolve_api_key
from odiqueue._batch import Batch, StopReport
from odiqueue._cli._args import (
    EMULATOR_KEY,
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    client_for,
    option_names,
    request_params,
)
from odiqueue._cli._bar import make_view
from odiqueue._cli._costs import budget_problem, estimate, price_table, unpriced_under_cap
from odiqueue._cli._edits import take_inputs
from odiqueue._cli._flags import told
from odiqueue._cli._gallery import GalleryUpdater, write_after_run
from odiqueue._cli._list_options import list_options
from odiqueue._cli._output import Guarded
from odiqueue._cli._products import (
    ROW_NAME_TEMPLATE,
    InputError,
    ProductList,
    RowProblem,
    file_names,
    read_products,
)
from odiqueue._cli._redo import redo_choice
from odiqueue._cli._report import record_input
from odiqueue._errors import (
    BudgetExceededError,
    ConfigurationError,
    InvalidParameterError,
    OdiqueueError,
)
from odiqueue._models import Outcome
from odiqueue._request import PARAMETERS, ImageRequest

__all__ = ["run_generate"]

FAILED_CSV: Final = "failed.csv"
#: Failed rows listed at the end of a run (all of them are in failed.csv).
FAILED_SHOWN: Final = 20


def run_generate(args: argparse.Namespace) -> int:
    """Check everything, then run the batch; returns the exit code."""
    problem = _check_options(args)
    inputs = take_inputs(args, args.input, option_names(args))
    if isinstance(inputs, str):
        problem = problem or inputs
    if problem or isinstance(inputs, str):
        print(f"odiqueue generate: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        products = read_products(
            args.input,
            defaults=request_params(args),
            options=list_options(args),
            inputs=inputs,
        )
    except InputError as exc:
        print(f"odiqueue generate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for note in products.notes:
        print(f"odiqueue generate: {note}", file=sys.stderr)
    rows = products.items
    args.redo_choice, problem = redo_choice(args, rows)
    if problem:
        print(f"odiqueue generate: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        prices = price_table(args)
    except ConfigurationError as exc:
        print(f"odiqueue generate: --prices: {exc}", file=sys.stderr)
        return EXIT_USAGE
    found = estimate((item for _, item in rows), args.model, prices)
    problem = unpriced_under_cap(args, found)
    if problem:
        print(f"odiqueue generate: {problem}", file=sys.stderr)
        return EXIT_USAGE
    args.price_table = prices
    if args.dry_run:
        return _dry_run(products, found.lines(prices.source))
    if not args.emulator:
        try:
            resolve_api_key(None)
        except ConfigurationError as exc:
            if os.environ.get(ENV_API_KEY, "").strip():  # set, but not usable as it is
                print(f"odiqueue generate: ${ENV_API_KEY}: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(
                f"odiqueue generate: no API key. Set it with `export {ENV_API_KEY}=sk-...` "
                "(or try without one: add --emulator).",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            client_for(args)  # checks the base URL and model; sends nothing
        except ValueError as exc:  # ConfigurationError, a yarl error
            print(f"odiqueue generate: {exc}", file=sys.stderr)
            return EXIT_USAGE
    # SIGTERM is taken like Ctrl-C, whenever it comes: a stop, never a kill (exit 130).
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return anyio.run(_generate, args, products)
    except KeyboardInterrupt:  # a third signal, during the clean-up
        print(_resume_hint(), file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_options(args: argparse.Namespace) -> str | None:
    if args.concurrency < 1:
        return f"--concurrency {args.concurrency}: must be at least 1"
    if args.rate is not None and not (0 < args.rate < math.inf):
        return f"--rate {args.rate}: must be above 0 submits per second (or leave it out)"
    if args.max_retries < 0:
        return f"--max-retries {args.max_retries}: must be 0 or more"
    if args.timeout is not None and not (0 < args.timeout < math.inf):
        return f"--timeout {args.timeout}: must be a number of seconds above 0"
    if not (0 <= args.grace < math.inf):
        return f"--grace {args.grace}: must be a number of seconds, 0 or more"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out}: is a file, not a folder"
    options = {p.name: p.option for p in PARAMETERS}
    for field, value in request_params(args).items():
        probe: dict[str, Any] = {field: value}
        if field == "output_compression":
            probe["output_format"] = "jpeg"  # a row may choose jpeg or webp
        try:
            ImageRequest("probe", **probe)
        except InvalidParameterError as exc:
            return f"{options[field]} {value}: {exc.allowed}"
    return budget_problem(args)


def _dry_run(products: ProductList, cost: list[str]) -> int:
    from odiqueue._wire import request_to_json

    for row, item in products.items:
        line = {"row": row, "key": item.key, "name": item.name, "files": file_names(item)}
        print(_json({**line, "request": request_to_json(item.request)}))
    for problem in products.skipped:
        print(_json({"row": problem.row, "skipped": str(problem)}))
    print("\n".join(cost))
    skipped = f", {_rows_in(products.skipped)} would be skipped" if products.skipped else ""
    print(
        f"{len(products.items)} row(s) checked{skipped}; nothing was sent "
        "(drop --dry-run to generate)"
    )
    return EXIT_OK


def _rows_in(problems: tuple[RowProblem, ...]) -> int:
    return len({p.row for p in problems})


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


async def _generate(args: argparse.Namespace, products: ProductList) -> int:
    rows = products.items
    started = time.monotonic()
    stdout = Guarded(sys.stdout)
    view = make_view(len(rows), as_json=args.json, out=stdout)  # type: ignore[arg-type]
    failures: list[tuple[int, Outcome]] = []
    counts = {"saved": 0, "failed": 0, "not_submitted": 0, "polls": 0}
    fatal: OdiqueueError | None = None
    retried = skipped = redone = 0
    batch: Batch | None = None
    cost = 0.0
    stopped_by: BudgetExceededError | None = None
    holds_folder = False
    async with AsyncExitStack() as stack:
        key = None
        if args.emulator:
            from odiqueue.testing import Emulator, EmulatorConfig

            # The demo's jobs take about 0.3 to 1.5 s: long enough to watch the bar move.
            demo = EmulatorConfig(
                workers=4, job_seconds=6.0, duration_sigma=0.4, time_scale=0.1, seed=1
            )
            emu = await stack.enter_async_context(Emulator(demo))
            args.base_url, key = emu.base_url, EMULATOR_KEY
            view.message("Using the bundled emulator: placeholder images, no key, nothing paid.")
        client = await stack.enter_async_context(client_for(args, key))
        stack.enter_context(view)
        async with anyio.create_task_group() as group:
            stop = _Interrupt(group.cancel_scope, args)
            group.start_soon(stop.watch)
            page = GalleryUpdater(args.out)
            try:
                async with client.generate_many(
                    (item for _, item in rows),
                    args.out,
                    max_in_flight=args.concurrency,
                    submit_rate=args.rate,
                    max_job_retries=args.max_retries,
                    deadline=args.timeout,
                    overwrite=args.overwrite,
                    resume=not args.no_resume,
                    keep_remote=args.keep_remote,
                    name_template=ROW_NAME_TEMPLATE,
                    max_images=args.max_images,
                    max_cost=args.max_cost,
                    prices=args.price_table,
                    redo=args.redo_choice,
                    on_progress=view.progress,
                ) as outcomes:
                    batch = stop.batch = outcomes
                    # The folder is ours now (its lock is held): record which row is which.
                    await anyio.to_thread.run_sync(
                        record_input, args.out, args.input, rows, list_options(args).read
                    )
                    holds_folder = True
                    async for outcome in outcomes:
                        row = rows[outcome.index][0]
                        if isinstance(outcome.error, BudgetExceededError):
                            # Not a failure: left for a run with a higher cap, said once.
                            stopped_by = stopped_by or outcome.error
                            counts["not_submitted"] += 1
                            continue
                        view.outcome(outcome, row)
                        page.poke(group)
                        counts["polls"] += outcome.polls
                        if outcome.ok:
                            counts["saved"] += 1
                        else:
                            counts["failed"] += 1
                            failures.append((row, outcome))
                    final = outcomes.progress
                    retried, skipped, redone = final.retried, final.skipped, final.redone
                    cost = final.cost
            except OdiqueueError as exc:
                if batch is None and not stop.fired:
                    # The folder could not be opened (locked, read-only, ...): nothing was
                    # sent, and nothing in it is touched.
                    print(f"odiqueue generate: {_flag_named(exc)}", file=sys.stderr)
                    group.cancel_scope.cancel()
                    return EXIT_USAGE
                fatal = exc
            group.cancel_scope.cancel()
    review = write_after_run(args.out) if holds_folder else None
    if stop.fired:
        report = batch.stopped if batch is not None else None
        print(_interrupted(counts["saved"], report, args.keep_remote), file=sys.stderr)
        return EXIT_INTERRUPTED
    unwritten = _write_failures(args.out, failures, products.skipped)
    if review is not None:
        view.message(review)
    view.summary(
        {
            **counts,
            "new": counts["saved"] - skipped - redone,
            "redone": redone,
            "skipped": skipped,
            "retried": retried,
            "total": len(rows),
            "polls_per_job": counts["polls"] / max(len(rows), 1),
            "elapsed": time.monotonic() - started,
            "estimated_cost": round(cost, 2),
        }
    )
    if stopped_by is not None:
        flag = {"max_images": "--max-images", "max_cost": "--max-cost"}[stopped_by.cap]
        view.message(
            f"Stopped at {flag} {stopped_by.limit:g}: {counts['not_submitted']} row(s) not "
            "submitted. Run the same command with a higher cap to continue (nothing saved "
            "or paid for is submitted again)."
        )
    if failures:
        where = "" if unwritten else f" (also in {args.out / FAILED_CSV})"
        view.message(f"{len(failures)} row(s) failed{where}:")
        for row, outcome in sorted(failures, key=lambda pair: pair[0])[:FAILED_SHOWN]:
            view.message(f"  row {row} ({outcome.key}): {told(outcome.error)}")
        if len(failures) > FAILED_SHOWN:
            view.message(f"  ... and {len(failures) - FAILED_SHOWN} more")
    if products.skipped:
        view.message(
            f"{_rows_in(products.skipped)} invalid row(s) skipped, not sent"
            f"{'' if unwritten else f' (also in {args.out / FAILED_CSV})'}:"
        )
        for problem in products.skipped[:FAILED_SHOWN]:
            view.message(f"  {problem}")
        if len(products.skipped) > FAILED_SHOWN:
            view.message(f"  ... and {len(products.skipped) - FAILED_SHOWN} more")
    for trouble in (unwritten, stdout.error and f"could not write to stdout: {stdout.error}"):
        if trouble:
            print(f"odiqueue generate: {trouble}", file=sys.stderr)
    if fatal is not None:
        print(f"odiqueue generate: stopped: {told(fatal)}", file=sys.stderr)
        return EXIT_FATAL if fatal.fatal else EXIT_FAILED
    if failures or products.skipped or unwritten or stdout.error:
        return EXIT_FAILED
    return EXIT_BUDGET if stopped_by is not None else EXIT_OK


class _Interrupt:
    """The first Ctrl-C (or SIGTERM) stops the batch gracefully (see ``Batch.stop``); the
    second cancels what is still running (unless --keep-remote) and ends the run."""

    def __init__(self, scope: anyio.CancelScope, args: argparse.Namespace) -> None:
        self.scope = scope
        self.grace: float = args.grace
        self.keep_remote: bool = args.keep_remote
        self.batch: Batch | None = None
        self.fired = 0

    async def watch(self) -> None:
        try:
            receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        except NotImplementedError:  # pragma: no cover - Windows: KeyboardInterrupt instead
            return
        with receiver as signals:
            async for _ in signals:
                self.fired += 1
                if self.fired == 1 and self.batch is not None:
                    print(_stopping(self.grace, self.keep_remote), file=sys.stderr)
                    self.batch.stop(self.grace)
                    continue
                if self.batch is not None and not self.keep_remote:
                    print("Interrupted again: cancelling the running jobs.", file=sys.stderr)
                self.scope.cancel()
                return


def _stopping(grace: float, keep_remote: bool) -> str:
    queued = (
        "jobs still queued are left on the server (--keep-remote)"
        if keep_remote
        else "jobs still queued are cancelled (not started, so not billed)"
    )
    again = (
        "Press Ctrl-C again to quit at once (nothing is cancelled: --keep-remote)."
        if keep_remote
        else "Press Ctrl-C again to cancel them instead (a job cancelled while running is "
        "billed all the same, and the rerun pays for it again)."
    )
    return (
        f"Stopping: no new jobs are submitted; {queued}; running jobs get {grace:g}s to "
        f"finish and be saved, then are left to run, for the rerun to collect by id. {again}"
    )


def _interrupted(saved: int, report: StopReport | None, keep_remote: bool) -> str:
    parts = [f"Interrupted: {saved} saved so far"]
    if report is not None and report.done:
        parts.append(f"{len(report.cancelled)} queued job(s) cancelled before they started")
        if report.left:
            parts.append(
                f"{len(report.left)} job(s) left to run on the server: they are paid for, "
                "and the rerun collects them by id without paying again"
            )
    elif not keep_remote:
        parts.append("the unfinished jobs were cancelled on the server")
    return "; ".join(parts) + f". {_resume_hint()}"


def _flag_named(error: OdiqueueError) -> str:
    """The batch's message, with the option's name the command line knows it by."""
    message = told(error)
    prefix = "out_dir "
    return "--out " + message.removeprefix(prefix) if message.startswith(prefix) else message


def _write_failures(
    out: Path, failures: list[tuple[int, Outcome]], skipped: tuple[RowProblem, ...] = ()
) -> str | None:
    """Write failed.csv (or remove an earlier run's); what went wrong, if anything."""
    path = out / FAILED_CSV
    try:
        _write_failures_to(path, failures, skipped)
    except OSError as exc:
        return f"could not write {path}: {exc.strerror or exc}"
    return None


def _write_failures_to(
    path: Path, failures: list[tuple[int, Outcome]], skipped: tuple[RowProblem, ...]
) -> None:
    if not failures and not skipped:
        path.unlink(missing_ok=True)
        return
    lines: list[tuple[int, list[object]]] = []
    for row, outcome in failures:
        error = outcome.error
        lines.append(
            (
                row,
                [
                    row,
                    outcome.key,
                    outcome.request_id or "",
                    getattr(error, "error_type", None) or type(error).__name__,
                    "" if error is None else told(error, context=False),
                    "",
                ],
            )
        )
    for problem in skipped:  # never sent: no key or request id of their own yet
        lines.append(
            (
                problem.row,
                [problem.row, "", "", "INVALID_ROW", problem.reason, problem.column or ""],
            )
        )
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "key", "request_id", "error_type", "error", "column"])
        for _, line in sorted(lines, key=lambda pair: pair[0]):
            writer.writerow(line)


def _resume_hint() -> str:
    command = shlex.join(["odiqueue", *sys.argv[1:]])
    return f"Run the same command again to resume: {command}"
