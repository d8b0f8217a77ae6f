"""``python -m benchmarks``: odiqueue, fal-client and a hand-written loop on one emulator.

The emulator runs in its own process and every contender in another, so each client process
is measured alone. Prints a table and writes ``benchmarks/results.json``.
``python -m benchmarks --quick`` runs smaller sizes (a smoke test of the harness).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks._harness import EmulatorProcess, measure_ceiling, run_contender, time_manifest_open

SEED = 20261121
#: The three contenders of every scenario but the first: label, module, extra arguments.
PEERS: list[tuple[str, str, dict[str, Any]]] = [
    ("odiqueue", "odiqueue_run", {}),
    ("fal-client", "fal_run", {"semaphore": 100}),
    ("hand loop", "hand_run", {"poll": 0.3}),
]
HERE = Path(__file__).parent


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _figures(
    name: str, run: dict[str, Any], stats: dict[str, Any], jobs: int, n: int
) -> dict[str, Any]:
    requests = stats["requests"]
    timings = stats["timings"]
    runs = timings.get("run_seconds", [])
    median_run = statistics.median(runs) if runs else 0.0
    lags = timings.get("report_lag_seconds", [])
    span = None
    if stats.get("last_completed_at") is not None:
        span = stats["last_completed_at"] - stats["first_submitted_at"]
    return {
        "contender": name,
        "wall_s": round(run["wall"], 3),
        "jobs_per_s": round(jobs / run["wall"], 1) if not run["stalled"] else 0.0,
        "cpu_s_per_1000_jobs": round(run["cpu"] / jobs * 1000, 3),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "images_saved": run["saved"],
        "images_expected": jobs * n,
        "stalled": run["stalled"],
        "requests_per_job": round(sum(requests.values()) / jobs, 2),
        "status_per_job": round(requests.get("status", 0) / jobs, 2),
        # Polls: status and result requests beyond the one result fetch every job needs.
        "polls_per_job": round(
            (requests.get("status", 0) + requests.get("result", 0)) / jobs - 1, 2
        ),
        "submits": requests.get("submit", 0),
        "jobs_created": stats["jobs_created"],
        "lag_p50_x_median": round(_pct(lags, 0.5) / median_run, 3) if median_run else None,
        "lag_p95_x_median": round(_pct(lags, 0.95) / median_run, 3) if median_run else None,
        "ideal_s": round(span, 3) if span is not None else None,
        "faults_injected": sum(stats.get("faults_injected", {}).values()),
        "gave_up_after_s": run.get("gave_up_after"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--only", nargs="*", help="scenario numbers to run (default: all)")
    parser.add_argument(
        "--table", action="store_true", help="print the table of benchmarks/results.json and stop"
    )
    parser.add_argument(
        "--out-root",
        default=_default_out_root(),
        help="where each contender's temporary output folder is made (default: /dev/shm "
        "when there is one, so that figures measure the clients rather than the disk)",
    )
    args = parser.parse_args()
    if args.table:
        print(_table(json.loads((HERE / "results.json").read_text())))
        return
    scale = 0.1 if args.quick else 1.0
    only = set(args.only or ["1", "2", "3", "4", "5"])
    results: dict[str, Any] = {
        "seed": SEED,
        "machine": _machine(),
        "out_root": args.out_root or tempfile.gettempdir(),
        "scenarios": {},
    }
    started = time.monotonic()

    ceiling = measure_ceiling()
    results["ceiling_requests_per_s"] = round(ceiling, 0)
    print(f"physical ceiling: {ceiling:,.0f} small GETs/s (raw aiohttp, separate server)")

    def scenario(
        key: str,
        title: str,
        emulator: list[str],
        jobs: int,
        n: int,
        contenders: list[tuple[str, str, dict[str, Any]]],
        out_root: str | None = args.out_root,
    ) -> None:
        rows = []
        with EmulatorProcess([*emulator, "--seed", str(SEED)]) as emu:
            for label, module, extra in contenders:
                emu.reset()
                with tempfile.TemporaryDirectory(dir=out_root) as out:
                    run = run_contender(module, emu.base_url, jobs=jobs, n=n, out=out, **extra)
                rows.append(_figures(label, run, emu.stats(), jobs, n))
                print(f"  {title}: {label}: {json.dumps(rows[-1])}", flush=True)
        results["scenarios"][key] = {"title": title, "jobs": jobs, "n": n, "rows": rows}

    jobs1 = max(int(2000 * scale), 50)
    if "1" in only:
        scenario(
            "1",
            "overhead",
            ["--job-seconds", "0"],
            jobs1,
            1,
            [
                ("odiqueue", "odiqueue_run", {}),
                ("fal-client (gather)", "fal_run", {"bound": 30 * scale + 5}),
                ("fal-client (semaphore 100)", "fal_run", {"semaphore": 100}),
                ("hand loop", "hand_run", {"poll": 0.3}),
                # Not a contender: the least any client that cannot lose work must do.
                ("safe floor (reference)", "floor_run", {"poll": 0.3}),
            ],
        )
        # The same run written to the system's temporary folder (a real disk here): what
        # creating 2,000 files costs on it, next to the client's own cost above.
        scenario(
            "1d",
            "overhead, on disk",
            ["--job-seconds", "0"],
            jobs1,
            1,
            [("odiqueue", "odiqueue_run", {}), ("hand loop", "hand_run", {"poll": 0.3})],
            out_root=None,
        )
    realistic = [
        "--workers",
        "16",
        "--job-seconds",
        "20",
        "--duration-sigma",
        "0.3",
        "--time-scale",
        "0.1",
    ]
    jobs2 = max(int(300 * scale), 30)
    if "2" in only:
        scenario(
            "2",
            "realistic",
            realistic,
            jobs2,
            1,
            PEERS,
        )
    if "3" in only:
        scenario(
            "3",
            "memory",
            ["--job-seconds", "0", "--image-bytes", "2000000"],
            jobs2,
            4,
            PEERS,
        )
    if "4" in only:
        jobs4 = max(int(10000 * scale), 200)
        rows = []
        with EmulatorProcess(["--job-seconds", "0", "--seed", str(SEED)]) as emu:
            for count in (jobs4 // 10, jobs4):
                emu.reset()
                with tempfile.TemporaryDirectory(dir=args.out_root) as out:
                    run = run_contender("odiqueue_run", emu.base_url, jobs=count, n=1, out=out)
                rows.append(_figures(f"odiqueue x{count}", run, emu.stats(), count, 1))
                print(f"  scale: {json.dumps(rows[-1])}", flush=True)
        manifest_s = time_manifest_open(100_000)
        print(f"  scale: manifest of 100,000 lines opened in {manifest_s:.3f}s", flush=True)
        results["scenarios"]["4"] = {
            "title": "scale",
            "rows": rows,
            "manifest_100k_open_s": round(manifest_s, 3),
            "rss_ratio_10x": round(rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 2),
        }
    if "5" in only:
        faults = [*realistic, "--rate-503", "0.1", "--rate-429", "0.05", "--retry-after", "0.1"]
        scenario(
            "5",
            "faults",
            faults,
            jobs2,
            1,
            PEERS,
        )

    results["seconds"] = round(time.monotonic() - started, 1)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results))
    print(f"total {results['seconds']}s; figures in benchmarks/results.json")


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| scenario | contender | jobs/s | wall/ideal | polls/job | req/job | lag p95 (x median) "
        "| CPU s/1000 jobs | peak RSS MB | saved | dup. submits |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, block in results["scenarios"].items():
        for row in block.get("rows", []):
            ideal = row.get("ideal_s")
            stalled = row["stalled"]
            ratio = f"{row['wall_s'] / ideal:.3f}" if ideal and not stalled else "-"
            gave_up = row.get("gave_up_after_s") or row["wall_s"]
            saved = f"{row['images_saved']}/{row['images_expected']}" + (
                f" in {gave_up:.0f} s" if stalled else ""
            )
            dup = max(row["jobs_created"] - block.get("jobs", row["jobs_created"]), 0)
            done = "-" if stalled else None
            cells = [
                f"{key} {block['title']}",
                row["contender"],
                "stalled" if stalled else row["jobs_per_s"],
                ratio,
                done or row["polls_per_job"],
                done or row["requests_per_job"],
                row["lag_p95_x_median"] if row["lag_p95_x_median"] is not None else "-",
                row["cpu_s_per_1000_jobs"],
                row["peak_rss_mb"],
                saved,
                dup,
            ]
            lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _default_out_root() -> str | None:
    """/dev/shm (memory) when it is there: on this project's 2-core VM, creating a file on
    the ext4 disk costs anywhere from 40 to 700 µs from one minute to the next, which would
    drown the difference between clients. ``--out-root`` puts the folders elsewhere."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _machine() -> dict[str, Any]:
    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {p: ver(p) for p in ("odiqueue", "aiohttp", "anyio", "fal-client", "httpx")},
    }


if __name__ == "__main__":
    main()
