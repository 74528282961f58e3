"""Tests for :mod:`encore.terminal.progress_display`.

Output is captured through :class:`FakeStream` (TTY or not) and checked byte
for byte; terminal-mode output is also replayed on a :class:`VirtualTerminal`
to check what the user sees.
"""

from __future__ import annotations

import gc
import re
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from encore.events.api import (
    EventManager,
    ProgressEndEvent,
    ProgressManager,
    ProgressStartEvent,
    ProgressStepEvent,
)
from encore.terminal.api import ProgressDisplay, ProgressWriter, SpinWriter
from encore.terminal.progress_display import CLEAR_BELOW, CLEAR_LINE, OperationWriter
from encore.terminal.tests.virtual_terminal import FakeStream, VirtualTerminal

K = CLEAR_LINE
WIDTH = 40  # 39 usable columns: a bar of 31 stars
JOIN_TIMEOUT = 10.0
FRAMES = "\\|/-"


def bar(step: int, stars: int, size: int = 31) -> str:
    return f"{step:5d} [{'*' * stars:<{size}}]"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def em() -> EventManager:
    return EventManager()


def make_display(em, tty: bool, width: int = WIDTH, interval: float | None = 0, **kw):
    stream = FakeStream(tty)
    display = ProgressDisplay(em, stream=stream, width=width, interval=interval, **kw)
    return display, stream


def run_bar(em, message="Op2", steps=4, fail_after=None):
    try:
        with ProgressManager(em, message=message, steps=steps) as progress:
            for step in range(1, steps + 1):
                if fail_after is not None and step > fail_after:
                    raise RuntimeError("boom")
                progress(step=step)
    except RuntimeError:
        pass


# -- terminal mode, byte for byte ---------------------------------------------------------------


def test_tty_bar_bytes(em):
    display, stream = make_display(em, tty=True)
    with display:
        run_bar(em)
    assert stream.getvalue() == (
        "Op2:"
        f"\n{bar(1, 8)}"
        f"\r{bar(2, 16)}{K}"
        f"\r{bar(3, 23)}{K}"
        f"\r{bar(4, 31)}{K}"
        "\nDone.\n"
    )
    assert VirtualTerminal(WIDTH).feed(stream.getvalue()).screen() == [
        "Op2:",
        bar(4, 31),
        "Done.",
    ]


def test_tty_bar_ends_full_even_if_steps_fall_short(em):
    display, stream = make_display(em, tty=True)
    with display, ProgressManager(em, message="Op", steps=4) as progress:
        progress(step=1)
    assert stream.getvalue() == f"Op:\n{bar(1, 8)}\r{bar(1, 31)}{K}\nDone.\n"


def test_tty_bar_failure_bytes(em):
    display, stream = make_display(em, tty=True)
    with display:
        run_bar(em, fail_after=2)
    assert stream.getvalue() == (
        f"Op2:\n{bar(1, 8)}\r{bar(2, 16)}{K}\nEXCEPTION: boom\n"
    )


def test_tty_failure_before_first_step(em):
    display, stream = make_display(em, tty=True)
    with display:
        run_bar(em, fail_after=0)
    assert stream.getvalue() == "Op2:\nEXCEPTION: boom\n"


def test_tty_explicit_exit_states(em):
    display, stream = make_display(em, tty=True)
    with display:
        progress = ProgressManager(em, message="Sync", steps=2)
        progress.start()
        progress.step(step=1)
        progress.end(message="2 files skipped", exit_state="warning")
    assert stream.getvalue() == f"Sync:\n{bar(1, 16)}\nWARNING: 2 files skipped\n"


def test_tty_spinner_bytes(em):
    display, stream = make_display(em, tty=True)
    with display, ProgressManager(em, message="Spin") as progress:
        progress()
        progress("reading a")
        progress()
        progress()
        progress()
    assert stream.getvalue() == (
        "Spin:"
        "\n\\ Spin"
        f"\r| reading a{K}"
        f"\r/ Spin{K}"
        f"\r- Spin{K}"
        f"\r\\ Spin{K}"
        f"\r  Done.{K}\n"
    )


