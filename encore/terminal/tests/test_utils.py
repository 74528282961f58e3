"""Tests for :mod:`encore.terminal.utils`."""

from __future__ import annotations

import io
import os
import shutil
import sys

import pytest

from encore.terminal.api import write_static
from encore.terminal.tests.virtual_terminal import FakeStream, VirtualTerminal
from encore.terminal.utils import single_line, stream_is_tty, terminal_width


def test_write_static_bytes():
    stream = FakeStream(tty=True)
    assert write_static("abc", stream) is None
    assert stream.getvalue() == "\babc\b\b\b"
    assert stream.flushes == 1


def test_write_static_redraws_in_place():
    stream = FakeStream(tty=True)
    write_static("  1 [*   ]", stream)
    write_static("  2 [**  ]", stream)
    assert VirtualTerminal(80).feed(stream.getvalue()).screen() == ["  2 [**  ]"]


def test_write_static_uses_current_stdout(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    write_static("")
    write_static("x")
    assert stream.getvalue() == "\b\bx\b"


def test_stream_is_tty():
    assert stream_is_tty(FakeStream(tty=True))
    assert not stream_is_tty(FakeStream(tty=False))
    assert not stream_is_tty(io.StringIO())
    assert not stream_is_tty(object())
    closed = open(os.devnull, "w")  # noqa: SIM115 - closed on purpose
    closed.close()
    assert not stream_is_tty(closed)


def test_terminal_width_prefers_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "123")
    assert terminal_width(io.StringIO()) == 123


@pytest.mark.parametrize("value", ["", "0", "-4", "wide"])
def test_terminal_width_ignores_bad_columns(monkeypatch, value):
    monkeypatch.setenv("COLUMNS", value)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((77, 20)))
    assert terminal_width(io.StringIO()) == 77


def test_terminal_width_falls_back_to_eighty(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((0, 0)))
    assert terminal_width(io.StringIO()) == 80


def test_terminal_width_of_a_terminal(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((132, 40)))

    class Terminal(io.StringIO):
        def fileno(self):
            return 99

    assert terminal_width(Terminal()) == 132


def test_single_line():
    assert single_line("plain text") == "plain text"
    assert single_line("a\nb\r\tc\x1b[0m\x7f") == "a b  c [0m "
    assert single_line(42) == "42"
    assert single_line("ünïcødé ✓") == "ünïcødé ✓"
