"""Stop signals as cancellation: SIGINT and SIGTERM cancel the run the way Ctrl-C does.

Python's default SIGTERM ends the process on the spot: the server keeps
running the statement that was sent and keeps the migration lock until it
notices the client is gone. :class:`StopSignals` turns SIGINT and SIGTERM
into a call (usually ``CancelScope.cancel``) in the event loop, so the run
rolls back and releases its lock before the process exits. Only the main
thread can install signal handlers; elsewhere it watches nothing.

It uses :func:`signal.signal` (not ``loop.add_signal_handler``, which resets
the handler to the default on removal), so the handlers found on entry -- a
server's own, such as uvicorn's -- are restored on exit, and ``chain=True``
keeps calling them too.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals", "exit_code", "signal_name"]

#: The signals that stop a run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_code(signum: int) -> int:
    """Return the exit status for a run stopped by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    """Return ``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:  # pragma: no cover - only the stop signals come here
        return f"signal {signum}"


class StopSignals:
    """Call ``on_signal(signum)`` in the running loop for each SIGINT/SIGTERM while entered.

    It owns the process's handlers for :data:`STOP_SIGNALS` while entered and
    the list of signals received (:attr:`received`); what a signal does is
    the caller's ``on_signal``.

    :param on_signal: called in the event loop's thread with the signal number.
    :param chain: also call the handlers that were installed before (a server's).
    """

    def __init__(self, on_signal: Callable[[int], None], *, chain: bool = False) -> None:
        self.on_signal = on_signal
        self.chain = chain
        self.received: list[int] = []
        """The stop signals received so far, in order."""
        self._previous: dict[int, Any] = {}
        self._restored: dict[int, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def first(self) -> int | None:
        """The first stop signal received, if any."""
        return self.received[0] if self.received else None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # ignored (nohup, a background job): it stays ignored
            self._previous[signum] = signal.signal(signum, self._handle)
        self._restored = dict(self._previous)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        previous = self._previous.get(signum)
        if self.chain and callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.on_signal, signum)

    def resend_unhandled(self) -> None:
        """After exit: deliver again the first signal its earlier handler has not seen.

        Call it once the run has cleaned up, so the process then does what it
        would have done at once: end by SIGTERM's default action, or raise
        :class:`KeyboardInterrupt` for SIGINT. A signal whose earlier handler
        was chained (a server's) is not sent again.
        """
        signum = self.first
        if signum is None:
            return
        previous = self._restored.get(signum)
        if previous is None or (self.chain and callable(previous)
                                and previous is not signal.default_int_handler):
            return
        signal.raise_signal(signum)

    def end_process(self) -> None:
        """After exit: end the process by the first signal's default action (130, 143 to a shell).

        For a run stopped by a signal under a server that waits for start-up
        before acting on signals: once the clean-up is done, the process does
        what the signal asked, as the server would have after a graceful stop.
        """
        signum = self.first
        if signum is None:
            return
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
