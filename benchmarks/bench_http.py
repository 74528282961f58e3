"""Benchmark DynamicURLStore <-> encore.storage.server over loopback.

Usage::

    python benchmarks/bench_http.py
    python benchmarks/bench_http.py --count 2000 --big-mib 64 --backends wsgiref

For each server backend (the embedded threaded ``wsgiref`` server and, when
installed, ``waitress`` running the same :class:`StoreApplication`), a server
subprocess serves a store (``--store sqlite``: a SqliteStore file in a temp
dir, the default; ``--store sink``: a store that generates its one large value
on the fly and drops uploads of it, to isolate the HTTP path).  The client, in
this process, measures on ``--count`` small keys (100 bytes, 3-key metadata):

* ``set``            ``DynamicURLStore.set`` (a data PUT and a metadata PUT)
* ``set_data``       ``from_bytes`` (one PUT)
* ``get_data``       ``get_data(key).read()`` (one GET)
* ``get_metadata``   (one GET)

reporting operations/s and requests/s; then a ``--big-mib`` value (512 MiB by
default) uploaded with ``set`` and downloaded with ``get_data``, reporting MB/s
and the peak RSS above baseline of the server process and of this (client)
process (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``).

Yardstick, measured in the same run: a plain ``requests`` streaming GET of a
file of the same size from the standard library's ``http.server``; the table
gives the download throughput as a ratio to it.

Targets (issue 7): the large transfer streams (server and client peak RSS
each under 100 MiB above baseline) at no less than 100 MB/s.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

MIB = 1048576
SMALL = b"x" * 100


# -- memory accounting (Linux /proc) -----------------------------------------

def _status_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def reset_peak() -> int:
    """Reset this process's peak RSS (if the kernel allows); return the current RSS in KiB."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
    return _status_kib("VmRSS")


def peak() -> int:
    return _status_kib("VmHWM")


# -- the server subprocess ---------------------------------------------------

def _make_sink_store(size: int) -> Any:
    from encore.storage.abstract_store import AbstractStore, Value
    from encore.storage.utils import BufferIteratorIO

    class GeneratedValue(Value):
        def __init__(self, size: int) -> None:
            self.size = size
            self.created = self.modified = 1.0e9

        @property
        def data(self) -> Any:
            return BufferIteratorIO(pattern_chunks(self.size))

        @property
        def metadata(self) -> dict:
            return {}

        def range(self, start: Any = None, end: Any = None) -> Any:
            end = self.size if end is None else min(end, self.size)
            return io.BytesIO(b"".join(pattern_chunks(end))[start or 0:])

    class SinkStore(AbstractStore):
        """Generates 'big'; other keys are kept in a dict; 'big' uploads are dropped."""

        def __init__(self) -> None:
            super().__init__()
            self.small: dict[str, tuple[bytes, dict]] = {}

        def get(self, key: str) -> Any:
            if key == "big":
                return GeneratedValue(size)
            from encore.storage.string_value import StringValue

            data, metadata = self.small[key]
            return StringValue(data, metadata)

        def query(self, select: Any = None, **kwargs: Any) -> Any:
            return iter([(key, md) for key, (_, md) in self.small.items()])

        def set(self, key: str, value: Any, buffer_size: int = MIB) -> None:
            data, metadata, _ = self._unpack_value(value)
            if key == "big":
                # Read and drop: the cost measured is the HTTP path's alone.
                while data.read(buffer_size):
                    pass
                return
            self.small[key] = (data.read(), metadata)

        def delete(self, key: str) -> None:
            del self.small[key]

    return SinkStore()


