"""A clock that emits :class:`HeartbeatEvent` at a fixed cadence.

Useful to drive periodic work (animations, polling, watchdogs) from the event
system: connect a listener to :class:`HeartbeatEvent` and call
:meth:`Heartbeat.serve` to tick on a background thread.  Listeners run on the
heartbeat's thread; a slow listener stretches the period.
"""

from __future__ import annotations

import threading
import time

from encore.events.abstract_event_manager import BaseEvent, BaseEventManager
from encore.events.package_globals import get_event_manager

__all__ = ["Heartbeat", "HeartbeatEvent"]


class HeartbeatEvent(BaseEvent):
    """Event emitted on every tick of a :class:`Heartbeat`.

    Attributes
    ----------
    source : Heartbeat
        The heartbeat which emitted the event.
    time : float
        The ``time.monotonic()`` value at the tick (not wall-clock time).
    frame : int
        The tick number: 0, 1, 2, ...
    interval : float
        The heartbeat's interval in seconds.
    """


class Heartbeat:
    """Emit a :class:`HeartbeatEvent` every ``interval`` seconds.

    Parameters
    ----------
    interval : float, optional
        Seconds between ticks, 1/50 by default.
    event_manager : BaseEventManager, optional
        Where to emit; the global event manager by default (taken now).

    Attributes
    ----------
    state : str
        ``'waiting'`` before running, then ``'running'`` or ``'paused'``, and
        ``'stopped'`` once the loop has exited.  Assigning any other value
        also makes the loop exit, as in the original EnCore.
    frame_count : int
        The number of events emitted so far.
    """

    def __init__(self, interval: float = 1 / 50, event_manager: BaseEventManager | None = None):
        if not interval > 0:
            raise ValueError(f"heartbeat interval must be positive, not {interval!r}")
        self.interval = interval
        self.event_manager = get_event_manager() if event_manager is None else event_manager
        self.state = "waiting"
        self.frame_count = 0
        self._wake = threading.Event()
        # Set while no loop is running; stop() waits on it.
        self._idle = threading.Event()
        self._idle.set()
        self._loop_thread: threading.Thread | None = None

    def run(self) -> None:
        """Tick on the calling thread until :meth:`stop` (blocks).

        Raises
        ------
        RuntimeError
            If the heartbeat is already running.
        """
        self._prepare()
        self._loop()

    def _prepare(self) -> None:
        if not self._idle.is_set():
            raise RuntimeError("heartbeat is already running")
        self._idle.clear()
        self._wake.clear()
        # Set before any thread starts, so an immediate stop() is not lost.
        self.state = "running"

    def _loop(self) -> None:
        self._loop_thread = threading.current_thread()
        try:
            while self.state in ("running", "paused"):
                if self.state == "paused":
                    self._sleep(self.interval)
                    continue
                start = time.monotonic()
                self.event_manager.emit(
                    HeartbeatEvent(
                        source=self, time=start, frame=self.frame_count, interval=self.interval
                    )
                )
                self.frame_count += 1
                # Aim at a fixed cadence, but always yield for at least 1 ms.
                self._sleep(max(start + self.interval - time.monotonic(), 0.001))
        finally:
            self.state = "stopped"
            self._loop_thread = None
            self._idle.set()

    def _sleep(self, seconds: float) -> None:
        # An Event wait rather than time.sleep, so stop() takes effect at once.
        self._wake.wait(seconds)

    def serve(self, daemon: bool = True) -> threading.Thread:
        """Run the heartbeat on a new thread and return that thread.

        Parameters
        ----------
        daemon : bool, optional
            Whether the thread is a daemon thread (the default, as in the
            original EnCore, so a forgotten heartbeat never blocks exit).

        Raises
        ------
        RuntimeError
            If the heartbeat is already running.
        """
        self._prepare()
        thread = threading.Thread(target=self._loop, name="Heartbeat", daemon=daemon)
        try:
            thread.start()
        except BaseException:
            self.state = "stopped"
            self._idle.set()
            raise
        return thread

    def pause(self) -> None:
        """Stop emitting events, but keep the loop alive until :meth:`resume`."""
        if self.state == "running":
            self.state = "paused"

    def resume(self) -> None:
        """Resume emitting after :meth:`pause`."""
        if self.state == "paused":
            self.state = "running"

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the loop and wait for the serving thread to finish.

        Parameters
        ----------
        timeout : float, optional
            The longest time to wait for the thread, in seconds.

        Returns
        -------
        bool
            True if the loop has ended (or, when called from a listener on
            the heartbeat's own thread, will end as soon as it returns);
            False if the wait timed out.
        """
        # With no loop running nobody would turn "stopping" into "stopped".
        self.state = "stopped" if self._idle.is_set() else "stopping"
        self._wake.set()
        if self._loop_thread is threading.current_thread():
            return True  # called from a listener: the loop ends when it returns
        return self._idle.wait(timeout)

    def __repr__(self) -> str:
        return (
            f"<Heartbeat interval={self.interval} state={self.state!r} frames={self.frame_count}>"
        )
