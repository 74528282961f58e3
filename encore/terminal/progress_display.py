"""Show progress events as bars and spinners on a text stream.

A :class:`ProgressDisplay` listens to an event manager for
:class:`~encore.events.api.ProgressStartEvent`,
:class:`~encore.events.api.ProgressStepEvent` and
:class:`~encore.events.api.ProgressEndEvent` (and so for their subclasses, such
as the storage progress events). For each operation it creates a writer: a
:class:`ProgressWriter` (a bar) when the start event gives a positive number of
``steps``, and a :class:`SpinWriter` (a spinner) otherwise.

.. rubric:: Output modes

The display chooses, at every write, between two kinds of output.

*Terminal* (the stream is a TTY). Every running operation owns two rows at
the bottom of the screen: a header ``"<message>:"`` and, once it has stepped,
its bar (``"    N [*****     ]"``) or spinner (``"| <message>"``). The rows are
redrawn in place. When an operation ends, its header, its last row and a
result line (``"Done."``, or ``"<EXIT_STATE>: <message>"``) are moved above
the rows of the operations still running, so several operations (nested or
interleaved) are drawn at once without overwriting each other. Rows are cut to
the terminal width, which is read at every redraw, and the bar shrinks to fit
narrow terminals. Only three control sequences are used: carriage return,
cursor up (``ESC [ n A``) and erase (``ESC [ K``, ``ESC [ J``).

*Plain* (anything else: a pipe, a file, a log). One line per event and no
control characters at all::

    Copying files:
    Copying files: 1/4 (25%)
    Copying files: Done.
    Indexing: EXCEPTION: disk full

Redraws of one operation are throttled to one per ``interval`` seconds
(0.05 s on a terminal, 1 s in plain mode unless ``interval`` is given); the
first step and the end of an operation are always shown.

.. rubric:: Lifetime

Upstream connected bound methods, which the event manager holds weakly, so a
display that nobody referenced silently stopped drawing. Here the display
connects strong references to itself: **a display keeps working, whether or not
you keep a reference to it, until** :meth:`ProgressDisplay.close` **is called**
(or the ``with`` block it was used in exits). Writers are owned by the
display's ``writers`` dictionary and are dropped when their operation ends.

.. rubric:: Thread safety

Progress events may be emitted from any thread. A display serialises its
bookkeeping and its writes with one re-entrant lock, so lines from different
threads never interleave mid-row.

.. rubric:: Caveats

The terminal mode assumes nothing else writes to the stream while operations
are running, and that the running operations fit on the screen (two rows
each); text written by others in the meantime is overwritten or leaves stale
rows. Widths are counted in characters, so East Asian wide characters in
messages may make a row wrap.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from encore.events.api import (
    BaseEventManager,
    ProgressEndEvent,
    ProgressStartEvent,
    ProgressStepEvent,
    get_event_manager,
)
from encore.terminal.utils import single_line, stream_is_tty, terminal_width

__all__ = ["OperationWriter", "ProgressDisplay", "ProgressWriter", "SpinWriter"]

#: Erase from the cursor to the end of the line.
CLEAR_LINE = "\x1b[K"
#: Erase from the cursor to the end of the screen.
CLEAR_BELOW = "\x1b[J"

#: Seconds between two redraws of one operation on a terminal.
TTY_INTERVAL = 0.05
#: Seconds between two step lines of one operation in plain mode.
PLAIN_INTERVAL = 1.0


def _clip(row: str, width: int) -> str:
    return row if len(row) <= width else row[:width]


def _wrap(row: str, width: int) -> list[str]:
    # Break long rows ourselves rather than let the terminal wrap them: a
    # terminal-wrapped row breaks the row count, and text ending in the last
    # column would have its last character erased by the following ESC [ K.
    return [row[i : i + width] for i in range(0, len(row), width)] or [""]


class OperationWriter:
    """Base class of the per-operation writers: state, throttling and endings.

    A writer never writes to the stream itself: it records what it has seen
    and asks its display to redraw (:meth:`ProgressDisplay.refresh`) or to
    retire it (:meth:`ProgressDisplay.finish`). Subclasses say what to show
    through :meth:`live_rows`, :meth:`final_rows`, :meth:`plain_step` and
    :meth:`plain_end`.

    Parameters
    ----------
    display : ProgressDisplay
        The display that owns this writer.
    operation_id : hashable
        The id of the operation this writer follows.
    """

    def __init__(self, display: ProgressDisplay, operation_id: Any) -> None:
        self.display = display
        self.operation_id = operation_id
        #: When this writer last drew (display clock), or None before the first draw.
        self.last_time: float | None = None
        #: The step number of the latest step event.
        self.last_step: Any = 0
        #: The message of the latest step event.
        self.last_message = ""
        #: Whether any step event has been seen.
        self.stepped = False
        #: The ``exit_state`` of the end event, once it has arrived.
        self.exit_state: str | None = None
        #: The message of the end event, once it has arrived.
        self.end_message = ""

    # listeners -------------------------------------------------------------

    def step_listener(self, event: Any) -> None:
        """Record a step event and ask the display to show it if a redraw is due."""
        self.last_step = getattr(event, "step", self.last_step)
        self.last_message = single_line(getattr(event, "message", "") or "")
        self.stepped = True
        now = self.display._clock()
        interval = self.display.current_interval()
        if self.last_time is None or now - self.last_time >= interval:
            self.last_time = now
            self.advance()
            self.display.refresh(self)

    def end_listener(self, event: Any) -> None:
        """Record the end event and ask the display to retire this writer."""
        self.exit_state = str(getattr(event, "exit_state", None) or "normal")
        self.end_message = single_line(getattr(event, "message", "") or "")
        self.display.finish(self)

    # what to show ----------------------------------------------------------

    @property
    def succeeded(self) -> bool:
        """Whether the operation ended with the ``'normal'`` exit state."""
        return self.exit_state == "normal"

    def advance(self) -> None:
        """Hook called just before each throttled draw (the spinner turns here)."""

    def failure_row(self) -> str:
        """The ``"<EXIT_STATE>: <message>"`` line shown for an abnormal end."""
        return f"{(self.exit_state or '').upper()}: {self.end_message}"

    def live_rows(self, width: int) -> list[str]:
        """Rows to show under the header while the operation runs."""
        return []

    def final_rows(self, width: int) -> list[str]:
        """Rows to leave under the header once the operation has ended."""
        if self.succeeded:
            return ["Done."]
        return [*self.live_rows(width), self.failure_row()]

    def plain_step(self) -> str:
        """The text of a plain-mode step line (after ``"<message>: "``)."""
        return f"step {self.last_step}"

    def plain_end(self) -> str:
        """The text of a plain-mode end line (after ``"<message>: "``)."""
        return "Done." if self.succeeded else self.failure_row()


class ProgressWriter(OperationWriter):
    """Draws a bar for an operation with a known number of steps.

    The row is ``"%5d [%-Ns]"``: the step number right-aligned in five
    columns, then the bar between brackets. The bar is ``_max`` (70) stars
    wide, or narrower when the terminal is. When the operation ends normally
    the bar is drawn full and ``"Done."`` is written below it; otherwise the
    last bar stays and ``"<EXIT_STATE>: <message>"`` is written below it.

    Parameters
    ----------
    display : ProgressDisplay
        The display that owns this writer.
    operation_id : hashable
        The id of the operation this writer follows.
    steps : int
        The number of steps of the operation (positive).
    """

    #: The widest bar drawn, in stars.
    _max = 70

    def __init__(self, display: ProgressDisplay, operation_id: Any, steps: int) -> None:
        super().__init__(display, operation_id)
        self.steps = steps

    def bar_width(self, width: int, number_width: int = 5) -> int:
        """The number of stars in a full bar on a row of ``width`` columns."""
        # The step number, " [" and "]" take the rest of the row.
        return max(1, min(self._max, width - number_width - 3))

    def bar_row(self, step: Any, width: int, full: bool = False) -> str:
        """The bar row for ``step``; ``full`` draws every star."""
        try:
            number = f"{int(step):5d}"
        except (TypeError, ValueError, OverflowError):
            number = f"{step!s:>5}"
        size = self.bar_width(width, len(number))
        if full:
            stars = size
        else:
            try:
                stars = round(step / self.steps * size)
            except (TypeError, ValueError, OverflowError, ZeroDivisionError):
                stars = 0
            stars = min(max(stars, 0), size)
        return f"{number} [{'*' * stars:<{size}}]"

    def live_rows(self, width: int) -> list[str]:
        return [self.bar_row(self.last_step, width)] if self.stepped else []

    def final_rows(self, width: int) -> list[str]:
        if self.succeeded:
            return [self.bar_row(self.last_step, width, full=True), "Done."]
        return super().final_rows(width)

    def plain_step(self) -> str:
        try:
            percent = f" ({100 * self.last_step / self.steps:.0f}%)"
        except (TypeError, ZeroDivisionError):
            percent = ""
        return f"{self.last_step}/{self.steps}{percent}"


class SpinWriter(OperationWriter):
    """Draws a spinner for an operation whose length is unknown.

    The row is one spinner character (cycling through backslash, ``|``, ``/``
    and ``-``, one position per draw), a space, and the message of the latest
    step cut to ``_max`` (70) characters or to the terminal width. A normal
    end replaces the row with ``"  Done."``; any other end leaves the last row
    and writes ``"<EXIT_STATE>: <message>"`` below it.

    Parameters
    ----------
    display : ProgressDisplay
        The display that owns this writer.
    operation_id : hashable
        The id of the operation this writer follows.
    """

    #: The longest message shown, in characters.
    _max = 70
    #: The spinner's frames.
    frames = "\\|/-"

    def __init__(self, display: ProgressDisplay, operation_id: Any) -> None:
        super().__init__(display, operation_id)
        self._frame = -1

    def advance(self) -> None:
        self._frame = (self._frame + 1) % len(self.frames)

    def spin_row(self, char: str, message: str, width: int) -> str:
        """The spinner row: ``char``, a space, and ``message`` cut to fit."""
        return f"{char} {message[: max(0, min(self._max, width - 2))]}"

    def live_rows(self, width: int) -> list[str]:
        if not self.stepped:
            return []
        return [self.spin_row(self.frames[max(self._frame, 0)], self.last_message, width)]

    def final_rows(self, width: int) -> list[str]:
        if self.succeeded:
            return [self.spin_row(" ", "Done.", width)]
        return super().final_rows(width)

    def plain_step(self) -> str:
        label = self.display.label(self.operation_id)
        if self.last_message and self.last_message != label:
            return f"step {self.last_step}: {self.last_message}"
        return f"step {self.last_step}"


class ProgressDisplay:
    """Listen for progress events and draw them on a text stream.

    See the module documentation for the output formats, the lifetime rule
    (the display works until :meth:`close`) and the thread-safety guarantees.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        The event manager to listen to; the global one by default.
    stream : file-like, optional
        Where to draw. Defaults to :data:`sys.stdout`, looked up at each write.
    width : int, optional
        The number of columns to draw in. By default the terminal's width,
        read at each redraw (see :func:`encore.terminal.utils.terminal_width`).
    interval : float, optional
        The minimum number of seconds between two redraws of one operation.
        By default 0.05 on a terminal and 1.0 in plain mode.
    tty : bool, optional
        Force terminal (True) or plain (False) output. By default the stream
        is asked (``stream.isatty()``) at each write.

    Attributes
    ----------
    event_manager : BaseEventManager
        The event manager listened to.
    writers : dict
        The writer of each running operation, keyed by operation id, in the
        order the operations started.
    """

    #: The writer class used for operations with a known number of steps;
    #: called as ``progress_writer(display, operation_id, steps)``.
    progress_writer: type[OperationWriter] = ProgressWriter
    #: The writer class used for operations with an unknown number of steps;
    #: called as ``spin_writer(display, operation_id)``.
    spin_writer: type[OperationWriter] = SpinWriter

    def __init__(
        self,
        event_manager: BaseEventManager | None = None,
        *,
        stream: TextIO | None = None,
        width: int | None = None,
        interval: float | None = None,
        tty: bool | None = None,
    ) -> None:
        if width is not None and width < 1:
            raise ValueError(f"width must be a positive number of columns, not {width!r}")
        if interval is not None and interval < 0:
            raise ValueError(f"interval must not be negative, not {interval!r}")
        self.event_manager = get_event_manager() if event_manager is None else event_manager
        self.writers: dict[Any, OperationWriter] = {}
        self.stream = stream
        self.width = width
        self.interval = interval
        self.tty = tty
        self._labels: dict[Any, str] = {}
        # The rows of the live region currently on screen (terminal mode).
        # The cursor sits at the end of the last one, or at the start of an
        # empty line when there are none.
        self._rows: list[str] = []
        self._lock = threading.RLock()
        self._closed = False
        # Closures, not bound methods: the event manager holds them strongly,
        # which is what keeps an unreferenced display alive (see "Lifetime").
        self._listeners: tuple[tuple[type, Callable[[Any], None]], ...] = (
            (ProgressStartEvent, self._locked(self.start_listener)),
            (ProgressStepEvent, self._locked(self.step_listener)),
            (ProgressEndEvent, self._locked(self.end_listener)),
        )
        connected: list[tuple[type, Callable[[Any], None]]] = []
        try:
            for cls, listener in self._listeners:
                self.event_manager.connect(cls, listener)
                connected.append((cls, listener))
        except BaseException:
            # Leave nothing half-connected behind a failed constructor.
            for cls, listener in connected:
                self.event_manager.disconnect(cls, listener)
            raise

    _clock = staticmethod(time.monotonic)

    def _locked(self, method: Callable[[Any], None]) -> Callable[[Any], None]:
        lock = self._lock

        def listener(event: Any) -> None:
            with lock:
                method(event)

        return listener

    # lifetime ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def close(self) -> None:
        """Stop listening and leave the cursor on a fresh line.

        Operations still running are left as last drawn. Calling ``close``
        again does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for cls, listener in self._listeners:
                try:
                    self.event_manager.disconnect(cls, listener)
                except KeyError:
                    # Someone else already disconnected it: it is not
                    # connected any more, which is all close() promises.
                    continue
            if self._rows:
                self._write("\n")
                self._rows = []
            self.writers.clear()
            self._labels.clear()

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # listeners --------------------------------------------------------------

    def start_listener(self, event: Any) -> None:
        """Create the writer for a starting operation and show its header."""
        operation_id = event.operation_id
        steps = getattr(event, "steps", -1)
        if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
            writer = self.progress_writer(self, operation_id, steps)
        else:
            writer = self.spin_writer(self, operation_id)
        label = single_line(getattr(event, "message", "") or "")
        with self._lock:
            # A restarted operation id replaces the old writer and its rows.
            self.writers.pop(operation_id, None)
            self.writers[operation_id] = writer
            self._labels[operation_id] = label
            if self.is_tty():
                self._paint()
            else:
                self._write(f"{label}:\n")

    def step_listener(self, event: Any) -> None:
        """Pass a step event to the writer of its operation, if there is one."""
        writer = self.writers.get(getattr(event, "operation_id", None))
        if writer is not None:
            writer.step_listener(event)

    def end_listener(self, event: Any) -> None:
        """Pass an end event to the writer of its operation, if there is one."""
        writer = self.writers.get(getattr(event, "operation_id", None))
        if writer is not None:
            writer.end_listener(event)

    # services for writers ---------------------------------------------------

    def label(self, operation_id: Any) -> str:
        """The start message of a running operation (``""`` if unknown)."""
        return self._labels.get(operation_id, "")

    def current_interval(self) -> float:
        """The redraw interval in force for the current output mode."""
        if self.interval is not None:
            return self.interval
        return TTY_INTERVAL if self.is_tty() else PLAIN_INTERVAL

    def is_tty(self) -> bool:
        """Whether output currently goes to a terminal (or ``tty=True`` was given)."""
        if self.tty is not None:
            return self.tty
        return stream_is_tty(self._stream())

    def refresh(self, writer: OperationWriter) -> None:
        """Show the latest state of ``writer``'s operation."""
        with self._lock:
            if self.writers.get(writer.operation_id) is not writer:
                return
            if self.is_tty():
                self._paint()
            else:
                label = self._labels[writer.operation_id]
                self._write(f"{label}: {writer.plain_step()}\n")

    def finish(self, writer: OperationWriter) -> None:
        """Show how ``writer``'s operation ended and forget the writer."""
        with self._lock:
            if self.writers.get(writer.operation_id) is not writer:
                return
            del self.writers[writer.operation_id]
            label = self._labels.pop(writer.operation_id)
            if self.is_tty():
                width = self._usable_width()
                self._paint([f"{label}:", *writer.final_rows(width)])
            else:
                self._write(f"{label}: {writer.plain_end()}\n")

    # drawing ----------------------------------------------------------------

    def _stream(self) -> TextIO:
        return sys.stdout if self.stream is None else self.stream

    def _write(self, text: str) -> None:
        stream = self._stream()
        stream.write(text)
        stream.flush()

    def _usable_width(self) -> int:
        columns = self.width if self.width is not None else terminal_width(self._stream())
        # Never write into the last column: some terminals wrap there, which
        # would throw off the row count used to move the cursor back up.
        return max(columns - 1, 1)

    def _paint(self, permanent: Sequence[str] = ()) -> None:
        """Redraw the live region, first moving ``permanent`` rows above it.

        Only rows from the first one that differs from what is on screen are
        rewritten. Live rows are cut to the width; ``permanent`` rows are
        broken into as many rows as needed, end with a newline and leave the
        live region for good.
        """
        width = self._usable_width()
        live: list[str] = []
        for operation_id, writer in self.writers.items():
            live.append(_clip(f"{self._labels[operation_id]}:", width))
            live.extend(_clip(row, width) for row in writer.live_rows(width))
        new = [chunk for row in permanent for chunk in _wrap(row, width)]
        new.extend(live)
        old = self._rows
        first = 0
        while first < min(len(old), len(new)) and old[first] == new[first]:
            first += 1
        if live and first == len(new):
            if len(old) == len(new):
                return
            # Rewrite the last row so the cursor ends after it, then clear below.
            first -= 1
        parts: list[str] = []
        if old:
            if first < len(old):
                up = len(old) - 1 - first
                if up:
                    parts.append(f"\x1b[{up}A")
                parts.append("\r")
            else:
                parts.append("\n")
        for index in range(first, len(new)):
            parts.append(new[index])
            if index < len(old):
                parts.append(CLEAR_LINE)
            if index < len(new) - 1 or not live:
                parts.append("\n")
        if len(new) < len(old):
            parts.append(CLEAR_BELOW)
        self._rows = live
        self._write("".join(parts))
