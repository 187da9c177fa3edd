"""Send a migration's answer-less statements the short way, one at a time.

The DDL a migration emits (and ``op.execute`` text without parameters)
needs no answer but success. Where the driver adapter can send a statement
itself (:attr:`~asyncmigrate.runtime.drivers.Driver.raw_statements`),
:class:`RawStatements` compiles such a statement with its values inline
and hands it over: one round trip instead of SQLAlchemy's prepare and
execute. Everything else -- queries, statements with parameters or
execution options, anything that will not compile inline -- goes through
SQLAlchemy as usual.

A statement is sent when the migration calls for it and its error is
raised there, naming that statement: nothing waits, nothing is sent ahead,
and nothing built for one database is reused for another.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ClauseElement, TextClause
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.schema import DefaultGenerator
from sqlalchemy.sql.selectable import Select

from .drivers import Driver, Statement

__all__ = ["RawStatements", "inline_sql"]


def inline_sql(construct: Executable, connection: Connection) -> str | None:
    """``construct`` compiled for ``connection``'s dialect with its values inline, if it needs no answer.

    None for what must go through SQLAlchemy: queries, ``RETURNING``, text
    with bound parameters, sequences' ``next_value``, and anything the
    dialect cannot render with literal values.
    """
    if not isinstance(construct, ClauseElement) or isinstance(construct, (Select, DefaultGenerator)):
        return None
    if isinstance(construct, UpdateBase) and construct._returning:
        return None
    if isinstance(construct, TextClause) and construct._bindparams:
        return None
    try:
        sql = str(construct.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    except (CompileError, NotImplementedError, TypeError, ValueError):
        return None
    return sql.strip() or None


class RawStatements:
    """Route a migration's answer-less statements to its driver adapter (see the module docstring).

    Installed on the dialect implementation while a run is online; it owns
    the decision per statement and leaves sending to the driver.
    """

    def __init__(self, connection: Connection, driver: Driver) -> None:
        self.connection = connection
        self.driver = driver

    def send(
        self,
        construct: Executable,
        execution_options: Any = None,
        multiparams: Any = None,
        params: Any = None,
    ) -> bool:
        """Send ``construct`` now if it needs no answer; return whether it was sent."""
        if execution_options or multiparams is not None or params:
            return False
        sql = inline_sql(construct, self.connection)
        if sql is None:
            return False
        self.driver.run(Statement(sql))
        return True
