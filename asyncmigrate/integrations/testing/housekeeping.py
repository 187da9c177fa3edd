"""Who owns a test database, and dropping those whose session is gone.

Every database a test session creates carries the session's random *token*
in its name (``amt_<token>_<n>``; a template being built:
``amtpl_<project>_<token>_building``), and the session holds a lock named
after its token for as long as it lives:

* PostgreSQL: a session-level advisory lock on a connection of its own, so
  the server releases it the moment the process dies (even ``kill -9``);
  each template the session clones from is also held with a *shared* lock;
* MySQL/MariaDB: ``GET_LOCK`` on a connection of its own;
* SQLite: an ``flock`` on ``session-<token>.lock`` in the cache directory.

A database is a leftover only when its owner's lock can be taken -- the
owner is dead -- and (PostgreSQL) no connection is open on it. A session
sweeps the leftovers it finds when it first talks to a server;
``--asyncmigrate-cleanup`` also drops the project's templates no live
session uses (other projects' templates on a shared server are left alone).
Another session's databases in use are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

__all__ = ["SessionLease", "Sweep"]

from ...masking import get_logger

log = get_logger("asyncmigrate.testing")

_TOKEN = r"[0-9a-f]{10}"
_OWNED = re.compile(rf"^amt_(?P<token>{_TOKEN})_\d+$|^amtpl_[0-9a-f]+_(?P<btoken>{_TOKEN})_building$")
_TEMPLATE = re.compile(r"^amtpl_[0-9a-f]+_[0-9a-f]{20}$")
_SQLITE_OWNED = re.compile(rf"\.(?P<token>{_TOKEN})\.building\.db$")


def owner_token(name: str) -> str | None:
    """Return the token of the session that made database ``name`` (None: not a session's)."""
    match = _OWNED.match(name)
    if match is None:
        return None
    return match.group("token") or match.group("btoken")


@dataclass
class Sweep:
    """What one sweep did: leftovers dropped, and databases left alone because a session holds them."""

    dropped: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)


