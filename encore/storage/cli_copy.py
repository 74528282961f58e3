"""Copy keys between any two stores: the engine of ``encore-store cp``.

:func:`copy_keys` streams each value (data and metadata) from one store into
another, in one transaction of the destination, skipping keys that the
destination already holds with the same size and metadata, and reporting
progress as :mod:`encore.events` progress events.  :func:`copy_display` draws
those events with :mod:`encore.terminal`.  The helpers here are shared with
the other subcommands of :mod:`encore.storage.__main__`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from .abstract_store import DEFAULT_BUFFER_SIZE, ReadOnlyStoreError

__all__ = ["LARGE_VALUE", "CopyReport", "copy_display", "copy_keys", "human_size"]

#: Values at least this large get their own bytes progress bar.
LARGE_VALUE = 8 * DEFAULT_BUFFER_SIZE

#: The note given to the destination's transaction.
TRANSACTION_NOTE = "encore-store cp"


def _show_key(key: str) -> str:
    # Keys are arbitrary strings: keep one key per line whatever they hold.
    return key if key.isprintable() else repr(key)


def human_size(size: float | None) -> str:
    """Format a byte count as ``512 B``, ``1.5 KiB``, ``3.0 GiB``..."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _value_stat(store: Any, key: str) -> tuple[int | None, float | None]:
    """Return the size and modification time of *key*, releasing the value."""
    value = store.get(key)
    size, modified = value.size, value.modified
    # Some values open their data when made (a file); leaving the value's
    # context is the documented way to release it.
    with value:
        pass
    return size, modified


def _matcher(pattern: str | None) -> Callable[[str], bool]:
    if pattern is None:
        return lambda key: True
    # The same semantics as AbstractReadOnlyStore.glob: case-sensitive, '*' crosses '/'.
    return re.compile(fnmatch.translate(pattern), re.DOTALL).match  # type: ignore[return-value]


class CopyReport:
    """What :func:`copy_keys` did (or, in a dry run, would do).

    Attributes
    ----------
    copied, skipped, vanished : list of str
        Keys copied, skipped because the destination already had them with
        the same size and metadata, and listed by the source but gone when
        read.
    bytes_copied : int
        The number of data bytes copied.
    seconds : float
        The wall-clock duration.
    """

    def __init__(self) -> None:
        self.copied: list[str] = []
        self.skipped: list[str] = []
        self.vanished: list[str] = []
        self.bytes_copied = 0
        self.seconds = 0.0

    def summary(self, dry_run: bool = False) -> str:
        """One line describing the copy."""
        verb = "would copy" if dry_run else "copied"
        rate = ""
        if not dry_run and self.seconds >= 0.1 and self.bytes_copied:
            rate = f", {self.bytes_copied / self.seconds / 1e6:.1f} MB/s"
        text = (f"{verb} {len(self.copied)} key{'s' if len(self.copied) != 1 else ''} "
                f"({human_size(self.bytes_copied)}) in {self.seconds:.2f} s{rate}; "
                f"skipped {len(self.skipped)} unchanged")
        if self.vanished:
            text += f"; {len(self.vanished)} vanished from the source while copying"
        return text


class _CountingStream:
    """A read-only stream that reports how many bytes went through it."""

    def __init__(self, stream: Any, on_read: Callable[[int], None]) -> None:
        self._stream = stream
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        if chunk:
            self._on_read(len(chunk))
        return chunk

    def close(self) -> None:
        # The value's own context closes the underlying stream.
        return None


def _same_value(dst: Any, key: str, size: int | None, metadata: dict[str, Any]) -> bool:
    """Whether *dst* already holds *key* with this size and metadata."""
    try:
        if dst.get_metadata(key) != metadata:
            return False
        dst_size, _ = _value_stat(dst, key)
    except KeyError:
        return False
    return size is not None and dst_size == size


def _copy_one(src: Any, dst: Any, key: str, report: CopyReport, dry_run: bool,
              keys_progress: Any, on_key: Callable[[str, str, int | None], None] | None) -> str:
    """Copy (or skip) one key; record it in *report*; return the action taken."""
    from encore.events.api import ProgressManager

    try:
        value = src.get(key)
    except KeyError:
        action, size = "vanished", None
        report.vanished.append(key)
    else:
        with value as data:
            size, metadata = value.size, value.metadata
            if _same_value(dst, key, size, metadata):
                action = "skip"
                report.skipped.append(key)
            else:
                action = "copy"
                report.copied.append(key)
                if on_key is not None:
                    on_key(action, key, size)
                if dry_run:
                    report.bytes_copied += size or 0
                else:
                    report.bytes_copied += _stream_value(dst, key, data, size, metadata,
                                                         keys_progress, ProgressManager)
                return action
    if on_key is not None:
        on_key(action, key, size)
    return action


