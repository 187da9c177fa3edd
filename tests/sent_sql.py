"""Watch the SQL asyncpg sends, for tests about round trips and batching."""

from __future__ import annotations

from typing import Any

import asyncpg
import asyncpg.introspection
import pytest

#: Queries asyncpg sends on its own (type introspection): not ours to count.
ASYNCPG_OWN = frozenset(
    value for name, value in vars(asyncpg.introspection).items()
    if name.isupper() and isinstance(value, str)
)


def ours(query: str) -> bool:
    """Whether ``query`` is one asyncmigrate or SQLAlchemy sent (not asyncpg's introspection)."""
    return query not in ASYNCPG_OWN


def record_sql(
    monkeypatch: pytest.MonkeyPatch, *, prepared: bool = False, into: list[str] | None = None
) -> list[str]:
    """Record, in order, every simple-protocol ``execute`` on any asyncpg connection.

    With ``prepared``, every statement asyncpg prepares too (SQLAlchemy's
    queries, parameterized executes, fetches): then each query is listed once.
    Returns the list it appends to (``into``, or a new one).
    """
    sent = [] if into is None else into
    execute = asyncpg.Connection.execute
    get_statement = asyncpg.Connection._get_statement

    async def executing(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        if not args:  # with arguments it is prepared (and recorded there)
            sent.append(query)
        return await execute(self, query, *args, **kw)

    async def preparing(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        if ours(query):
            sent.append(query)
        return await get_statement(self, query, *args, **kw)

    monkeypatch.setattr(asyncpg.Connection, "execute", executing)
    if prepared:
        monkeypatch.setattr(asyncpg.Connection, "_get_statement", preparing)
    return sent
