"""Demo: an application that reports progress through events, drawn in the terminal.

The "application" below knows nothing about terminals: each job reports
progress through :class:`~encore.events.api.ProgressManager`, which emits
progress events on the global event manager. One
:class:`~encore.terminal.api.ProgressDisplay` listens to those events and draws
them: a bar for jobs with a known number of steps, a spinner for the others,
several operations at once (nested ones, and jobs running in threads), and the
jobs that fail or finish with a warning.

Run it from the repository root::

    python examples/progress.py            # about two seconds
    python examples/progress.py --delay 0  # instant
    python examples/progress.py | cat      # plain, line-per-event output

It exits with status 0: the failures are part of the demo and are handled.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from encore.events.api import ProgressManager
from encore.terminal.api import ProgressDisplay


class UploadError(ConnectionError):
    """The (simulated) server went away."""


def copy_files(delay: float) -> None:
    """A job with a known number of steps: drawn as a bar."""
    names = [f"photo-{n:03d}.jpg" for n in range(20)]
    with ProgressManager(message=f"Copying {len(names)} files", steps=len(names)) as progress:
        for step, name in enumerate(names, start=1):
            time.sleep(delay)  # the "work"
            progress(message=f"copied {name}", step=step)


def scan_catalogue(delay: float) -> None:
    """A job whose length is unknown: drawn as a spinner, ends with a warning."""
    progress = ProgressManager(message="Scanning catalogue")
    progress.start()
    skipped = 0
    for section in "ABCDEFGHIJKLMNO":
        time.sleep(delay)
        if section in "EK":
            skipped += 1
        progress.step(message=f"section {section}")
    progress.end(message=f"{skipped} unreadable sections skipped", exit_state="warning")


def build_index(delay: float) -> None:
    """Nested operations: each stage of the build reports its own progress."""
    stages = ["tokenise", "sort", "merge"]
    with ProgressManager(message="Building index", steps=len(stages)) as build:
        for number, stage in enumerate(stages, start=1):
            with ProgressManager(message=f"  {stage}", steps=8) as progress:
                for step in range(1, 9):
                    time.sleep(delay)
                    progress(step=step)
            build(step=number)


def download(name: str, steps: int, delay: float) -> None:
    """One of several downloads running at the same time in threads."""
    with ProgressManager(message=f"Downloading {name}", steps=steps) as progress:
        for step in range(1, steps + 1):
            time.sleep(delay)
            progress(step=step)


def download_all(delay: float) -> None:
    jobs = [("alpha.tar", 12), ("beta.tar", 15), ("gamma.tar", 9)]
    threads = [threading.Thread(target=download, args=(*job, delay)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A bounded wait: a stuck download must not hang the demo.
        thread.join(timeout=60)


def upload_report(delay: float) -> None:
    """A job that fails half-way: the display shows the exception's message."""
    with ProgressManager(message="Uploading report", steps=10) as progress:
        for step in range(1, 11):
            time.sleep(delay)
            if step == 6:
                raise UploadError("connection reset by peer")
            progress(step=step)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delay", type=float, default=0.025, help="seconds of 'work' per step (default 0.025)"
    )
    parser.add_argument(
        "--mode",
        choices=["auto", "terminal", "plain"],
        default="auto",
        help="terminal drawing, plain lines, or decide from stdout (default)",
    )
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error("--delay must not be negative")
    tty = {"auto": None, "terminal": True, "plain": False}[args.mode]

    failures = []
    with ProgressDisplay(tty=tty):
        copy_files(args.delay)
        scan_catalogue(args.delay)
        build_index(args.delay)
        download_all(args.delay)
        try:
            upload_report(args.delay)
        except UploadError as exc:
            failures.append(f"upload: {exc}")
    print(f"Finished: {len(failures)} job(s) failed" + "".join(f"\n  {f}" for f in failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