def _stream_value(dst: Any, key: str, data: Any, size: int | None, metadata: dict[str, Any],
                  keys_progress: Any, progress_class: Any) -> int:
    """Write *data* into *dst*; return the number of bytes moved."""
    moved = 0
    with contextlib.ExitStack() as stack:
        bytes_progress: Any = None
        if keys_progress is not None and size is not None and size >= LARGE_VALUE:
            bytes_progress = stack.enter_context(progress_class(
                keys_progress.event_manager, message=f"{_show_key(key)} ({human_size(size)})",
                steps=size))

        def on_read(count: int) -> None:
            nonlocal moved
            moved += count
            if bytes_progress is not None:
                bytes_progress(step=moved, message=f"{human_size(moved)} of {human_size(size)}")

        dst.set(key, (_CountingStream(data, on_read), metadata))
    return moved


def copy_keys(src: Any, dst: Any, pattern: str | None = None, *, dry_run: bool = False,
              event_manager: Any = None, on_key: Callable[[str, str, int | None], None]
              | None = None) -> CopyReport:
    """Copy keys (data and metadata) from *src* to *dst*, streaming each value.

    Keys whose destination copy has the same size and metadata are skipped, so
    an interrupted or repeated copy only moves what is missing or different.
    The writes happen in one transaction of the destination (a store without
    transactions gets them one by one).

    Parameters
    ----------
    src, dst : AbstractReadOnlyStore, AbstractStore
        Connected stores; *dst* must be writable.
    pattern : str, optional
        Only copy keys matching this glob pattern (``*`` crosses ``/``).
    dry_run : bool
        Decide what to copy, but write nothing.
    event_manager : BaseEventManager, optional
        If given, progress is reported on it: one operation over the keys
        (``steps`` = number of keys, messages with the bytes so far) and,
        inside it, one operation over the bytes of each value of at least
        :data:`LARGE_VALUE` bytes.
    on_key : callable, optional
        Called as ``on_key(action, key, size)`` for each key, with action
        ``'copy'``, ``'skip'`` or ``'vanished'`` (before a copy starts).

    Returns
    -------
    report : CopyReport
    """
    from encore.events.api import ProgressManager

    started = time.monotonic()
    report = CopyReport()
    match = _matcher(pattern)
    keys = sorted(key for key in src.query_keys() if match(key))
    if not dry_run and not hasattr(dst, "set"):
        raise ReadOnlyStoreError("the destination store is read-only")
    progress: Any = contextlib.nullcontext(None)
    if event_manager is not None:
        noun = "key" if len(keys) == 1 else "keys"
        progress = ProgressManager(event_manager, message=f"Copying {len(keys)} {noun}",
                                   steps=max(len(keys), 1))
    transaction: Any = contextlib.nullcontext()
    if not dry_run:
        transaction = dst.transaction(TRANSACTION_NOTE)
    with progress as keys_progress, transaction:
        for index, key in enumerate(keys, 1):
            action = _copy_one(src, dst, key, report, dry_run, keys_progress, on_key)
            if keys_progress is not None:
                keys_progress(step=index, message=f"{index}/{len(keys)} keys, "
                              f"{human_size(report.bytes_copied)}", action=action)
    report.seconds = time.monotonic() - started
    return report


def copy_display(stream: Any = None, tty: bool | None = None) -> Any:
    """A progress display (on stderr by default) whose bars show the copy's own messages."""
    from encore.events.api import EventManager
    from encore.terminal.api import ProgressDisplay, ProgressWriter

    class CopyWriter(ProgressWriter):
        """``[*****     ] 3/10 keys, 12.0 MiB``: a bar and the latest message."""

        def _row(self, width: int, full: bool = False) -> str:
            message = self.last_message
            size = max(10, min(40, width - len(message) - 3))
            fraction = 1.0 if full else min(max(self.last_step / self.steps, 0.0), 1.0)
            row = f"[{'*' * round(fraction * size):<{size}}] {message}"
            return row[:width]

        def live_rows(self, width: int) -> list[str]:
            return [self._row(width)] if self.stepped else []

        def final_rows(self, width: int) -> list[str]:
            if self.succeeded:
                return [self._row(width, full=True), "Done."]
            return super().final_rows(width)

        def plain_step(self) -> str:
            return f"{self.last_message} ({100 * self.last_step / self.steps:.0f}%)"

    class CopyDisplay(ProgressDisplay):
        progress_writer = CopyWriter

    # A private event manager: the stores' own per-value progress events go to
    # the global one and would otherwise be drawn as well.
    return CopyDisplay(EventManager(), stream=sys.stderr if stream is None else stream, tty=tty)
