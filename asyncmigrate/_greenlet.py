"""Bridge the sync core and the event loop through SQLAlchemy's greenlets.

Sync code that SQLAlchemy runs through ``AsyncConnection.run_sync`` (or
:func:`run_sync_in_loop`) executes in a greenlet whose database calls switch
back to the event loop. From there, :func:`await_in_loop` awaits any
coroutine in the caller's loop, so sync code can sleep or hand work to a
thread without blocking the loop.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
from sqlalchemy.util import await_only, greenlet_spawn

try:  # SQLAlchemy >= 2.0.36 (or so): a public helper
    from sqlalchemy.util.concurrency import in_greenlet as _in_greenlet
except ImportError:  # pragma: no cover - older SQLAlchemy 2.0: its greenlet class says it
    def _in_greenlet() -> bool:
        from greenlet import getcurrent

        current = getcurrent()
        if getattr(current, "__sqlalchemy_greenlet_provider__", False):
            return True
        try:
            from sqlalchemy.util._concurrency_py3k import _AsyncIoGreenlet  # type: ignore[import-not-found]
        except ImportError:
            return False
        return isinstance(current, _AsyncIoGreenlet)


__all__ = [
    "Pauses",
    "await_in_loop",
    "in_loop_greenlet",
    "pausing",
    "run_shielded",
    "run_sync_in_loop",
    "sleep",
    "to_thread",
]

T = TypeVar("T")


class Pauses:
    """Counts the run's own waits that are not waits for the database (a sleep, a thread).

    A run that watches its connection for stalls (see
    :mod:`asyncmigrate.runtime.stalls`) runs inside :meth:`installed`;
    :func:`sleep` and :func:`to_thread` count themselves in it, so that a
    retry delay or a lock-polling pause is never taken for a silent server.
    """

    def __init__(self) -> None:
        self.active = 0

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Make this the task's counter for the block (greenlets and tasks started in it inherit it)."""
        token = _pauses.set(self)
        try:
            yield
        finally:
            _pauses.reset(token)


_pauses: ContextVar[Pauses | None] = ContextVar("asyncmigrate_pauses", default=None)


@contextmanager
def pausing() -> Iterator[None]:
    """Mark the enclosed wait as the run's own, not a wait for the database."""
    pauses = _pauses.get()
    if pauses is None:
        yield
        return
    pauses.active += 1
    try:
        yield
    finally:
        pauses.active -= 1


def in_loop_greenlet() -> bool:
    """True when running sync code that can await in the event loop."""
    return bool(_in_greenlet())


def await_in_loop(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` in the event loop from sync code running in a loop greenlet."""
    return await_only(awaitable)


async def run_sync_in_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run sync ``fn`` in a greenlet whose blocking points yield to the event loop."""
    return await greenlet_spawn(fn, *args, **kwargs)


def sleep(seconds: float) -> None:
    """Sleep without blocking the event loop when called from a loop greenlet."""
    if in_loop_greenlet():
        with pausing():
            await_in_loop(anyio.sleep(seconds))
    else:
        time.sleep(seconds)


def to_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a worker thread when in a loop greenlet (so the loop keeps going)."""
    if in_loop_greenlet():
        with pausing():
            return await_in_loop(anyio.to_thread.run_sync(fn))
    return fn()


def run_shielded(fn: Callable[[], None], timeout: float) -> bool:
    """Run sync ``fn`` protected from cancellation, for at most ``timeout`` seconds.

    For clean-up while the task is being cancelled (a rollback, giving a
    lock back): every database call ``fn`` makes still reaches the server.
    Returns True when ``fn`` completed, False when time ran out; ``fn``'s
    own errors propagate.
    """
    if not in_loop_greenlet():
        fn()
        return True

    async def shielded() -> bool:
        with anyio.move_on_after(timeout, shield=True) as scope:
            await greenlet_spawn(fn)
        return not scope.cancelled_caught

    done: bool = await_only(shielded())
    return done
