"""A to-do list kept in any encore key-value store.

:class:`TodoList` is written strictly against the abstract store API
(:class:`encore.storage.abstract_store.AbstractStore`): it never asks which
store it has been given. Whether the items live in memory, in a directory or in
an SQLite database is decided once, by whoever creates the store (see
``todo.py`` beside this module).

Layout in the store: one key per item, ``todo-000001``, ``todo-000002``, ...
The data is the item's text (UTF-8); the metadata says what it is::

    {"type": "todo-item", "number": 1, "done": False,
     "created": "2024-05-01T12:00:00+00:00"}

so listing is a metadata query (``store.query(type="todo-item")``) and
completing an item is a metadata update.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["ITEM_TYPE", "Item", "NoSuchItem", "TodoList"]

#: The ``type`` metadata value that marks to-do items in the store.
ITEM_TYPE = "todo-item"


class NoSuchItem(KeyError):
    """There is no item with the given number."""

    def __str__(self) -> str:
        return f"no item #{self.args[0]}"


@dataclass(frozen=True)
class Item:
    """One to-do item, as read from the store."""

    number: int
    text: str
    done: bool
    created: str


def _key(number: int) -> str:
    return f"todo-{number:06d}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class TodoList:
    """A to-do list stored in ``store``, which must already be connected.

    Parameters
    ----------
    store : AbstractStore
        Any writable encore store.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def _item(self, key: str, metadata: dict[str, Any]) -> Item:
        text = self.store.to_bytes(key).decode("utf-8")
        return Item(
            number=int(metadata["number"]),
            text=text,
            done=bool(metadata.get("done", False)),
            created=str(metadata.get("created", "")),
        )

    def _metadata(self, number: int) -> dict[str, Any]:
        key = _key(number)
        if not self.store.exists(key):
            raise NoSuchItem(number)
        return self.store.get_metadata(key)

    def add(self, text: str) -> Item:
        """Add a new, not yet done, item and return it."""
        text = text.strip()
        if not text:
            raise ValueError("a to-do item needs some text")
        with self.store.transaction(f"Adding to-do item {text!r}"):
            numbers = [int(md["number"]) for _, md in self.store.query(["number"], type=ITEM_TYPE)]
            number = max(numbers, default=0) + 1
            metadata = {"type": ITEM_TYPE, "number": number, "done": False, "created": _now()}
            self.store.set(_key(number), (io.BytesIO(text.encode("utf-8")), metadata))
        return Item(number, text, False, metadata["created"])

    def items(self, pending_only: bool = False) -> list[Item]:
        """Return the items in number order; only the pending ones if asked."""
        criteria: dict[str, Any] = {"type": ITEM_TYPE}
        if pending_only:
            criteria["done"] = False
        found = [self._item(key, metadata) for key, metadata in self.store.query(**criteria)]
        return sorted(found, key=lambda item: item.number)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items())

    def complete(self, number: int) -> Item:
        """Mark item ``number`` as done and return it."""
        self._metadata(number)
        self.store.update_metadata(_key(number), {"done": True, "completed": _now()})
        return self._item(_key(number), self.store.get_metadata(_key(number)))

    def remove(self, number: int) -> Item:
        """Delete item ``number`` and return what it was."""
        item = self._item(_key(number), self._metadata(number))
        self.store.delete(_key(number))
        return item

    def clear_done(self) -> int:
        """Delete every completed item; return how many were deleted."""
        with self.store.transaction("Clearing completed to-do items"):
            keys = list(self.store.query_keys(type=ITEM_TYPE, done=True))
            for key in keys:
                self.store.delete(key)
        return len(keys)