def test_tty_spinner_failure_keeps_last_row(em):
    display, stream = make_display(em, tty=True)
    with display, pytest.raises(KeyError), ProgressManager(em, message="Spin") as progress:
        progress("looking")
        raise KeyError("x")
    assert stream.getvalue() == "Spin:\n\\ looking\nEXCEPTION: 'x'\n"


def test_tty_nested_operations_bytes(em):
    display, stream = make_display(em, tty=True)
    with display, ProgressManager(em, message="Outer", steps=2) as outer:
        outer(step=1)
        with ProgressManager(em, message="Inner") as inner:
            inner()
        outer(step=2)
    assert stream.getvalue() == (
        "Outer:"
        f"\n{bar(1, 16)}"
        "\nInner:"
        "\n\\ Inner"
        # Inner ends: its rows move above Outer's, which are redrawn below.
        f"\x1b[3A\rInner:{K}\n  Done.{K}\nOuter:{K}\n{bar(1, 16)}{K}"
        f"\r{bar(2, 31)}{K}"
        "\nDone.\n"
    )
    assert VirtualTerminal(WIDTH).feed(stream.getvalue()).screen() == [
        "Inner:",
        "  Done.",
        "Outer:",
        bar(2, 31),
        "Done.",
    ]


def test_tty_shrinking_region_is_cleared(em):
    display, stream = make_display(em, tty=True)
    with display:
        first = ProgressManager(em, message="A", steps=2)
        second = ProgressManager(em, message="B", steps=2)
        first.start()
        first.step(step=1)
        second.start()
        second.step(step=1)
        first.end()  # A's rows move up; B is redrawn: same count of rows
        second.end(message="gave up", exit_state="error")
    out = stream.getvalue()
    assert VirtualTerminal(WIDTH).feed(out).screen() == [
        "A:",
        bar(1, 31),
        "Done.",
        "B:",
        bar(1, 16),
        "ERROR: gave up",
    ]


def test_tty_region_shrinks_when_operation_replaced(em):
    display, stream = make_display(em, tty=True)
    with display:
        ProgressManager(em, message="Long", steps=2, operation_id=7).start()
        em.emit(ProgressStepEvent(operation_id=7, message="Long", step=1))
        # The same id starts again without a step: its bar row disappears.
        ProgressManager(em, message="Again", steps=2, operation_id=7).start()
    out = stream.getvalue()
    assert out.endswith(f"\x1b[1A\rAgain:{K}{CLEAR_BELOW}\n")
    assert VirtualTerminal(WIDTH).feed(out).screen() == ["Again:"]


def test_tty_interleaved_operations_screen(em):
    display, stream = make_display(em, tty=True)
    terminal = VirtualTerminal(WIDTH)
    with display:
        a = ProgressManager(em, message="Download", steps=4)
        b = ProgressManager(em, message="Unpack")
        a.start()
        b.start()
        a.step(step=1)
        b.step()
        terminal.feed(stream.getvalue())
        assert terminal.screen() == ["Download:", bar(1, 8), "Unpack:", "\\ Unpack"]
        a.step(step=2)
        a.end(message="network down", exit_state="exception")
        b.step(message="file 2")
        b.end()
    assert VirtualTerminal(WIDTH).feed(stream.getvalue()).screen() == [
        "Download:",
        bar(2, 16),
        "EXCEPTION: network down",
        "Unpack:",
        "  Done.",
    ]


# -- terminal width -------------------------------------------------------------------------------


def test_default_bar_is_seventy_stars_on_wide_terminals(em):
    display, stream = make_display(em, tty=True, width=200)
    with display:
        run_bar(em, steps=2)
    assert f"\n{bar(1, 35, size=70)}" in stream.getvalue()
    assert f"\r{bar(2, 70, size=70)}{K}" in stream.getvalue()


