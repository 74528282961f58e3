"""Low-level helpers for writing to a text terminal.

:func:`write_static` is the primitive the original progress display was built
on; it is kept for code that draws its own in-place indicators. The other
helpers answer the questions a display must ask of its stream before drawing:
is it a terminal (:func:`stream_is_tty`), how wide is it
(:func:`terminal_width`), and how to make arbitrary text safe to put on one
line (:func:`single_line`).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TextIO

__all__ = ["single_line", "stream_is_tty", "terminal_width", "write_static"]

#: Width assumed when the stream is not a terminal and nothing else says how
#: wide the output should be.
DEFAULT_WIDTH = 80


def write_static(s: str, stream: TextIO | None = None) -> None:
    """Write ``s`` and move the cursor back to where the text started.

    The bytes written are one backspace, ``s``, and then one backspace per
    character of ``s``, so the next call draws over this one. The text must
    not contain newlines.

    Parameters
    ----------
    s : str
        The text to draw.
    stream : file-like, optional
        Where to write. Defaults to :data:`sys.stdout`, looked up at call time
        so that redirection (and test capture) is honoured.
    """
    out = sys.stdout if stream is None else stream
    out.write("\b" + s + "\b" * len(s))
    out.flush()


def stream_is_tty(stream: TextIO) -> bool:
    """Return whether ``stream`` is an interactive terminal.

    Streams without an ``isatty`` method, and closed streams, count as not
    being terminals.
    """
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except ValueError:
        # isatty() on a closed file raises ValueError.
        return False


def terminal_width(stream: TextIO | None = None) -> int:
    """Return the number of columns available on ``stream``.

    The ``COLUMNS`` environment variable wins when it is set to a positive
    integer. Otherwise the size of the terminal behind ``stream`` (default:
    :data:`sys.stdout`) is asked for, and when that is not a terminal the
    answer falls back to :func:`shutil.get_terminal_size`, and finally to
    80 columns.
    """
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    out = sys.stdout if stream is None else stream
    try:
        width = os.get_terminal_size(out.fileno()).columns
    except (AttributeError, ValueError, OSError):
        # No fileno (StringIO), a closed file, or not a terminal.
        width = 0
    if width <= 0:
        width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return width if width > 0 else DEFAULT_WIDTH


def single_line(text: object) -> str:
    """Return ``str(text)`` with every non-printable character made a space.

    Newlines, carriage returns, tabs, escape sequences and other control
    characters in messages would break a display that counts the lines it has
    drawn (and would smuggle terminal control codes into logs), so messages
    pass through this before being shown.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else " " for c in s)