class SessionLease:
    """One test session's claim on the databases it creates, and the sweeping of dead sessions'.

    It owns the session token, the connections holding the session's locks
    (one per server) and the rules for deciding that a database is a
    leftover. Creating and dropping the session's own databases is the
    factory's job.
    """

    def __init__(self, cache_dir: Path, *, purge_templates: bool = False) -> None:
        self.token = secrets.token_hex(5)
        self.cache_dir = cache_dir
        self.purge_templates = purge_templates
        #: Project keys whose unused templates a purge drops.
        self.projects: set[str] = set()
        self._counter = 0
        self._holders: dict[str, tuple[AsyncEngine, AsyncConnection]] = {}
        self._sqlite_lock: Any = None
        self.sweeps: list[Sweep] = []

    # -- names ------------------------------------------------------------------------------

    def database_name(self) -> str:
        """Return a new per-test database name owned by this session."""
        self._counter += 1
        return f"amt_{self.token}_{self._counter}"

    def building_name(self, project: str) -> str:
        """Return the name a template of ``project`` is built under."""
        return f"amtpl_{project}_{self.token}_building"

    def file_name(self, stem: str) -> str:
        """Return a file name for a SQLite template being built."""
        return f"{stem}.{self.token}.building.db"

    # -- holding ----------------------------------------------------------------------------

    async def hold(self, url: URL) -> bool:
        """Take this session's lock on ``url``'s server (once); True the first time."""
        server = str(url.set(database=None))
        if server in self._holders:
            return False
        engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        connection = await engine.connect()
        try:
            if url.get_backend_name() == "postgresql":
                await connection.execute(text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"),
                                         {"k": self._key(self.token)})
            else:
                await connection.execute(text("SELECT GET_LOCK(:k, 0)"), {"k": self._key(self.token)})
        except BaseException:
            await connection.close()
            await engine.dispose()
            raise
        self._holders[server] = (engine, connection)
        return True

    def hold_files(self) -> bool:
        """Take this session's lock file in the cache directory (SQLite); True the first time."""
        if self._sqlite_lock is not None:
            return False
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.cache_dir / f"session-{self.token}.lock", "a+b")  # noqa: SIM115
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        self._sqlite_lock = handle
        return True

    async def release(self) -> None:
        """Release every lock this session holds (at the end of the session)."""
        for engine, connection in self._holders.values():
            with contextlib.suppress(Exception):
                await connection.close()
            await engine.dispose()
        self._holders.clear()
        if self._sqlite_lock is not None:
            path = Path(self._sqlite_lock.name)
            self._sqlite_lock.close()
            self._sqlite_lock = None
            path.unlink(missing_ok=True)

    @staticmethod
    def _key(token: str) -> str:
        return f"asyncmigrate-session:{token}"

    async def use_template(self, admin: AsyncConnection, name: str) -> None:
        """Mark PostgreSQL template ``name`` as used by this session (a shared lock held till the end)."""
        server = str(admin.engine.url.set(database=None))
        if server not in self._holders:
            await self.hold(admin.engine.url)
        _, holder = self._holders[server]
        await holder.execute(text("SELECT pg_advisory_lock_shared(hashtextextended(:k, 0))"),
                             {"k": f"use:{name}"})

    async def drop_template(self, admin: AsyncConnection, name: str) -> bool:
        """Drop PostgreSQL template ``name`` unless a live session uses it; True when dropped."""
        got = (await admin.execute(text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"),
                                   {"k": f"use:{name}"})).scalar()
        if not got:
            return False
        try:
            await admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return True
        except Exception as exc:
            log.debug("Could not drop the template %s: %s", name, exc)
            return False
        finally:
            await admin.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"),
                                {"k": f"use:{name}"})

    async def drop_stale_templates(self, admin: AsyncConnection, project: str, keep: str) -> None:
        """Drop ``project``'s other templates (earlier histories) that no live session uses."""
        rows = await admin.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :pattern AND datname <> :keep"),
            {"pattern": f"amtpl\\_{project}\\_%", "keep": keep},
        )
        for (stale,) in rows.all():
            if _TEMPLATE.match(stale) and await self.drop_template(admin, stale):
                log.info("Dropped the stale template %s", stale)

    # -- sweeping ---------------------------------------------------------------------------

    async def sweep(self, admin: AsyncConnection) -> Sweep:
        """Drop the databases of dead sessions on ``admin``'s server.

        When purging, also the templates of :attr:`projects` that no live session uses.
        """
        result = Sweep()
        if admin.engine.url.get_backend_name() == "postgresql":
            names = [r[0] for r in await admin.execute(text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'amt%'"))]
        else:
            names = [r[0] for r in await admin.execute(text(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'amt%'"))]
        owners: dict[str, list[str]] = {}
        for name in names:
            token = owner_token(name)
            if token is not None and token != self.token:
                owners.setdefault(token, []).append(name)
        for token, owned in sorted(owners.items()):
            await self._sweep_owner(admin, token, owned, result)
        if self.purge_templates and admin.engine.url.get_backend_name() == "postgresql":
            for name in names:
                if _TEMPLATE.match(name) and name.split("_")[1] in self.projects:
                    (result.dropped if await self.drop_template(admin, name) else result.in_use).append(name)
        if result.dropped:
            log.warning("Dropped %d test database(s) left by ended sessions: %s",
                        len(result.dropped), ", ".join(sorted(result.dropped)))
        self.sweeps.append(result)
        return result

    async def _sweep_owner(self, admin: AsyncConnection, token: str, owned: list[str], result: Sweep) -> None:
        postgresql = admin.engine.url.get_backend_name() == "postgresql"
        key = {"k": self._key(token)}
        if postgresql:
            free = (await admin.execute(
                text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), key)).scalar()
        else:
            free = (await admin.execute(text("SELECT IS_FREE_LOCK(:k)"), key)).scalar() == 1
        if not free:
            result.in_use.extend(owned)
            return
        try:
            for name in owned:
                if postgresql:
                    busy = (await admin.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
                    )).scalar()
                    if busy:
                        result.in_use.append(name)
                        continue
                    statement = f'DROP DATABASE IF EXISTS "{name}"'
                else:
                    statement = f"DROP DATABASE IF EXISTS `{name}`"
                try:
                    await admin.execute(text(statement))
                    result.dropped.append(name)
                except Exception as exc:
                    log.debug("Could not drop %s: %s", name, exc)
                    result.in_use.append(name)
        finally:
            if postgresql:
                await admin.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), key)

    def sweep_files(self) -> Sweep:
        """Delete SQLite templates half-built by dead sessions, and their lock files."""
        result = Sweep()
        if not self.cache_dir.is_dir():
            return result
        for path in sorted(self.cache_dir.iterdir()):
            match = _SQLITE_OWNED.search(path.name)
            token = match.group("token") if match else None
            if token is None and path.name.startswith("session-") and path.suffix == ".lock":
                token = path.stem[len("session-"):]
            if token is None or token == self.token or not self._owner_gone(token):
                continue
            path.unlink(missing_ok=True)
            result.dropped.append(path.name)
        self.sweeps.append(result)
        return result

    def _owner_gone(self, token: str) -> bool:
        lock = self.cache_dir / f"session-{token}.lock"
        if not lock.exists():
            return True
        with open(lock, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return True