def test_narrow_terminal_rows_fit(em):
    width = 20
    display, stream = make_display(em, tty=True, width=width)
    terminal = VirtualTerminal(width)
    with display:
        with ProgressManager(em, message="A very long operation name indeed", steps=3) as p:
            p(step=1)
            terminal.feed(stream.getvalue())
            # 19 usable columns: the bar is 11 stars wide, the header is cut.
            assert terminal.screen() == ["A very long operati", bar(1, 4, size=11)]
            p(step=3)
        with ProgressManager(em, message="spin") as p:
            p("a message much longer than the terminal is wide")
    assert "\n\\ a message much lo" in stream.getvalue()
    # Finished operations keep their whole header, broken into rows that fit.
    assert VirtualTerminal(width).feed(stream.getvalue()).screen() == [
        "A very long operati",
        "on name indeed:",
        bar(3, 11, size=11),
        "Done.",
        "spin:",
        "  Done.",
    ]


def test_width_follows_columns_at_each_redraw(em, monkeypatch):
    stream = FakeStream(tty=True)
    monkeypatch.setenv("COLUMNS", "30")
    with ProgressDisplay(em, stream=stream, interval=0), ProgressManager(
        em, message="Op", steps=2
    ) as progress:
        progress(step=1)
        assert stream.getvalue().endswith(bar(1, 10, size=21))
        monkeypatch.setenv("COLUMNS", "20")
        progress(step=2)
        assert stream.getvalue().endswith(f"\r{bar(2, 11, size=11)}{K}")


def test_long_step_numbers_shrink_the_bar(em):
    display, stream = make_display(em, tty=True)
    with display:
        em.emit(ProgressStartEvent(operation_id=1, message="Saving", steps=2_000_000))
        em.emit(ProgressStepEvent(operation_id=1, message="Saving", step=1_000_000))
        # Seven digits leave 29 stars for the bar on 39 usable columns.
        assert stream.getvalue() == f"Saving:\n1000000 [{'*' * 14:<29}]"
        em.emit(ProgressStepEvent(operation_id=1, message="Saving", step=float("nan")))
        assert stream.getvalue().endswith(f"\r  nan [{'':<31}]{K}")


def test_tiny_width_still_draws(em):
    display, stream = make_display(em, tty=True, width=3)
    with display:
        run_bar(em, message="Operation", steps=2)
    screen = VirtualTerminal(3).feed(stream.getvalue()).screen()
    # Two usable columns: finished rows are broken into two-character rows.
    rows = ["Operation:", bar(2, 1, size=1), "Done."]
    assert screen == [row[i : i + 2].rstrip() for row in rows for i in range(0, len(row), 2)]


# -- plain mode ---------------------------------------------------------------------------------


def test_plain_bar_bytes(em):
    display, stream = make_display(em, tty=False)
    with display:
        run_bar(em)
    assert stream.getvalue() == (
        "Op2:\n"
        "Op2: 1/4 (25%)\n"
        "Op2: 2/4 (50%)\n"
        "Op2: 3/4 (75%)\n"
        "Op2: 4/4 (100%)\n"
        "Op2: Done.\n"
    )


def test_plain_failure_and_spinner_bytes(em):
    display, stream = make_display(em, tty=False)
    with display:
        run_bar(em, message="Copy", steps=3, fail_after=1)
        with ProgressManager(em, message="Scan") as progress:
            progress()
            progress("dir b")
    assert stream.getvalue() == (
        "Copy:\n"
        "Copy: 1/3 (33%)\n"
        "Copy: EXCEPTION: boom\n"
        "Scan:\n"
        "Scan: step 0\n"
        "Scan: step 1: dir b\n"
        "Scan: Done.\n"
    )


def test_plain_output_has_no_control_characters(em):
    display, stream = make_display(em, tty=False)
    message = "bad\nname\x1b[31m"
    with display, pytest.raises(ValueError), ProgressManager(em, message=message, steps=2) as p:
        p("x\ry", step=1)
        raise ValueError("line one\nline two\tend")
    out = stream.getvalue()
    assert out == (
        "bad name [31m:\n"
        "bad name [31m: 1/2 (50%)\n"
        "bad name [31m: EXCEPTION: line one line two end\n"
    )
    assert all(c == "\n" or c.isprintable() for c in out)


