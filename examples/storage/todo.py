"""A to-do list on the command line, kept in the encore store of your choice.

The application logic (``todo_list.py``) only speaks the store API; this file
is the one place that picks a back end. Switching from memory to a directory
to an SQLite database is a command-line option, not a code change::

    python examples/storage/todo.py --store file --location ~/todo add "buy milk"
    python examples/storage/todo.py --store sqlite --location todo.db list

Commands: ``add TEXT``, ``list [--pending]``, ``done N``, ``remove N`` and
``clear`` (remove completed items). Several commands may be given in one run,
separated by ``+``; with ``--store memory`` (nothing survives the run) that is
the only way to see more than one::

    python examples/storage/todo.py --store memory add milk + add eggs + done 1 + list

Errors (an unknown item, a bad location) are reported on standard error with
exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from todo_list import NoSuchItem, TodoList

#: Where each persistent store lives when ``--location`` is not given.
DEFAULT_LOCATIONS = {"file": "todo-store", "sqlite": "todo.sqlite"}


def open_store(kind: str, location: str | None) -> Any:
    """Create (but do not connect) the store the user asked for."""
    if kind == "memory":
        from encore.storage.dict_memory_store import DictMemoryStore

        return DictMemoryStore()
    location = location or DEFAULT_LOCATIONS[kind]
    if kind == "file":
        from encore.storage.filesystem_store import FileSystemStore, init_shared_store

        os.makedirs(location, exist_ok=True)
        # ".FSStore" is the documented default magic file of a store directory.
        if not os.path.exists(os.path.join(location, ".FSStore")):
            init_shared_store(location)
        return FileSystemStore(location)
    if kind == "sqlite":
        from encore.storage.sqlite_store import SqliteStore

        return SqliteStore(location)
    raise ValueError(f"unknown store kind {kind!r}")


def _add(todo: TodoList, args: argparse.Namespace) -> None:
    item = todo.add(" ".join(args.text))
    print(f"Added #{item.number}: {item.text}")


def _list(todo: TodoList, args: argparse.Namespace) -> None:
    items = todo.items(pending_only=args.pending)
    if not items:
        print("Nothing to do.")
    for item in items:
        print(f"#{item.number} [{'x' if item.done else ' '}] {item.text}")


def _done(todo: TodoList, args: argparse.Namespace) -> None:
    item = todo.complete(args.number)
    print(f"Completed #{item.number}: {item.text}")


def _remove(todo: TodoList, args: argparse.Namespace) -> None:
    item = todo.remove(args.number)
    print(f"Removed #{item.number}: {item.text}")


def _clear(todo: TodoList, args: argparse.Namespace) -> None:
    count = todo.clear_done()
    print(f"Removed {count} completed item{'' if count == 1 else 's'}.")


def build_parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The option parser and the parser of one command."""
    options = argparse.ArgumentParser(
        prog="todo.py",
        description="A to-do list kept in an encore key-value store.",
        epilog="Separate several commands with '+'.",
    )
    options.add_argument(
        "--store", choices=["memory", "file", "sqlite"], default="file",
        help="where to keep the list (default: file)",
    )
    options.add_argument(
        "--location",
        help="directory (file) or database file (sqlite); "
        f"default {DEFAULT_LOCATIONS['file']!r} or {DEFAULT_LOCATIONS['sqlite']!r}",
    )
    options.add_argument(
        "command", nargs=argparse.REMAINDER, help="add | list | done | remove | clear"
    )

    commands = argparse.ArgumentParser(prog="todo.py COMMAND")
    sub = commands.add_subparsers(dest="name", required=True)
    add = sub.add_parser("add", help="add an item")
    add.add_argument("text", nargs="+")
    add.set_defaults(run=_add)
    listing = sub.add_parser("list", help="show the items")
    listing.add_argument("--pending", action="store_true", help="only items not yet done")
    listing.set_defaults(run=_list)
    for name, run, text in (
        ("done", _done, "mark an item done"),
        ("remove", _remove, "delete an item"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("number", type=int)
        command.set_defaults(run=run)
    sub.add_parser("clear", help="delete completed items").set_defaults(run=_clear)
    return options, commands


def _split(words: list[str]) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    for word in words:
        if word == "+":
            groups.append([])
        else:
            groups[-1].append(word)
    return groups


def main(argv: list[str] | None = None) -> int:
    options, commands = build_parsers()
    args = options.parse_args(argv)
    if not args.command:
        options.error("a command is needed (add, list, done, remove or clear)")
    # Parse every command before touching the store, so a typo changes nothing.
    parsed = [commands.parse_args(group) for group in _split(args.command)]

    def fail(message: str) -> int:
        print(f"todo.py: error: {message}", file=sys.stderr)
        return 1

    try:
        store = open_store(args.store, args.location)
    except Exception as exc:
        # The command-line boundary: OSError, ImportError or a store's own
        # error (e.g. FileSystemStoreError) all become one readable message.
        return fail(f"cannot open the {args.store} store: {exc}")
    store.connect()
    try:
        todo = TodoList(store)
        for command in parsed:
            run: Callable[[TodoList, argparse.Namespace], None] = command.run
            try:
                run(todo, command)
            except NoSuchItem as exc:
                return fail(str(exc))
            except ValueError as exc:
                return fail(str(exc))
    finally:
        store.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
