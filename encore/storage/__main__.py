"""The ``encore-store`` command line: list, read, write, query, copy and serve key-value stores.

Run it as ``encore-store`` (a console script) or ``python -m encore.storage``.
Every store is named by a URL understood by
:func:`~encore.storage.store_url.open_store` (``memory:``,
``sqlite:///abs/path.db``, a directory path, ``http://host/``,
``encore+http://host:port/``, ...); without ``--store`` a command works on
the default store (``$ENCORE_STORE``, else a sqlite store in the user's data
directory).

Subcommands::

    ls [GLOB] [-l]                          list keys (with size, time, metadata)
    get KEY [-o FILE]                       write a value's bytes to stdout or a file
    put KEY [FILE|-] [--meta N=V]...        store a file (or stdin) with metadata
    meta KEY [--set N=V]... [--json]        show or update a key's metadata
    query N=V... [--select A,B] [--json]    keys whose metadata matches
    rm KEY...                               delete keys
    cp SRC_URL DST_URL [GLOB] [--dry-run]   copy keys between stores, with progress
    serve STORE_URL [--port 8080]           serve a store over HTTP
    passwd USER --store USERS_URL           set a password for serve --users

Metadata values are written ``NAME=VALUE`` for a string and ``NAME:=JSON``
for any JSON value (``--meta size:=3``, ``--meta tags:='["a", "b"]'``).
Values are bytes end to end: nothing is decoded and no newline is added.

The copying engine of ``cp`` is :mod:`encore.storage.cli_copy`.

Exit status: 0 on success, 1 when a key is not found or the operation fails
(message on standard error), 2 for a usage error (bad arguments, store URL,
metadata syntax or unreadable input file).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .abstract_store import DEFAULT_BUFFER_SIZE, ReadOnlyStoreError, StoreError
from .cli_copy import _show_key, _value_stat, copy_display, copy_keys, human_size
from .store_url import ENV_VAR, StoreURLError, default_store_url, open_store
from .utils import buffer_iterator

__all__ = ["main"]

PROG = "encore-store"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(ValueError):
    """Bad command-line input; reported with exit status 2 and nothing changed."""


# ---------------------------------------------------------------------------
# Small helpers


def _parse_assignment(text: str, what: str) -> tuple[str, Any]:
    """Parse ``NAME=VALUE`` (a string) or ``NAME:=JSON`` (any JSON value)."""
    name, sep, value = text.partition("=")
    if not sep or not name or name == ":":
        raise UsageError(f"bad {what} {text!r}: expected NAME=VALUE (a string) "
                         "or NAME:=JSON (any JSON value)")
    if name.endswith(":"):
        name = name[:-1]
        try:
            return name, json.loads(value)
        except json.JSONDecodeError as error:
            raise UsageError(f"bad {what} {text!r}: the value after ':=' is not JSON "
                             f"({error.msg})") from None
    return name, value


def _parse_metadata(assignments: Sequence[str] | None, json_texts: Sequence[str] | None,
                    what: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for text in json_texts or ():
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"bad {what} JSON {text!r}: {error.msg}") from None
        if not isinstance(value, dict):
            raise UsageError(f"bad {what} JSON {text!r}: expected a JSON object")
        metadata.update(value)
    for text in assignments or ():
        name, value = _parse_assignment(text, what)
        metadata[name] = value
    return metadata


def _format_assignment(name: str, value: Any) -> str:
    if isinstance(value, str):
        return f"{name}={value}"
    return f"{name}:={json.dumps(value, sort_keys=True)}"


def _stdout() -> Any:
    return sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout


# ---------------------------------------------------------------------------
# cp


def _format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------
# serve


def _serve(args: argparse.Namespace) -> int:
    from .server import StoreServer, UserRecordChecker

    options: dict[str, Any] = {"read_only": args.read_only}
    if args.users is not None:
        options["authenticate"] = UserRecordChecker(open_store(args.users))
    store = open_store(args.store_url)
    try:
        server = StoreServer(store, args.host, args.port, **options)
    except OSError as error:
        raise StoreError(f"cannot listen on {args.host}:{args.port}: {error}") from error
    host = server.url.removeprefix("http://")
    if args.users is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"{PROG}: warning: serving {args.store_url} on {args.host} to anyone who can "
              "reach it, without authentication (see --users and --read-only)",
              file=sys.stderr, flush=True)
    mode = "read-only" if server.app.read_only else "read-write"
    lines = [
        f"Serving {args.store_url} ({mode}) at {server.url}/  -- Ctrl-C to stop",
        f"  read with:   {PROG} ls --store http://{host}/",
        f"  read-write:  {PROG} ls --store encore+http://{host}/",
        f"  in Python:   DynamicURLStore({server.base_url!r}, {server.query_url!r})",
        f"               StaticURLStore({server.static_url!r}, 'data/', 'index.json')",
    ]

    def stop(signum: int, frame: Any) -> NoReturn:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        # Printed inside the try: a client may stop us as soon as it reads it.
        print("\n".join(lines), flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        store.disconnect()
    print("Stopped.", flush=True)
    return EXIT_OK


# ---------------------------------------------------------------------------
# The commands


def _open(args: argparse.Namespace) -> Any:
    return open_store(getattr(args, "store", None))


def _cmd_ls(args: argparse.Namespace) -> int:
    store = _open(args)
    keys = sorted(store.glob(args.pattern) if args.pattern is not None else store.query_keys())
    out = sys.stdout
    if not args.long:
        for key in keys:
            out.write(_show_key(key) + "\n")
        return EXIT_OK
    for key in keys:
        try:
            metadata = store.get_metadata(key)
            size, modified = _value_stat(store, key)
        except KeyError:
            continue  # deleted while listing
        size_text = "-" if size is None else str(size)
        out.write(f"{size_text:>12}  {_format_time(modified):20}  {_show_key(key)}  "
                  f"{json.dumps(metadata, sort_keys=True)}\n")
    return EXIT_OK


def _cmd_get(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.output is not None:
        store.to_file(args.key, args.output)
        return EXIT_OK
    value = store.get(args.key)
    out = _stdout()
    with value as data:
        for chunk in buffer_iterator(data, DEFAULT_BUFFER_SIZE):
            out.write(chunk)
    out.flush()
    return EXIT_OK


def _cmd_put(args: argparse.Namespace) -> int:
    metadata = _parse_metadata(args.meta, args.meta_json, "--meta")
    source = args.file
    with contextlib.ExitStack() as stack:
        if source == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise UsageError("no FILE given and standard input is a terminal; "
                                 "give a FILE or pipe the data in")
            stream = sys.stdin.buffer
        else:
            try:
                stream = stack.enter_context(open(source, "rb"))
            except OSError as error:
                raise UsageError(f"cannot read {source!r}: {error.strerror or error}") from None
            if os.path.isdir(source):
                raise UsageError(f"cannot read {source!r}: it is a directory")
        store = _open(args)
        store.set(args.key, (stream, metadata))
    return EXIT_OK


def _cmd_meta(args: argparse.Namespace) -> int:
    updates = _parse_metadata(args.set, args.set_json, "--set")
    store = _open(args)
    if updates:
        store.update_metadata(args.key, updates)
    metadata = store.get_metadata(args.key)
    if args.json:
        print(json.dumps(metadata, sort_keys=True))
    else:
        for name in sorted(metadata):
            print(_format_assignment(name, metadata[name]))
    return EXIT_OK


def _cmd_query(args: argparse.Namespace) -> int:
    criteria: dict[str, Any] = {}
    for text in args.criteria:
        name, value = _parse_assignment(text, "criterion")
        criteria[name] = value
    if "select" in criteria:
        raise UsageError("cannot query on the metadata name 'select' (it is the name of "
                         "query's own argument)")
    select = None
    if args.select is not None:
        select = [name.strip() for name in args.select.split(",") if name.strip()]
    store = _open(args)
    results = sorted(store.query(select, **criteria), key=lambda item: item[0])
    if args.json:
        print(json.dumps(dict(results), sort_keys=True))
    elif select is not None:
        for key, metadata in results:
            print(f"{_show_key(key)}  {json.dumps(metadata, sort_keys=True)}")
    else:
        for key, _ in results:
            print(_show_key(key))
    return EXIT_OK


def _cmd_rm(args: argparse.Namespace) -> int:
    store = _open(args)
    missing = [key for key in args.keys if not store.exists(key)]
    if missing:
        # Delete nothing rather than half of what was asked.
        _error(f"no such key{'s' if len(missing) > 1 else ''}: "
               f"{', '.join(map(repr, missing))}; nothing deleted")
        return EXIT_FAILED
    with store.transaction(f"{PROG} rm"):
        for key in dict.fromkeys(args.keys):
            store.delete(key)
    return EXIT_OK


def _cmd_cp(args: argparse.Namespace) -> int:
    src = open_store(args.src_url)
    if args.dry_run:
        try:
            dst = open_store(args.dst_url)
        except FileNotFoundError:
            if not args.create:
                raise
            # The destination would be created empty: compare against nothing.
            dst = open_store("memory:")
    else:
        dst = open_store(args.dst_url, **({"create": True} if args.create else {}))
    display = None
    show_progress = not args.quiet and not args.dry_run
    if show_progress:
        display = copy_display()

    def on_key(action: str, key: str, size: int | None) -> None:
        if args.dry_run:
            label = {"copy": "copy", "skip": "skip (unchanged)", "vanished": "vanished"}[action]
            print(f"{label:17} {_show_key(key)}  ({human_size(size)})", flush=True)

    try:
        report = copy_keys(src, dst, args.pattern, dry_run=args.dry_run, on_key=on_key,
                           event_manager=None if display is None else display.event_manager)
    finally:
        if display is not None:
            display.close()
    if not args.quiet:
        print(report.summary(args.dry_run), file=sys.stderr, flush=True)
    return EXIT_OK


def _cmd_passwd(args: argparse.Namespace) -> int:
    from .simple_auth_store import set_user_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"New password for {args.user}: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the passwords differ")
    if not password:
        raise UsageError("the password must not be empty")
    store = _open(args)
    set_user_password(store, args.user, password)
    return EXIT_OK


# ---------------------------------------------------------------------------
# The parser


def _build_parser() -> argparse.ArgumentParser:
    default_help = (f"the store URL (default: ${ENV_VAR}, else a sqlite store in your "
                    "data directory); e.g. memory:, sqlite:///abs/path.db, ./dir, "
                    "http://host:port/, encore+http://host:port/")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", default=argparse.SUPPRESS, help=default_help)

    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List, read, write, query, copy and serve encore key-value stores.",
        epilog=("example:\n"
                f"  {PROG} put notes.txt ./notes.txt --meta type=text\n"
                f"  {PROG} ls -l\n"
                f"  {PROG} cp default: ./backup --create\n\n"
                "exit status: 0 ok, 1 key not found or operation failed, 2 usage error\n"
                f"default store: {default_store_url()}"))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, example: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, parents=[common], help=help, description=help + ".",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="example:\n  " + example.replace("\n", "\n  "))

    ls = command("ls", "list the keys of a store",
                 f"{PROG} ls -l 'reports/*' --store sqlite:///tmp/store.db")
    ls.add_argument("pattern", nargs="?", metavar="GLOB",
                    help="only keys matching this pattern ('*' also matches '/')")
    ls.add_argument("-l", "--long", action="store_true",
                    help="also show size, modification time (UTC) and metadata")
    ls.set_defaults(run=_cmd_ls)

    get = command("get", "write the bytes of a key to standard output or a file",
                  f"{PROG} get report.pdf -o report.pdf")
    get.add_argument("key", metavar="KEY")
    get.add_argument("-o", "--output", metavar="FILE",
                     help="write to FILE (replaced atomically) instead of standard output")
    get.set_defaults(run=_cmd_get)

    put = command("put", "store a file (or standard input) under a key, replacing its "
                  "data and metadata",
                  f"{PROG} put report.pdf ./report.pdf --meta type=pdf --meta pages:=12\n"
                  f"echo hello | {PROG} put greeting -")
    put.add_argument("key", metavar="KEY")
    put.add_argument("file", nargs="?", default="-", metavar="FILE",
                     help="the file to read; '-' (the default) reads standard input")
    put.add_argument("--meta", action="append", metavar="NAME=VALUE",
                     help="a metadata string; NAME:=JSON for any JSON value (repeatable)")
    put.add_argument("--meta-json", action="append", metavar="JSON",
                     help="metadata as a JSON object (repeatable; --meta wins)")
    put.set_defaults(run=_cmd_put)

    meta = command("meta", "show a key's metadata, after updating it with --set",
                   f"{PROG} meta report.pdf --set reviewed:=true")
    meta.add_argument("key", metavar="KEY")
    meta.add_argument("--set", action="append", metavar="NAME=VALUE",
                      help="update a metadata name (NAME:=JSON for a JSON value; repeatable)")
    meta.add_argument("--set-json", action="append", metavar="JSON",
                      help="update with a JSON object of metadata (repeatable)")
    meta.add_argument("--json", action="store_true", help="print the metadata as JSON")
    meta.set_defaults(run=_cmd_meta)

    query = command("query", "list the keys whose metadata has all the given values",
                    f"{PROG} query type=pdf pages:=12 --select type,pages")
    query.add_argument("criteria", nargs="*", metavar="NAME=VALUE",
                       help="a metadata string to match; NAME:=JSON to match a JSON value")
    query.add_argument("--select", metavar="A,B",
                       help="also show these metadata names of each key")
    query.add_argument("--json", action="store_true",
                       help="print one JSON object mapping each key to its metadata")
    query.set_defaults(run=_cmd_query)

    rm = command("rm", "delete keys (none at all if one of them is missing)",
                 f"{PROG} rm old.txt older.txt")
    rm.add_argument("keys", nargs="+", metavar="KEY")
    rm.set_defaults(run=_cmd_rm)

    cp = commands.add_parser(
        "cp", help="copy keys with their metadata from one store to another",
        description=("Copy keys, with data and metadata, from one store to another, "
                     "streaming, in one transaction of the destination, showing "
                     "progress on standard error.  Keys the destination already has "
                     "with the same size and metadata are skipped, so running the "
                     "same copy again resumes it."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"example:\n  {PROG} cp default: ./backup --create\n"
               f"  {PROG} cp sqlite:///data/a.db file:///data/b 'images/*' --dry-run")
    cp.add_argument("src_url", metavar="SRC_URL", help="the store to copy from")
    cp.add_argument("dst_url", metavar="DST_URL", help="the store to copy to")
    cp.add_argument("pattern", nargs="?", metavar="GLOB", help="only keys matching this")
    cp.add_argument("--dry-run", action="store_true",
                    help="print what would be copied or skipped; change nothing")
    cp.add_argument("--create", action="store_true",
                    help="create the destination directory store if it does not exist")
    cp.add_argument("-q", "--quiet", action="store_true",
                    help="no progress display and no summary")
    cp.set_defaults(run=_cmd_cp)

    serve = commands.add_parser(
        "serve", help="serve a store over HTTP (embedded wsgiref server)",
        description=("Serve a store with encore.storage.server on the standard "
                     "library's threaded wsgiref server, until interrupted.  It prints "
                     "the URLs for StaticURLStore (http://...) and DynamicURLStore "
                     "(encore+http://...).  For production, run "
                     "encore.storage.server.StoreApplication under a WSGI server."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"example:\n  {PROG} serve ./backup --port 8080 --read-only")
    serve.add_argument("store_url", metavar="STORE_URL", help="the store to serve")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default: 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=int, default=8080,
                       help="the port (default 8080; 0 picks a free one)")
    serve.add_argument("--read-only", action="store_true", help="refuse every write")
    serve.add_argument("--users", metavar="STORE_URL",
                       help=f"require HTTP Basic credentials checked against the user "
                            f"records in this store (see '{PROG} passwd')")
    serve.set_defaults(run=_serve)

    passwd = command("passwd", "create or change a user record for 'serve --users' (keep "
                     "user records in a store of their own, not in the served one)",
                     f"echo s3cret | {PROG} passwd alice --store ./users --password-stdin")
    passwd.add_argument("user", metavar="USER")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    passwd.set_defaults(run=_cmd_passwd)
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``encore-store`` command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (without the program name); ``sys.argv[1:]`` by default.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except KeyError as error:
        _error(f"no such key: {error.args[0]!r}" if error.args else "no such key")
        return EXIT_FAILED
    except (UsageError, StoreURLError) as error:
        _error(str(error))
        return EXIT_USAGE
    except ReadOnlyStoreError as error:
        _error(f"the store is read-only: {error}")
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (e.g. '| head'); say nothing more.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except (StoreError, OSError, ValueError, TypeError) as error:
        _error(str(error) or type(error).__name__)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