def test_tty_messages_are_single_lines(em):
    display, stream = make_display(em, tty=True)
    with display, ProgressManager(em, message="two\nlines") as progress:
        progress("a\x1b[2Jb")
    out = stream.getvalue()
    assert "\x1b[2J" not in out
    assert VirtualTerminal(WIDTH).feed(out).screen() == ["two lines:", "  Done."]


def test_plain_interleaved_lines_name_their_operation(em):
    display, stream = make_display(em, tty=False)
    with display:
        a = ProgressManager(em, message="A", steps=2)
        b = ProgressManager(em, message="B", steps=2)
        a.start()
        b.start()
        b.step(step=1)
        a.step(step=1)
        a.end()
        b.end()
    assert stream.getvalue().splitlines() == [
        "A:",
        "B:",
        "B: 1/2 (50%)",
        "A: 1/2 (50%)",
        "A: Done.",
        "B: Done.",
    ]


def test_each_write_is_flushed(em):
    display, stream = make_display(em, tty=False)
    with display:
        run_bar(em, steps=2)
    assert stream.flushes == 4


# -- throttling ---------------------------------------------------------------------------------


def test_tty_throttle_defaults_to_fifty_milliseconds(em):
    display, stream = make_display(em, tty=True, interval=None)
    clock = FakeClock()
    display._clock = clock
    with display, ProgressManager(em, message="Op", steps=10) as progress:
        progress(step=1)  # first step always drawn
        clock.now += 0.01
        progress(step=2)  # too soon
        clock.now += 0.05
        progress(step=3)  # 0.06 s after the last draw
        clock.now += 0.001
        progress(step=4)  # too soon; the end draws the full bar anyway
    out = stream.getvalue()
    assert out == (
        f"Op:\n{bar(1, 3)}\r{bar(3, 9)}{K}\r{bar(4, 31)}{K}\nDone.\n"
    )


def test_plain_throttle_defaults_to_one_second(em):
    display, stream = make_display(em, tty=False, interval=None)
    clock = FakeClock()
    display._clock = clock
    with display, ProgressManager(em, message="Op", steps=4) as progress:
        for step in range(1, 5):
            progress(step=step)
            clock.now += 0.5
    assert stream.getvalue().splitlines() == ["Op:", "Op: 1/4 (25%)", "Op: 3/4 (75%)", "Op: Done."]


def test_throttle_is_per_operation(em):
    display, stream = make_display(em, tty=False, interval=10)
    display._clock = FakeClock()
    with display:
        a = ProgressManager(em, message="A", steps=2)
        b = ProgressManager(em, message="B", steps=2)
        a.start()
        b.start()
        a.step(step=1)
        b.step(step=1)
        a.step(step=2)
        b.step(step=2)
        a.end()
        b.end()
    assert stream.getvalue().splitlines() == [
        "A:", "B:", "A: 1/2 (50%)", "B: 1/2 (50%)", "A: Done.", "B: Done."
    ]


# -- lifetime -----------------------------------------------------------------------------------


def test_unreferenced_display_keeps_working(em):
    stream = FakeStream(tty=False)
    ProgressDisplay(em, stream=stream, interval=0)
    gc.collect()
    run_bar(em, steps=1)
    assert stream.getvalue() == "Op2:\nOp2: 1/1 (100%)\nOp2: Done.\n"


def test_close_disconnects_and_is_idempotent(em):
    display, stream = make_display(em, tty=False)
    assert len(list(em.get_listeners(ProgressStartEvent))) == 1
    display.close()
    display.close()
    assert display.closed
    for cls in (ProgressStartEvent, ProgressStepEvent, ProgressEndEvent):
        assert list(em.get_listeners(cls)) == []
    run_bar(em, steps=1)
    assert stream.getvalue() == ""


def test_close_after_external_disconnect(em):
    display, _ = make_display(em, tty=False)
    for cls, listener in display._listeners:
        em.disconnect(cls, listener)
    display.close()
    assert display.closed


def test_close_leaves_running_operation_and_moves_to_fresh_line(em):
    display, stream = make_display(em, tty=True)
    progress = ProgressManager(em, message="Op", steps=2)
    progress.start()
    progress.step(step=1)
    display.close()
    assert stream.getvalue() == f"Op:\n{bar(1, 16)}\n"
    assert display.writers == {}
    progress.end()
    assert stream.getvalue() == f"Op:\n{bar(1, 16)}\n"