def serve_main(backend: str, store_kind: str, directory: str, size: int) -> None:
    if store_kind == "sqlite":
        from encore.storage.sqlite_store import SqliteStore

        store = SqliteStore(os.path.join(directory, "bench.db"))
    else:
        store = _make_sink_store(size)
    store.connect()
    from encore.storage.server import StoreApplication, StoreServer

    app = StoreApplication(store)
    if backend == "waitress":
        import waitress

        server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
        port = server.effective_port
        threading.Thread(target=server.run, daemon=True).start()
    else:
        server = StoreServer(app).start()
        port = server.port
    print(f"PORT {port}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "mark":
            print(f"RSS {reset_peak()}", flush=True)
        elif command == "peak":
            print(f"PEAK {peak()}", flush=True)
    os._exit(0)


class ServerProcess:
    def __init__(self, backend: str, store_kind: str, directory: str, size: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", backend, store_kind, directory, str(size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def ask(self, command: str) -> int:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline().split()[1])

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


# -- data ---------------------------------------------------------------------

_BLOCK = bytes(range(256)) * 4096  # 1 MiB


def pattern_chunks(size: int):
    sent = 0
    while sent < size:
        piece = _BLOCK if size - sent >= len(_BLOCK) else _BLOCK[: size - sent]
        sent += len(piece)
        yield piece


def big_value(size: int) -> Any:
    from encore.storage.abstract_store import Value
    from encore.storage.utils import BufferIteratorIO

    class Big(Value):
        def __init__(self) -> None:
            self.size = size

        @property
        def data(self) -> Any:
            return BufferIteratorIO(pattern_chunks(size))

        @property
        def metadata(self) -> dict:
            return {"kind": "big"}

        def range(self, start: Any = None, end: Any = None) -> Any:
            end = size if end is None else min(end, size)
            return io.BytesIO(b"".join(pattern_chunks(end))[start or 0:])

    return Big()


# -- measurements -------------------------------------------------------------

def timed(function: Any) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def bench_backend(backend: str, args: argparse.Namespace, directory: str) -> dict[str, Any]:
    from encore.storage.dynamic_url_store import DynamicURLStore

    size = args.big_mib * MIB
    server = ServerProcess(backend, args.store, directory, size)
    results: dict[str, Any] = {}
    try:
        client = DynamicURLStore(server.url + "/store", server.url + "/query", timeout=120)
        client.connect()
        keys = [f"key/{i}" for i in range(args.count)]
        metadata = {"a": 1, "b": "two", "c": [3]}

        def set_all() -> None:
            for key in keys:
                client.set(key, (io.BytesIO(SMALL), metadata))

        def set_data_all() -> None:
            for key in keys:
                client.from_bytes(key, SMALL)

        def get_data_all() -> None:
            for key in keys:
                with client.get_data(key) as data:
                    assert data.read() == SMALL

        def get_metadata_all() -> None:
            for key in keys:
                client.get_metadata(key)

        for name, function, requests_per_op in [("set", set_all, 2), ("set_data", set_data_all, 1),
                                                ("get_data", get_data_all, 1),
                                                ("get_metadata", get_metadata_all, 1)]:
            seconds = timed(function)
            results[name] = (args.count / seconds, args.count * requests_per_op / seconds)

        # The large value: upload, then download, with peak RSS on both sides.
        server_base = server.ask("mark")
        client_base = reset_peak()
        seconds = timed(lambda: client.set("big", big_value(size)))
        results["upload"] = size / seconds / 1e6
        results["upload_server_rss"] = (server.ask("peak") - server_base) / 1024
        results["upload_client_rss"] = (peak() - client_base) / 1024

        server_base = server.ask("mark")
        client_base = reset_peak()
        received = 0

        def download() -> None:
            nonlocal received
            with client.get_data("big") as data:
                for chunk in iter(lambda: data.read(MIB), b""):
                    received += len(chunk)

        seconds = timed(download)
        assert received == size, (received, size)
        results["download"] = size / seconds / 1e6
        results["download_server_rss"] = (server.ask("peak") - server_base) / 1024
        results["download_client_rss"] = (peak() - client_base) / 1024
        client.disconnect()
    finally:
        server.close()
    return results


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def bench_yardstick(args: argparse.Namespace, directory: str) -> float:
    import requests

    size = args.big_mib * MIB
    path = os.path.join(directory, "big.bin")
    with open(path, "wb") as stream:
        for chunk in pattern_chunks(size):
            stream.write(chunk)
    handler = functools.partial(_QuietHandler, directory=directory)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/big.bin"
        received = 0

        def download() -> None:
            nonlocal received
            with requests.get(url, stream=True, timeout=120) as response:
                for chunk in iter(lambda: response.raw.read(MIB), b""):
                    received += len(chunk)

        seconds = timed(download)
        assert received == size
        return size / seconds / 1e6
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
        os.unlink(path)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="small keys (default 10000)")
    parser.add_argument("--big-mib", type=int, default=512, help="large value size in MiB")
    parser.add_argument("--store", choices=["sqlite", "sink"], default="sqlite")
    parser.add_argument("--backends", nargs="+", default=["wsgiref", "waitress"])
    args = parser.parse_args()

    backends = []
    for backend in args.backends:
        if backend == "waitress":
            try:
                import waitress  # noqa: F401
            except ImportError:
                print("waitress not installed: skipped")
                continue
        backends.append(backend)

    directory = tempfile.mkdtemp(prefix="encore-bench-http-")
    try:
        yardstick = bench_yardstick(args, directory)
        table = {}
        for backend in backends:
            backend_dir = os.path.join(directory, backend)
            os.makedirs(backend_dir)
            table[backend] = bench_backend(backend, args, backend_dir)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print(f"\nDynamicURLStore <-> encore.storage.server, store={args.store}, "
          f"{args.count} small keys, {args.big_mib} MiB value, loopback")
    header = f"{'row':<28}" + "".join(f"{b:>16}" for b in backends)
    print(header)
    print("-" * len(header))
    for name in ("set", "set_data", "get_data", "get_metadata"):
        for index, unit in ((0, "ops/s"), (1, "req/s")):
            print(f"{name + ' (' + unit + ')':<28}"
                  + "".join(f"{table[b][name][index]:>16,.0f}" for b in backends))
    for name, unit in (("upload", "MB/s"), ("upload_server_rss", "MiB"),
                       ("upload_client_rss", "MiB"), ("download", "MB/s"),
                       ("download_server_rss", "MiB"), ("download_client_rss", "MiB")):
        print(f"{name + ' (' + unit + ')':<28}" + "".join(f"{table[b][name]:>16,.1f}"
                                                         for b in backends))
    print(f"{'download / http.server':<28}" + "".join(f"{table[b]['download'] / yardstick:>16.2f}"
                                                      for b in backends))
    print(f"\nyardstick: requests GET from http.server (same size): {yardstick:,.1f} MB/s")


if __name__ == "__main__":
    main()
