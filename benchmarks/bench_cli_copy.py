"""Benchmark ``encore-store cp`` of one large value between a sqlite and a filesystem store.

Usage::

    python benchmarks/bench_cli_copy.py              # 1 GiB
    python benchmarks/bench_cli_copy.py --size 256M  # any size: 512K, 64M, 2G...

It writes one value of ``--size`` random-looking bytes into a sqlite store
(in a child process, streamed), then times, each in a fresh child process:

* ``encore-store cp`` sqlite -> filesystem store, and back filesystem -> sqlite
  (into a new database), with ``--quiet``;
* yardsticks: ``cp`` of a plain file of the same size (the disk's speed), and
  ``python -c 'import encore.storage.__main__'`` (the interpreter's baseline
  memory).

For every run it prints MB/s (10**6 bytes per second, wall clock, including
interpreter start-up) and the child's peak RSS from ``wait4``; the ratio
columns compare with the yardsticks of the same run.  Bounded memory means
the copy's peak RSS stays a few MiB above the baseline whatever the size.
The copied values are compared byte for byte (by SHA-256) with the source.
Temporary files go to ``--dir`` (default: the system temporary directory) and
are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

# Run in a child: fill a sqlite store with one value, streamed from a
# generator, so the benchmark process itself stays small.
FILL = r"""
import hashlib, sys
from encore.storage import open_store
from encore.storage.utils import BufferIteratorIO
url, size = sys.argv[1], int(sys.argv[2])
block = hashlib.sha256(b"encore").digest() * (1 << 15)   # 1 MiB, not compressible to 0
def chunks():
    left = size
    while left:
        n = min(left, len(block))
        yield block[:n]
        left -= n
store = open_store(url)
store.set("big", (BufferIteratorIO(chunks()), {"kind": "benchmark", "size": size}))
"""

# Run in a child: the SHA-256 of a key's data, streamed.
DIGEST = r"""
import hashlib, sys
from encore.storage import open_store
store = open_store(sys.argv[1])
h = hashlib.sha256()
with store.get("big") as data:
    for chunk in iter(lambda: data.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
"""


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in UNITS else ""
    number = text[: len(text) - len(unit)]
    try:
        size = int(float(number) * UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 512K, 64M, 1G") from None
    if size <= 0:
        raise argparse.ArgumentTypeError("the size must be positive")
    return size


def run(argv: list[str]) -> tuple[float, float, str]:
    """Run *argv*; return (seconds, peak RSS in MiB, stdout).  Fails on a non-zero exit."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 gives this child's own resource usage (not all children's).
    out = process.stdout.read()  # type: ignore[union-attr]
    err = process.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{err.decode()}")
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = usage.ru_maxrss / (1 << 20) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return seconds, rss, out.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=1 << 30,
                        help="value size, e.g. 64M or 1G (default 1G)")
    parser.add_argument("--dir", default=None, help="where to put the temporary stores")
    args = parser.parse_args()
    size = args.size
    python = sys.executable
    cli = [python, "-m", "encore.storage"]
    root = tempfile.mkdtemp(prefix="bench-cli-copy-", dir=args.dir)
    try:
        src = f"sqlite://{root}/src.db"
        fs = os.path.join(root, "fs")
        back = f"sqlite://{root}/back.db"
        print(f"value size: {size:,} bytes; temporary stores in {root}")
        run([python, "-c", FILL, src, str(size)])
        expected = run([python, "-c", DIGEST, src])[2].strip()

        rows = []
        seconds, rss, _ = run([python, "-c", "import encore.storage.__main__"])
        baseline_rss = rss
        rows.append(("python + import (baseline)", None, rss))

        plain = os.path.join(root, "plain.bin")
        with open(plain, "wb") as f:
            block = os.urandom(1 << 20)
            left = size
            while left:
                left -= f.write(block[: min(left, len(block))])
        cp = shutil.which("cp")
        if cp is not None:
            seconds, rss, _ = run([cp, plain, plain + ".copy"])
            disk_rate = size / seconds / 1e6
            rows.append(("cp(1) of a plain file (yardstick)", disk_rate, rss))
            os.unlink(plain + ".copy")
        else:
            disk_rate = None
        os.unlink(plain)

        for label, argv, check in (
            ("encore-store cp sqlite -> filesystem", [*cli, "cp", src, fs, "--create", "-q"], fs),
            ("encore-store cp filesystem -> sqlite", [*cli, "cp", fs, back, "-q"], back),
        ):
            seconds, rss, _ = run(argv)
            digest = run([python, "-c", DIGEST, check])[2].strip()
            if digest != expected:
                raise SystemExit(f"{label}: the copy differs from the source")
            rows.append((label, size / seconds / 1e6, rss))

        print()
        print(f"{'run':40} {'MB/s':>9} {'peak RSS MiB':>13} {'x cp(1)':>8} {'RSS - base':>11}")
        for label, rate, rss in rows:
            rate_text = "-" if rate is None else f"{rate:9.1f}"
            ratio = "-" if rate is None or not disk_rate else f"{rate / disk_rate:8.2f}"
            above = f"{rss - baseline_rss:+11.1f}"
            print(f"{label:40} {rate_text:>9} {rss:13.1f} {ratio:>8} {above}")
        print(f"\ncopies verified by SHA-256; value size {size / (1 << 20):.0f} MiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