def test_context_manager_returns_display(em):
    stream = FakeStream(tty=False)
    with ProgressDisplay(em, stream=stream) as display:
        assert isinstance(display, ProgressDisplay)
        assert not display.closed
    assert display.closed


# -- routing and writers ------------------------------------------------------------------------


class StoreStart(ProgressStartEvent):
    pass


class StoreStep(ProgressStepEvent):
    pass


class StoreEnd(ProgressEndEvent):
    pass


def test_progress_event_subclasses_are_displayed(em):
    display, stream = make_display(em, tty=False)
    with display:
        em.emit(StoreStart(operation_id="k", message="Saving key 'k'", steps=2))
        em.emit(StoreStep(operation_id="k", message="1 bytes", step=1))
        em.emit(StoreEnd(operation_id="k", message="done", exit_state="normal"))
    assert stream.getvalue().splitlines() == [
        "Saving key 'k':",
        "Saving key 'k': 1/2 (50%)",
        "Saving key 'k': Done.",
    ]


def test_events_of_unknown_operations_are_ignored(em):
    display, stream = make_display(em, tty=True)
    with display:
        em.emit(ProgressStepEvent(operation_id="nope", message="x", step=1))
        em.emit(ProgressEndEvent(operation_id="nope", message="x", exit_state="error"))
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("steps", "writer_class"),
    [(4, ProgressWriter), (1, ProgressWriter), (0, SpinWriter), (-1, SpinWriter),
     (None, SpinWriter), (True, SpinWriter)],
)
def test_writer_choice(em, steps, writer_class):
    display, _ = make_display(em, tty=False)
    with display:
        em.emit(ProgressStartEvent(operation_id=1, message="m", steps=steps))
        assert type(display.writers[1]) is writer_class
        em.emit(ProgressEndEvent(operation_id=1, message="m", exit_state="normal"))
        assert display.writers == {}


def test_writer_classes_can_be_swapped(em):
    class CountingWriter(OperationWriter):
        def __init__(self, display, operation_id, steps=None):
            super().__init__(display, operation_id)

        def plain_step(self):
            return f"at {self.last_step}"

    class MyDisplay(ProgressDisplay):
        progress_writer = CountingWriter
        spin_writer = CountingWriter

    stream = FakeStream(tty=False)
    with MyDisplay(em, stream=stream, interval=0):
        run_bar(em, steps=1)
    assert stream.getvalue() == "Op2:\nOp2: at 1\nOp2: Done.\n"


def test_default_event_manager_and_stream(capsys):
    with ProgressDisplay(interval=0, tty=False) as display, ProgressManager(
        message="Global", steps=1
    ) as progress:
        assert display.event_manager is progress.event_manager
        progress(step=1)
    assert capsys.readouterr().out == "Global:\nGlobal: 1/1 (100%)\nGlobal: Done.\n"


def test_tty_detected_from_stream(em):
    tty_stream = FakeStream(tty=True)
    plain_stream = FakeStream(tty=False)
    with ProgressDisplay(em, stream=tty_stream, width=WIDTH), ProgressDisplay(
        em, stream=plain_stream
    ):
        run_bar(em, steps=1)
    assert tty_stream.getvalue() == f"Op2:\n{bar(1, 31)}\nDone.\n"
    assert plain_stream.getvalue() == "Op2:\nOp2: 1/1 (100%)\nOp2: Done.\n"


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"width": -3}, {"interval": -0.1}])
def test_bad_arguments(em, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ProgressDisplay(em, **kwargs)
    assert list(em.get_listeners(ProgressStartEvent)) == []


def test_failed_construction_leaves_nothing_connected(em, monkeypatch):
    real_connect = em.connect

    def connect(cls, func, *args, **kwargs):
        if cls is ProgressEndEvent:
            raise RuntimeError("refused")
        real_connect(cls, func, *args, **kwargs)

    monkeypatch.setattr(em, "connect", connect)
    with pytest.raises(RuntimeError, match="refused"):
        ProgressDisplay(em, stream=FakeStream(tty=False))
    for cls in (ProgressStartEvent, ProgressStepEvent, ProgressEndEvent):
        assert list(em.get_listeners(cls)) == []


# -- threads ------------------------------------------------------------------------------------


def _run_threads(em, count: int, steps: int) -> None:
    barrier = threading.Barrier(count)

    def work(n: int) -> None:
        barrier.wait(JOIN_TIMEOUT)
        with ProgressManager(em, message=f"T{n}", steps=steps) as progress:
            for step in range(1, steps + 1):
                progress(step=step)
                time.sleep(0)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), "worker thread hung"


