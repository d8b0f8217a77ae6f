"""``python -m benchmarks.imagecheck``: what checking each image's structure costs.

Micro (the default): for images of each format and size, the time to hash them as ``_sink``
does (sha256, in ``FLUSH_BYTES`` pieces), to walk them with ``_imagecheck.ImageCheck`` fed
the same pieces, and to decode them with Pillow (``verify="decode"``). Each figure is the
best of several rounds.

``--scenario``: scenario 1 of ``python -m benchmarks`` (jobs of one image that take no time
on the emulator, saved to a temporary folder), odiqueue alone, ``--rounds`` times. Run it
once on this tree and once with ``PYTHONPATH`` at a checkout without the check for a
before/after::

    PYTHONPATH=$PWD python -m benchmarks.imagecheck --scenario
    PYTHONPATH=/path/to/old/checkout python -m benchmarks.imagecheck --scenario
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import tempfile
import time
from collections.abc import Callable

SEED = 20261121


def _best(work: Callable[[], object], rounds: int = 7) -> float:
    """The fastest of ``rounds`` runs of ``work``, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def _images() -> dict[str, bytes]:
    from PIL import Image

    from odiqueue.testing._images import render

    noise = Image.effect_noise((1024, 1024), 40).convert("RGB")

    def encoded(fmt: str, **options: object) -> bytes:
        out = io.BytesIO()
        noise.save(out, fmt, **options)
        return out.getvalue()

    return {
        "png 1024² emulator": render("png", 1024, 1024, False, None),
        "png 1024² noise": encoded("PNG"),
        "png padded to 2 MB": render("png", 1024, 1024, False, 2_000_000),
        "jpeg 1024² noise q90": encoded("JPEG", quality=90),
        "jpeg padded to 2 MB": render("jpeg", 1024, 1024, False, 2_000_000),
        "webp 1024² noise q90": encoded("WEBP", quality=90),
        "webp padded to 2 MB": render("webp", 1024, 1024, False, 2_000_000),
    }


def micro() -> None:
    """Print the hash, check and decode times of each image."""
    from odiqueue._imagecheck import ImageCheck, decode
    from odiqueue._sink import FLUSH_BYTES

    print(f"{'image':24} {'bytes':>9} {'sha256':>9} {'check':>9} {'check/hash':>10} {'decode':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in _images().items():
            pieces = [data[at : at + FLUSH_BYTES] for at in range(0, len(data), FLUSH_BYTES)]

            def hashed(pieces: list[bytes] = pieces) -> None:
                digest = hashlib.sha256()
                for piece in pieces:
                    digest.update(piece)

            def checked(pieces: list[bytes] = pieces) -> None:
                walk = ImageCheck()
                for piece in pieces:
                    walk.feed(piece)
                walk.finish()

            path = f"{folder}/image"
            with open(path, "wb") as file:
                file.write(data)
            hash_s, check_s = _best(hashed), _best(checked)
            decode_s = _best(lambda path=path: decode(path), rounds=3)  # type: ignore[misc]
            print(
                f"{name:24} {len(data):>9,} {hash_s * 1e6:>7.0f}µs {check_s * 1e6:>7.0f}µs "
                f"{check_s / hash_s:>10.2f} {decode_s * 1e6:>7.0f}µs"
            )


def scenario(jobs: int, rounds: int) -> None:
    """Print scenario 1's figures for odiqueue, ``rounds`` times, and their medians."""
    from benchmarks._harness import EmulatorProcess, run_contender

    walls, cpus = [], []
    with EmulatorProcess(["--job-seconds", "0", "--seed", str(SEED)]) as emu:
        for _ in range(rounds):
            emu.reset()
            with tempfile.TemporaryDirectory() as out:
                run = run_contender("odiqueue_run", emu.base_url, jobs=jobs, n=1, out=out)
            assert run["saved"] == jobs, run
            walls.append(run["wall"])
            cpus.append(run["cpu"] / jobs * 1000)
            print(f"  {jobs} jobs: {run['wall']:.2f}s wall, {cpus[-1]:.3f} CPU s/1000 jobs")
    print(
        f"median of {rounds}: {statistics.median(walls):.2f}s wall, "
        f"{jobs / statistics.median(walls):.0f} jobs/s, "
        f"{statistics.median(cpus):.3f} CPU s per 1000 jobs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imagecheck")
    parser.add_argument("--scenario", action="store_true", help="scenario 1, odiqueue alone")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.scenario:
        scenario(args.jobs, args.rounds)
    else:
        micro()


if __name__ == "__main__":
    main()
