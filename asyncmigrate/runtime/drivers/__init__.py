"""Driver adapters: the only code that reaches into drivers' or SQLAlchemy adapters' internals.

A migration talks to its database through SQLAlchemy. Two things SQLAlchemy
does not offer cost round trips that matter when thousands of tenants
migrate: sending a statement without preparing it first, and letting the
statement that opens (or closes) a transaction travel with its neighbours.
A :class:`Driver` offers exactly those, for one connection:

* :meth:`Driver.run` sends one answer-less statement in one round trip,
  opening the connection's transaction in the same round trip when
  SQLAlchemy has begun one the driver has not started yet;
* :meth:`Driver.commit_with` sends the version-row changes, ``COMMIT`` and
  what must follow the commit (the lock's release) as one round trip;
* :meth:`Driver.read_outside_transaction` reads without opening a
  transaction.

The base class is the plain path: every statement goes through SQLAlchemy
and nothing is folded (MySQL/MariaDB, other drivers, and any installation
whose driver or SQLAlchemy version fails an adapter's self-check). The
adapters for asyncpg and aiosqlite live in their own modules; each checks
once per process that the installed versions behave as it assumes, and
falls back to the plain path (logging why at debug level) when they do not.

Statements are always sent one at a time, in the order the migration
issues them, and a statement runs when the migration calls for it: errors
surface where Alembic raises them, and a failed round trip names the one
statement it carried.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from ..._greenlet import in_loop_greenlet
from ...masking import get_logger

__all__ = ["Driver", "ServerSession", "Statement", "driver_for"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Statement:
    """An answer-less SQL statement, ready to send as it is.

    ``expect_rows`` makes the statement fail unless it changed exactly that
    many rows (version-row ``UPDATE``/``DELETE``: a count of 0 means another
    migrator or the migration itself moved the version table);
    ``mismatch`` is then the message, to which the count found is added.
    """

    sql: str
    expect_rows: int | None = None
    mismatch: str = ""
    token: str = field(default="", compare=False)
    """A unique marker a self-checking form of the statement puts in its error."""

    @classmethod
    def checked(cls, sql: str, rows: int, mismatch: str) -> Statement:
        """A statement that must change exactly ``rows`` rows, else fails with ``mismatch``."""
        return cls(sql, rows, mismatch, f"asyncmigrate-row-check-{secrets.token_hex(6)}")


@dataclass(frozen=True)
class ServerSession:
    """The server-side identity of a connection, so it can be interrupted from another one."""

    dialect: str
    pid: int
    client_port: int | None = None
    """The session's local client port (PostgreSQL, over TCP), for logs; a proxy or NAT changes it."""


class Driver:
    """Reach the database of one connection: the plain path, through SQLAlchemy alone.

    Subclasses add the shortcuts their driver allows. The plain path folds
    nothing: :meth:`commit_with` and :meth:`read_outside_transaction` answer
    that they did not apply, and the caller does the work the usual way.
    """

    name = "plain"
    raw_statements = False
    """Whether :meth:`run` sends statements itself (else the caller executes them through SQLAlchemy)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def run(self, statement: Statement) -> None:
        """Send one answer-less statement now (only where :attr:`raw_statements`)."""
        raise NotImplementedError(f"The {self.name} driver path sends no raw statements")

    def commit_with(self, statements: list[Statement], after: list[str]) -> bool:
        """Send ``statements``, ``COMMIT`` and ``after`` in one round trip.

        Returns False (nothing sent) where the driver cannot: the caller then
        runs the statements, commits through SQLAlchemy and runs ``after``.
        ``after`` runs only if the commit succeeded.
        """
        return False

    def read_outside_transaction(self, sql: str, *args: Any) -> tuple[bool, Any]:
        """Fetch one row without opening a transaction (``$1``-style parameters).

        ``(False, None)`` where this does not apply: the caller reads through SQLAlchemy.
        """
        return False, None

    def simple_status(self, sql: str) -> str | None:
        """Run ``sql`` as it is, in one round trip, and return the server's status line.

        Opens no transaction. None where the driver cannot (the caller goes
        through SQLAlchemy).
        """
        return None

    def server_in_transaction(self) -> bool | None:
        """Whether the server holds a transaction open on this session (None: unknown)."""
        return None

    def session(self) -> ServerSession | None:
        """The server session behind the connection (None where there is none, e.g. SQLite)."""
        return None

    def interrupt(self) -> None:
        """Ask the database to stop the statement running on this connection (best effort).

        Called while a migration is being cancelled; must not block.
        """


def translated_schema(connection: Connection | None, schema: str | None) -> str | None:
    """The schema ``schema`` stands for on ``connection``: its ``schema_translate_map`` applied.

    SQLAlchemy applies the map to the statements it executes; SQL that
    carries a schema name as text or as a value (catalog queries, lock keys)
    must be given the translated name.
    """
    if connection is None:
        return schema
    mapping = connection.get_execution_options().get("schema_translate_map")
    if mapping and schema in mapping:
        translated: str | None = mapping[schema]
        return translated
    return schema


def driver_for(connection: Connection | None) -> Driver | None:
    """Return the adapter for ``connection``'s driver (the plain path when none applies).

    A connection with a ``schema_translate_map`` gets its driver's adapter
    without the short path for statements (:attr:`Driver.raw_statements`
    off): SQL asyncmigrate renders itself would name the schemas untranslated,
    so every statement goes through SQLAlchemy, which applies the map.
    """
    driver = _adapter_for(connection)
    if driver is not None and connection is not None and driver.raw_statements and (
        connection.get_execution_options().get("schema_translate_map")
    ):
        driver.raw_statements = False
    return driver


def _adapter_for(connection: Connection | None) -> Driver | None:
    if connection is None:
        return None
    dialect = connection.dialect
    if in_loop_greenlet():
        if dialect.name == "postgresql" and dialect.driver == "asyncpg":
            from .asyncpg import AsyncpgDriver

            if AsyncpgDriver.usable(connection):
                return AsyncpgDriver(connection)
        elif dialect.name == "sqlite" and dialect.driver == "aiosqlite":
            from .aiosqlite import AiosqliteDriver

            if AiosqliteDriver.usable(connection):
                return AiosqliteDriver(connection)
    if dialect.name in ("mysql", "mariadb"):
        from .mysql import MySQLDriver

        return MySQLDriver(connection)
    return Driver(connection)
