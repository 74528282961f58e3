"""Tests of the ``encore-store`` command line, run as subprocesses like a user would.

Every test runs with a temporary ``HOME`` and no ``$ENCORE_STORE`` (unless it
sets one), so the real default store is never touched.  Servers listen on
127.0.0.1 at a port the OS picks, and are stopped with SIGINT (bounded waits).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from encore.events.api import EventManager
from encore.storage import open_store
from encore.storage.__main__ import main
from encore.storage.abstract_store import Value
from encore.storage.cli_copy import LARGE_VALUE, copy_display, copy_keys
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.filesystem_store import init_shared_store
from encore.storage.store_url import ENV_VAR

TIMEOUT = 60
BINARY = bytes(range(256)) + b"\r\n\x00no trailing newline"


@pytest.fixture
def env(tmp_path_factory):
    """The environment of every command: a temporary HOME, no default-store override."""
    home = tmp_path_factory.mktemp("home")
    environment = {k: v for k, v in os.environ.items()
                   if k not in (ENV_VAR, "XDG_DATA_HOME")}
    environment.update(HOME=str(home), PYTHONIOENCODING="utf-8")
    return environment


class Cli:
    """Runs ``python -m encore.storage`` with a fixed environment."""

    def __init__(self, environment: dict[str, str], cwd: Path) -> None:
        self.env = environment
        self.cwd = cwd

    def __call__(self, *args: str, input: bytes | None = None,
                 **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "encore.storage", *args], input=input,
            capture_output=True, env={**self.env, **env}, cwd=self.cwd,
            timeout=TIMEOUT, check=False)
        result.err = result.stderr.decode("utf-8")  # type: ignore[attr-defined]
        result.out = result.stdout.decode("utf-8", "replace")  # type: ignore[attr-defined]
        return result

    def ok(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        result = self(*args, **kwargs)
        assert result.returncode == 0, (args, result.returncode, result.err)
        return result


@pytest.fixture
def cli(env, tmp_path):
    return Cli(env, tmp_path)


@pytest.fixture(params=["sqlite", "filesystem"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/store.db"
    path = tmp_path / "fsstore"
    path.mkdir()
    init_shared_store(path)
    return str(path)


# -- every subcommand against sqlite and filesystem stores -----------------------------------------


def test_put_get_ls_meta_query_rm(cli, store_url, tmp_path):
    data_file = tmp_path / "data.bin"
    data_file.write_bytes(BINARY)
    s = ("--store", store_url)

    cli.ok("put", "docs/a.bin", str(data_file), "--meta", "type=binary", "--meta", "n:=3", *s)
    cli.ok("put", "docs/b.txt", "-", "--meta-json", '{"type": "text", "tags": ["x"]}', *s,
           input=b"hello")
    cli.ok("put", "other", *s, input=b"")

    assert cli.ok("ls", *s).out == "docs/a.bin\ndocs/b.txt\nother\n"
    assert cli.ok("ls", "docs/*", *s).out == "docs/a.bin\ndocs/b.txt\n"
    long_lines = cli.ok("ls", "-l", "docs/a*", *s).out.splitlines()
    assert len(long_lines) == 1
    size, modified, key, metadata = long_lines[0].split(None, 3)
    assert (int(size), key) == (len(BINARY), "docs/a.bin")
    assert modified.endswith("Z") and json.loads(metadata) == {"n": 3, "type": "binary"}

    # Values are bytes end to end: no newline added, nothing decoded.
    assert cli.ok("get", "docs/a.bin", *s).stdout == BINARY
    assert cli.ok("get", "docs/b.txt", *s).stdout == b"hello"
    assert cli.ok("get", "other", *s).stdout == b""
    out = tmp_path / "out.bin"
    cli.ok("get", "docs/a.bin", "-o", str(out), *s)
    assert out.read_bytes() == BINARY

    assert cli.ok("meta", "docs/a.bin", *s).out == "n:=3\ntype=binary\n"
    updated = cli.ok("meta", "docs/a.bin", "--set", "reviewed:=true", "--set", "by=ann",
                     "--json", *s).out
    assert json.loads(updated) == {"n": 3, "type": "binary", "reviewed": True, "by": "ann"}

    assert cli.ok("query", "type=binary", *s).out == "docs/a.bin\n"
    assert cli.ok("query", "n:=3", *s).out == "docs/a.bin\n"
    assert cli.ok("query", "n=3", *s).out == ""  # the string "3" is not the number 3
    selected = cli.ok("query", "type=text", "--select", "tags", *s).out
    assert selected == 'docs/b.txt  {"tags": ["x"]}\n'
    everything = json.loads(cli.ok("query", "--json", *s).out)
    assert sorted(everything) == ["docs/a.bin", "docs/b.txt", "other"]
    assert everything["other"] == {}

    cli.ok("rm", "docs/a.bin", "other", *s)
    assert cli.ok("ls", *s).out == "docs/b.txt\n"


def test_put_replaces_data_and_metadata(cli, store_url):
    s = ("--store", store_url)
    cli.ok("put", "k", "--meta", "old=1", *s, input=b"first")
    cli.ok("put", "k", "--meta", "new=2", *s, input=b"second")
    assert cli.ok("get", "k", *s).stdout == b"second"
    assert json.loads(cli.ok("meta", "k", "--json", *s).out) == {"new": "2"}


def test_memory_store_commands(cli):
    # Each process has its own memory store: writes succeed and vanish.
    cli.ok("put", "k", "--store", "memory:", input=b"x")
    assert cli.ok("ls", "--store", "memory:").out == ""
    result = cli("get", "k", "--store", "memory:")
    assert result.returncode == 1 and "no such key: 'k'" in result.err


def test_default_store_lives_in_the_temporary_home(cli, env):
    cli.ok("put", "k", input=b"v")
    database = Path(env["HOME"]) / ".local" / "share" / "encore" / "store.db"
    if sys.platform.startswith("linux"):
        assert database.is_file()
    assert cli.ok("get", "k").stdout == b"v"
    assert cli.ok("get", "k", "--store", "default:").stdout == b"v"


def test_environment_variable_names_the_default_store(cli, tmp_path):
    url = f"sqlite://{tmp_path}/env.db"
    cli.ok("put", "k", input=b"v", **{ENV_VAR: url})
    assert open_store(url).to_bytes("k") == b"v"
    assert cli.ok("ls", **{ENV_VAR: url}).out == "k\n"


def test_store_option_before_the_command(cli, tmp_path):
    url = f"sqlite://{tmp_path}/x.db"
    cli.ok("--store", url, "put", "k", input=b"v")
    assert cli.ok("--store", url, "get", "k").stdout == b"v"


def test_every_command_has_help_with_an_example(cli):
    for command in ("ls", "get", "put", "meta", "query", "rm", "cp", "serve", "passwd"):
        result = cli.ok(command, "--help")
        assert "example:" in result.out, command
        assert "usage: encore-store " + command in " ".join(result.out.split())


def test_console_script_runs_the_same_main(env, tmp_path):
    script = Path(sys.executable).with_name("encore-store")
    if not script.exists():
        pytest.skip("the encore-store console script is not installed in this environment")
    result = subprocess.run([str(script), "ls", "--store", "memory:"], env=env, cwd=tmp_path,
                            capture_output=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0 and result.stdout == b""


# -- bad input: clear message, right exit code, store unchanged ------------------------------------


@pytest.fixture
def filled(tmp_path):
    """A sqlite store holding one key; the bad-input tests check it stays so."""
    url = f"sqlite://{tmp_path}/filled.db"
    store = open_store(url)
    store.set("keep", (io.BytesIO(b"original"), {"a": "1"}))
    store.disconnect()
    return url


def assert_unchanged(url: str) -> None:
    store = open_store(url)
    assert sorted(store.query_keys()) == ["keep"]
    assert store.to_bytes("keep") == b"original"
    assert store.get_metadata("keep") == {"a": "1"}
    store.disconnect()


@pytest.mark.parametrize("args", [
    ("get", "nope"),
    ("get", "nope", "-o", "out.bin"),
    ("meta", "nope"),
    ("meta", "nope", "--set", "a=2"),
    ("rm", "keep", "nope"),
])
def test_unknown_key_exits_1(cli, filled, args):
    result = cli(*args, "--store", filled)
    assert result.returncode == 1
    assert "nope" in result.err and result.err.startswith("encore-store: error: no such key")
    assert result.stdout == b""
    assert not (cli.cwd / "out.bin").exists()
    assert_unchanged(filled)


def test_unknown_key_in_a_directory_store_exits_1(cli, tmp_path):
    path = tmp_path / "fs"
    open_store(path, create=True).from_bytes("keep", b"x")
    result = cli("get", "nope", "--store", str(path))
    assert result.returncode == 1 and "no such key: 'nope'" in result.err


BAD_METADATA = [
    (("put", "keep", "--meta", "novalue"), "expected NAME=VALUE"),
    (("put", "keep", "--meta", "=x"), "expected NAME=VALUE"),
    (("put", "keep", "--meta", "n:={bad json"), "not JSON"),
    (("put", "keep", "--meta-json", "[1, 2]"), "expected a JSON object"),
    (("put", "keep", "--meta-json", "{"), "bad --meta JSON"),
    (("meta", "keep", "--set", "oops"), "expected NAME=VALUE"),
    (("query", "noequals"), "expected NAME=VALUE"),
    (("query", "select=x"), "cannot query on the metadata name 'select'"),
]


def test_bad_metadata_syntax_exits_2_in_a_subprocess(cli, filled):
    args, message = BAD_METADATA[0]
    result = cli(*args, "--store", filled, input=b"new data")
    assert result.returncode == 2 and message in result.err
    assert_unchanged(filled)


@pytest.mark.parametrize("args, message", BAD_METADATA)
def test_bad_metadata_syntax_exits_2(filled, args, message, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"new data")))
    assert main([*args, "--store", filled]) == 2
    assert message in capsys.readouterr().err
    assert_unchanged(filled)


def test_unreadable_file_exits_2(cli, filled, tmp_path):
    missing = cli("put", "keep", str(tmp_path / "missing.bin"), "--store", filled)
    assert missing.returncode == 2 and "cannot read" in missing.err
    directory = cli("put", "keep", str(tmp_path), "--store", filled)
    assert directory.returncode == 2 and "cannot read" in directory.err
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked = tmp_path / "locked.bin"
        locked.write_bytes(b"secret")
        locked.chmod(0)
        assert main(["put", "keep", str(locked), "--store", filled]) == 2
    assert_unchanged(filled)


BAD_URLS = [
    ("ftp://example.com/x", "unknown store URL scheme 'ftp:'"),
    ("sqlite:///tmp/x.db?colour=red", "unknown option 'colour'"),
    ("memory:?readonly=maybe", "must be a boolean"),
]


def test_bad_store_url_exits_2_in_a_subprocess(cli):
    url, message = BAD_URLS[0]
    result = cli("put", "k", "--store", url, input=b"x")
    assert result.returncode == 2 and message in result.err and "accepted: memory:" in result.err


@pytest.mark.parametrize("url, message", BAD_URLS)
@pytest.mark.parametrize("args", [("ls",), ("get", "k"), ("cp", "memory:")])
def test_bad_store_url_exits_2(url, message, args, capsys):
    assert main([*args, url] if args[0] == "cp" else [*args, "--store", url]) == 2
    assert message in capsys.readouterr().err


def test_unknown_command_and_missing_arguments_exit_2(cli):
    assert cli("frobnicate").returncode == 2
    assert cli("get").returncode == 2
    assert cli("cp", "memory:").returncode == 2


def test_missing_directory_store_is_not_created(cli, tmp_path):
    result = cli("ls", "--store", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "does not exist" in result.err
    assert not (tmp_path / "nowhere").exists()


def test_write_to_a_read_only_store_fails(filled, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"new")))
    assert main(["put", "keep", "--store", f"readonly:{filled}"]) == 1
    assert "read-only" in capsys.readouterr().err
    assert_unchanged(filled)


# -- cp ------------------------------------------------------------------------------------------


@pytest.fixture
def source(tmp_path):
    url = f"sqlite://{tmp_path}/src.db"
    store = open_store(url)
    store.set("a/1", (io.BytesIO(b"one"), {"n": 1}))
    store.set("a/2", (io.BytesIO(BINARY), {"n": 2, "tags": ["x", "y"]}))
    store.set("b/3", (io.BytesIO(b""), {}))
    store.disconnect()
    return url


def contents(url: str) -> dict[str, tuple[bytes, dict]]:
    store = open_store(url)
    try:
        return {key: (store.to_bytes(key), store.get_metadata(key))
                for key in store.query_keys()}
    finally:
        store.disconnect()


def test_cp_sqlite_to_new_directory_store_then_resume(cli, source, tmp_path):
    target = str(tmp_path / "backup")
    result = cli.ok("cp", source, target, "--create")
    assert contents(target) == contents(source)
    # Not a TTY: plain progress lines, no control characters.
    assert "Copying 3 keys:" in result.err and "Copying 3 keys: Done." in result.err
    assert "\x1b" not in result.err and "\r" not in result.err
    assert "copied 3 keys" in result.err and "skipped 0 unchanged" in result.err

    # Resumable: keys whose size and metadata match are skipped.
    store = open_store(target)
    store.update_metadata("a/1", {"n": 100})
    store.delete("b/3")
    store.disconnect()
    again = cli.ok("cp", source, target)
    assert "copied 2 keys" in again.err and "skipped 1 unchanged" in again.err
    assert contents(target) == contents(source)


def test_cp_glob_and_into_sqlite(cli, source, tmp_path):
    target = f"sqlite://{tmp_path}/dst.db"
    cli.ok("cp", source, target, "a/*", "--quiet")
    assert contents(target) == {k: v for k, v in contents(source).items() if k.startswith("a/")}


def test_cp_quiet_prints_nothing(cli, source, tmp_path):
    result = cli.ok("cp", source, str(tmp_path / "q"), "--create", "-q")
    assert result.stdout == b"" and result.stderr == b""


def test_cp_dry_run_changes_nothing(cli, source, tmp_path):
    target = tmp_path / "dry"
    result = cli.ok("cp", source, str(target), "--create", "--dry-run")
    assert not target.exists()
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines] == ["copy", "copy", "copy"]
    assert "would copy 3 keys" in result.err

    existing = f"sqlite://{tmp_path}/existing.db"
    cli.ok("cp", source, existing, "a/1", "-q")
    before = contents(existing)
    result = cli.ok("cp", source, existing, "--dry-run")
    assert contents(existing) == before
    assert result.out.splitlines()[0].startswith("skip (unchanged)  a/1")


def test_cp_missing_destination_without_create(cli, source, tmp_path):
    result = cli("cp", source, str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "does not exist" in result.err
    assert not (tmp_path / "nowhere").exists()


def test_cp_large_value_shows_bytes_progress(cli, tmp_path):
    source = f"sqlite://{tmp_path}/big.db"
    store = open_store(source)
    payload = os.urandom(1024) * (LARGE_VALUE // 1024 + 1)
    store.set("big", (io.BytesIO(payload), {"kind": "big"}))
    store.disconnect()
    target = str(tmp_path / "bigcopy")
    result = cli.ok("cp", source, target, "--create")
    assert "big (8.0 MiB):" in result.err and "big (8.0 MiB): Done." in result.err
    assert open_store(target).to_bytes("big") == payload


def test_copy_keys_reports_progress_events():
    src, dst = DictMemoryStore(), DictMemoryStore()
    src.from_bytes("x", b"1")
    src.from_bytes("y", b"22")
    manager = EventManager()
    events = []
    from encore.events.api import ProgressEvent

    manager.connect(ProgressEvent, events.append)
    report = copy_keys(src, dst, event_manager=manager)
    assert report.copied == ["x", "y"] and report.bytes_copied == 3
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["ProgressStartEvent", "ProgressStepEvent", "ProgressStepEvent",
                     "ProgressEndEvent"]
    assert events[0].steps == 2 and [e.step for e in events[1:3]] == [1, 2]
    assert events[2].message == "2/2 keys, 3 B"


def test_copy_progress_draws_bars_on_a_terminal():
    src, dst = DictMemoryStore(), DictMemoryStore()
    src.from_bytes("small", b"1")
    src.from_bytes("large", b"x" * LARGE_VALUE)
    screen = io.StringIO()
    display = copy_display(stream=screen, tty=True)
    try:
        copy_keys(src, dst, event_manager=display.event_manager)
    finally:
        display.close()
    drawn = screen.getvalue()
    assert "Copying 2 keys:" in drawn and "large (8.0 MiB):" in drawn
    assert "[" + "*" * 10 in drawn and "2/2 keys, 8.0 MiB" in drawn
    assert drawn.count("Done.") == 2
    assert dst.to_bytes("large") == b"x" * LARGE_VALUE


class _FailingStream:
    """Gives a few KiB, then fails like a dying disk."""

    def __init__(self, fail_after: int) -> None:
        self.left = fail_after

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("disk on fire")
        self.left -= 1
        return b"x" * 1024

    def close(self) -> None:
        return None


class _FailingValue(Value):
    size = None

    def __init__(self) -> None:
        self._data = _FailingStream(3)

    @property
    def data(self):
        return self._data

    @property
    def metadata(self):
        return {}

    def range(self, start=None, end=None):
        return io.BytesIO(b"")


class _BrokenSource:
    """A source whose second value fails half-way through."""

    def __init__(self, store) -> None:
        self.store = store

    def query_keys(self):
        return iter(["a", "b"])

    def get(self, key):
        return _FailingValue() if key == "b" else self.store.get(key)


def test_copy_keys_is_one_transaction_on_the_destination(tmp_path):
    src = DictMemoryStore()
    src.from_bytes("a", b"new")
    dst = open_store(f"sqlite://{tmp_path}/t.db")
    dst.from_bytes("a", b"old")
    with pytest.raises(OSError, match="disk on fire"):
        copy_keys(_BrokenSource(src), dst)
    # The whole copy rolled back: 'a' still has its old value, 'b' was never made.
    assert dst.to_bytes("a") == b"old"
    assert not dst.exists("b")


def test_main_in_process_returns_exit_codes(capsys):
    assert main(["ls", "--store", "memory:"]) == 0
    assert main(["get", "x", "--store", "memory:"]) == 1
    assert "no such key" in capsys.readouterr().err
    assert main(["ls", "--store", "nope://"]) == 2
    assert main(["--bogus"]) == 2


# -- serve ---------------------------------------------------------------------------------------


class Server:
    """``encore-store serve`` in a subprocess; the URL is read from its first line."""

    def __init__(self, cli: Cli, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "encore.storage", "serve", *args, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env, cwd=cli.cwd)
        first = self.banner = self._readline_bounded()
        if " at http://" not in first:
            self.stop()
            raise AssertionError(f"serve did not start: {first!r} {self.process.stderr.read()!r}")
        self.url = first.split(" at ", 1)[1].split()[0].rstrip("/")
        self.host = self.url.removeprefix("http://")

    def _readline_bounded(self) -> str:
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(TIMEOUT)
        return line[0].decode() if line else ""

    def stop(self) -> tuple[int, str]:
        if self.process.stdout.closed:
            return self.process.returncode, ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
        # Read through the buffered reader: it may hold lines read with the banner.
        out = self.banner + self.process.stdout.read().decode()
        self.process.stdout.close()
        self.process.stderr.close()
        return self.process.returncode, out


@pytest.fixture
def serve(cli):
    servers: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(cli, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_serve_memory_store_and_use_it_with_every_command(cli, serve, tmp_path):
    server = serve("memory:")
    rw = ("--store", f"encore+http://{server.host}/")
    cli.ok("put", "k/one", "--meta", "type=t", *rw, input=BINARY)
    cli.ok("put", "k/two", "--meta", "type=u", *rw, input=b"2")
    assert cli.ok("ls", *rw).out == "k/one\nk/two\n"
    assert cli.ok("get", "k/one", *rw).stdout == BINARY
    assert cli.ok("query", "type=t", *rw).out == "k/one\n"
    assert "x=y" in cli.ok("meta", "k/one", "--set", "x=y", *rw).out
    # The static view of the same server.
    static = ("--store", f"http://{server.host}/?poll=0")
    assert cli.ok("get", "k/one", *static).stdout == BINARY
    assert cli.ok("ls", "-l", *static).out.count("\n") == 2
    read_only = cli("put", "k/three", *static, input=b"3")
    assert read_only.returncode == 1 and "read-only" in read_only.err
    # cp from the server into a local directory store.
    cli.ok("cp", f"encore+http://{server.host}/", str(tmp_path / "copy"), "--create", "-q")
    assert open_store(str(tmp_path / "copy")).to_bytes("k/one") == BINARY
    cli.ok("rm", "k/one", *rw)
    assert cli.ok("ls", *rw).out == "k/two\n"
    missing = cli("get", "k/one", *rw)
    assert missing.returncode == 1 and "no such key" in missing.err
    code, out = server.stop()
    assert code == 0 and "Stopped." in out


def test_serve_prints_the_urls_to_use(serve, store_url):
    server = serve(store_url)
    code, out = server.stop()
    assert code == 0
    assert f"encore+http://{server.host}/" in out
    assert f"DynamicURLStore('{server.url}/store', '{server.url}/query')" in out
    assert f"StaticURLStore('{server.url}/', 'data/', 'index.json')" in out


def test_serve_read_only(cli, serve, filled):
    server = serve(filled, "--read-only")
    rw = ("--store", f"encore+http://{server.host}/")
    assert cli.ok("get", "keep", *rw).stdout == b"original"
    result = cli("put", "keep", *rw, input=b"changed")
    assert result.returncode == 1
    server.stop()
    assert_unchanged(filled)


def test_serve_with_users(cli, serve, filled, tmp_path):
    users = str(tmp_path / "users")
    cli.ok("passwd", "ann", "--store", f"{users}?create=1", "--password-stdin",
           input=b"s3cret\n")
    server = serve(filled, "--users", users)
    good = ("--store", f"encore+http://ann:s3cret@{server.host}/")
    assert cli.ok("get", "keep", *good).stdout == b"original"
    assert cli.ok("get", "keep", *good).stdout == b"original"  # the cached check
    for credentials in ("ann:wrong@", "bob:s3cret@", ""):
        result = cli("get", "keep", "--store", f"encore+http://{credentials}{server.host}/")
        assert result.returncode == 1, credentials
    server.stop()


def test_passwd_refuses_an_empty_password(cli, tmp_path):
    result = cli("passwd", "ann", "--store", f"{tmp_path}/u?create=1", "--password-stdin",
                 input=b"\n")
    assert result.returncode == 2 and "must not be empty" in result.err


def test_serve_on_a_busy_port_fails_cleanly(cli, serve):
    server = serve("memory:")
    port = server.host.rsplit(":", 1)[1]
    result = cli("serve", "memory:", "--port", port)
    assert result.returncode == 1 and "cannot listen" in result.err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_get_into_a_closed_pipe_is_quiet(cli, tmp_path, env):
    url = f"sqlite://{tmp_path}/p.db"
    store = open_store(url)
    store.from_bytes("big", os.urandom(4 * LARGE_VALUE))
    store.disconnect()
    command = (f"'{sys.executable}' -m encore.storage get big --store '{url}' "
               "| head -c 10 >/dev/null")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env,
                            capture_output=True, timeout=TIMEOUT, check=False)
    assert b"Traceback" not in result.stderr
