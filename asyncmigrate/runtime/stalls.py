"""Notice a connection that stopped answering in the middle of a run (``read_timeout``).

A network can fail one way: the statement reaches the server, the server
runs it and answers, and the answer never arrives (a stalled proxy or NAT,
a half-dead link). No reset ever comes, TCP keep-alives are answered by
whatever sits in between, and the run would wait for ever while its server
session sits idle in its transaction, holding the migration lock.

A plain per-statement deadline cannot tell that apart from a long step (an
index built over an hour). So the deadline is on *silence*: once a run has
been waiting for the database for ``read_timeout`` seconds, a
:class:`StallWatch` asks the server, over a new connection, what the run's
sessions are doing:

* one of them is running a statement (or waiting for a lock inside one):
  the server is working, the run keeps waiting, and asks again after
  another ``read_timeout``;
* all of them have been idle (or are gone) for ``read_timeout`` seconds: the
  server finished and the answer was lost. The sessions are terminated
  (their transactions roll back, the lock is free at once) and the run
  fails with one line;
* the server cannot be reached (``connect_timeout``): the run fails with one
  line saying its outcome on the server is not known.

"Waiting for the database" is measured from the event loop: while a
migration runs Python code the loop does not run, so the watch's clock
restarts whenever it wakes up late, and the run's own pauses (a retry
delay, lock polling, loading revision files in a thread) do not count
either (:func:`asyncmigrate._greenlet.pausing`). A slow or busy process can
only delay the verdict, never cause a false one. SQLite has no network and
is not watched.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import anyio

from .._greenlet import Pauses
from ..exceptions import ConnectionFailedError
from ..masking import get_logger
from .sessions import SessionProbe
from .timeouts import parse_seconds

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["DEFAULT_READ_TIMEOUT", "StallWatch", "read_timeout"]

log = get_logger(__name__)

#: Seconds of silence after which a run checks on its server (``read_timeout``).
DEFAULT_READ_TIMEOUT = 60.0

#: How late (seconds) a wake-up may be before the loop counts as having been busy.
_LATE = 0.5


def read_timeout(config: Config) -> float | None:
    """The configured ``read_timeout`` in seconds (default 60; ``0`` for none).

    :raises ConfigError: when it is not a non-negative number.
    """
    return parse_seconds(config.get_alembic_option("read_timeout"), "read_timeout", DEFAULT_READ_TIMEOUT)


class StallWatch:
    """Watch one run's server sessions for a lost answer (see the module docstring)."""

    def __init__(self, probe: SessionProbe, read_timeout: float, connect_timeout: float | None) -> None:
        self.probe = probe
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout or read_timeout
        self.pauses = Pauses()

    @classmethod
    def for_config(
        cls, config: Config, probe: SessionProbe, connect_timeout: float | None
    ) -> StallWatch | None:
        """The watch ``config`` asks for (``read_timeout``), or None when it is off."""
        seconds = read_timeout(config)
        return cls(probe, seconds, connect_timeout) if seconds else None

    async def run(self, run: Awaitable[None]) -> None:
        """Await ``run`` under the watch; if its connection stalls, stop it and fail with one line.

        :raises ConnectionFailedError: the watch's verdict, when it stopped the run.
        """
        failure: list[BaseException] = []
        verdict: list[str] = []
        with self.pauses.installed():
            async with anyio.create_task_group() as group:

                async def watching() -> None:
                    verdict.append(await self._watch())
                    group.cancel_scope.cancel()

                group.start_soon(watching)
                try:
                    await run
                except BaseException as exc:  # re-raised below, outside the task group
                    failure.append(exc)
                finally:
                    group.cancel_scope.cancel()
        if verdict and failure:
            raise ConnectionFailedError(verdict[0]) from None
        if failure:
            raise failure[0]

    async def _watch(self) -> str:
        """The verdict, with the sessions terminated, once the run is stalled; else run until cancelled."""
        tick = min(1.0, self.read_timeout / 4)
        clock = anyio.current_time
        waiting_since = clock()
        while True:
            before = clock()
            await anyio.sleep(tick)
            now = clock()
            if now - before > tick + _LATE or self.pauses.active or not self.probe.sessions:
                waiting_since = now  # the run was busy in Python, pausing on purpose, or not connected
                continue
            if now - waiting_since < self.read_timeout:
                continue
            verdict = await self._ask_the_server()
            if verdict is not None:
                return verdict
            waiting_since = clock()

    async def _ask_the_server(self) -> str | None:
        states = await self.probe.states(self.connect_timeout)
        if any(state is not None and state.running for state in states):
            return None
        silent = f"no answer from the database for {self.read_timeout:g}s (read_timeout)"
        if any(state is None for state in states):
            return (
                f"The connection stalled: {silent}, and it cannot be reached on a new connection "
                f"within {self.connect_timeout:g}s; whether the last statement committed is not known "
                "(the server rolls back an unfinished transaction once it notices the connection is gone)"
            )
        if any(state is not None and state.idle_for < self.read_timeout for state in states):
            return None  # it answered something recently: not silent for long enough yet
        stopped = await self.probe.interrupt(terminate=True, timeout=self.connect_timeout)
        log.debug("Stalled run: terminated %d server session(s)", stopped)
        return (
            f"The connection stalled: {silent} although the server had finished the statement; "
            "the answer was lost on the way, so the server session was terminated and its "
            "transaction rolled back"
        )