def test_concurrent_operations_plain(em):
    display, stream = make_display(em, tty=False)
    with display:
        _run_threads(em, count=6, steps=20)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 6 * 22
    for n in range(6):
        mine = [line for line in lines if line.split(":", 1)[0] == f"T{n}"]
        assert mine == [f"T{n}:"] + [
            f"T{n}: {s}/20 ({5 * s}%)" for s in range(1, 21)
        ] + [f"T{n}: Done."]


def test_concurrent_operations_tty(em):
    display, stream = make_display(em, tty=True)
    with display:
        _run_threads(em, count=6, steps=20)
    screen = VirtualTerminal(WIDTH).feed(stream.getvalue()).screen()
    assert len(screen) == 6 * 3
    groups = [screen[i : i + 3] for i in range(0, len(screen), 3)]
    assert sorted(group[0] for group in groups) == [f"T{n}:" for n in range(6)]
    assert all(group[1:] == [bar(20, 31), "Done."] for group in groups)
    assert display.writers == {}


# -- property: the screen always shows finished operations, then running ones -------------------

_actions = st.lists(
    st.tuples(
        st.sampled_from(["start", "step", "end"]),
        st.integers(0, 3),
        st.sampled_from([-1, 3, 5]),
        st.sampled_from(["normal", "normal", "error"]),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_actions)
def test_screen_model(actions):
    em = EventManager()
    stream = FakeStream(tty=True)
    running: dict[int, dict] = {}
    history: list[str] = []
    with ProgressDisplay(em, stream=stream, width=WIDTH, interval=0):
        for kind, n, steps, state in actions:
            label = f"Task {n}"
            if kind == "start" and n not in running:
                em.emit(ProgressStartEvent(operation_id=n, message=label, steps=steps))
                running[n] = {"steps": steps, "step": 0, "draws": 0}
            elif kind == "step" and n in running:
                op = running[n]
                op["step"] += 1
                op["draws"] += 1
                em.emit(ProgressStepEvent(operation_id=n, message=label, step=op["step"]))
            elif kind == "end" and n in running:
                op = running.pop(n)
                em.emit(ProgressEndEvent(operation_id=n, message="why", exit_state=state))
                history.append(f"{label}:")
                row = _model_row(op, label)
                if state == "normal":
                    if op["steps"] > 0:
                        history += [bar(op["step"], 31), "Done."]
                    else:
                        history.append("  Done.")
                else:
                    history += ([row] if row else []) + ["ERROR: why"]
        expected = list(history)
        for n, op in running.items():
            expected.append(f"Task {n}:")
            row = _model_row(op, f"Task {n}")
            if row:
                expected.append(row)
        assert VirtualTerminal(WIDTH).feed(stream.getvalue()).screen() == expected


def _model_row(op: dict, label: str) -> str | None:
    if not op["draws"]:
        return None
    if op["steps"] > 0:
        stars = min(round(op["step"] / op["steps"] * 31), 31)
        return bar(op["step"], stars)
    return f"{FRAMES[(op['draws'] - 1) % 4]} {label}"


def test_operation_writer_defaults():
    class Display:
        def label(self, operation_id):
            return "x"

    writer = OperationWriter(Display(), 1)
    writer.exit_state = "warning"
    writer.end_message = "careful"
    assert writer.live_rows(10) == []
    assert writer.final_rows(10) == ["WARNING: careful"]
    assert writer.plain_end() == "WARNING: careful"
    assert re.fullmatch(r"step 0", writer.plain_step())
