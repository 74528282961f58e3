"""A tiny terminal emulator and fake streams for testing terminal output.

:class:`VirtualTerminal` understands exactly what a terminal-mode display may
write (printable text, ``\\r``, ``\\n``, ``\\b``, ``ESC [ n A``, ``ESC [ K``,
``ESC [ J``), wraps at its width like a real terminal, and fails loudly on
anything else, so tests can check what a user would *see* as well as the bytes.
"""

from __future__ import annotations

import io
import re

_CSI = re.compile(r"\x1b\[(\d*)([AKJ])")


class FakeStream(io.StringIO):
    """A text stream that says whether it is a TTY and counts flushes."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty
        self.flushes = 0

    def isatty(self) -> bool:
        return self._tty

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class VirtualTerminal:
    """A screen of ``width`` columns and unlimited rows."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0
        # Like a real terminal, writing the last column leaves the cursor
        # there with a wrap pending until the next printable character.
        self.pending_wrap = False

    def _line(self) -> list[str]:
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def feed(self, text: str) -> VirtualTerminal:
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                match = _CSI.match(text, i)
                if match is None:
                    raise AssertionError(f"unsupported escape sequence at {text[i:i + 8]!r}")
                count = int(match.group(1) or 1)
                command = match.group(2)
                line = self._line()
                self.pending_wrap = False
                if command == "A":
                    if count > self.row:
                        raise AssertionError("cursor moved above the first row")
                    self.row -= count
                elif command == "K":
                    del line[self.col :]
                else:
                    del line[self.col :]
                    del self.lines[self.row + 1 :]
                i = match.end()
                continue
            if char in "\r\n\b":
                self.pending_wrap = False
            if char == "\r":
                self.col = 0
            elif char == "\n":
                # A tty's output processing turns "\n" into "\r\n".
                self.row += 1
                self.col = 0
                self._line()
            elif char == "\b":
                self.col = max(self.col - 1, 0)
            elif char.isprintable():
                if self.pending_wrap:
                    self.pending_wrap = False
                    self.row += 1
                    self.col = 0
                line = self._line()
                if len(line) < self.col:
                    line.extend(" " * (self.col - len(line)))
                if self.col < len(line):
                    line[self.col] = char
                else:
                    line.append(char)
                if self.col == self.width - 1:
                    self.pending_wrap = True
                else:
                    self.col += 1
            else:
                raise AssertionError(f"unexpected control character {char!r}")
            i += 1
        return self

    def screen(self) -> list[str]:
        """The visible rows, right-stripped, without trailing empty rows."""
        rows = ["".join(line).rstrip() for line in self.lines]
        while rows and not rows[-1]:
            rows.pop()
        return rows
