"""The fan-out's engines: one pool per server URL, shared by that URL's tenants.

Tenants on one URL take turns on pooled connections, so a connection a
tenant hands back must be fit for the next one: the runtime resets what a
run sets on its session (``RESET search_path`` / ``USE``), and every
checkout of a connection used before is pinged first, so a connection the
server or the network dropped since (a reset, a restart, an idle timeout) is
replaced before a tenant gets it instead of failing that tenant's first
statement. On asyncpg the ping is one empty simple-protocol query (one round
trip; SQLAlchemy's ``pool_pre_ping`` there opens and rolls back a
transaction around it: three); elsewhere it is ``pool_pre_ping``. SQLite
files get no pool: a connection is a file handle.
"""

from __future__ import annotations

from collections import Counter

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ..runtime.connecting import answer_first_connect
from ..runtime.drivers.asyncpg import ping_on_checkout

__all__ = ["EnginePool"]


class EnginePool:
    """Own one engine per tenant URL; dispose it once its last tenant is done.

    :param pool_size: connections per engine at most (fewer when fewer tenants remain).
    :param remaining: how many tenants each URL has; :meth:`done` counts them down.
    """

    def __init__(self, pool_size: int, remaining: Counter[str]) -> None:
        self._pool_size = pool_size
        self._remaining = remaining
        self._engines: dict[str, AsyncEngine] = {}

    def get(self, url: str) -> AsyncEngine:
        """Return the engine for ``url``, created on first use."""
        engine = self._engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = create_async_engine(url, poolclass=NullPool)
            else:
                size = max(1, min(self._pool_size, self._remaining[url]))
                asyncpg = url.startswith("postgresql+asyncpg")
                engine = create_async_engine(
                    url, pool_size=size, max_overflow=0, pool_pre_ping=not asyncpg
                )
                if asyncpg:
                    ping_on_checkout(engine)
                answer_first_connect(engine)
            self._engines[url] = engine
        return engine

    async def done(self, url: str) -> None:
        """One tenant of ``url`` is finished; dispose the engine after the last."""
        self._remaining[url] -= 1
        if self._remaining[url] <= 0:
            engine = self._engines.pop(url, None)
            if engine is not None:
                with anyio.CancelScope(shield=True):
                    await engine.dispose()

    async def close(self) -> None:
        """Dispose every engine still open."""
        engines, self._engines = list(self._engines.values()), {}
        with anyio.CancelScope(shield=True):
            for engine in engines:
                await engine.dispose()
