"""The fan-out's engines: one per server URL, shared by that URL's tenants.

Nothing a tenant's run sets on its session (search_path, role, timeouts,
variables, temporary tables, locks) may reach another tenant's run. Only
PostgreSQL over asyncpg pools connections across tenants: each returned
connection is reset to a new session's state in one round trip, and each
reused one is pinged at checkout, so a connection the server or the network
dropped since is replaced before a tenant gets it (see
:func:`~asyncmigrate.runtime.drivers.asyncpg.reuse_cleanly`). Other servers
(MySQL/MariaDB, whose drivers cannot reset a session, and PostgreSQL over
other drivers) give each checkout a new connection and close it on return.
SQLite files get no pool: a connection is a file handle.
"""

from __future__ import annotations

from collections import Counter

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ..exceptions import ConfigError
from ..runtime.connecting import answer_first_connect
from ..runtime.drivers.asyncpg import reuse_cleanly
from ..urls import engine_error, mask_password, to_async_url

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
            to_async_url(url)  # a driver an extra brings: a ConfigError naming the extra
            try:
                engine = self._create(url)
            except Exception as exc:
                where = mask_password(url)
                raise ConfigError(f"Cannot make an engine for {where}: {engine_error(exc)}") from exc
            self._engines[url] = engine
        return engine

    def _create(self, url: str) -> AsyncEngine:
        engine: AsyncEngine
        if url.startswith("postgresql+asyncpg"):
            size = max(1, min(self._pool_size, self._remaining[url]))
            engine = create_async_engine(url, pool_size=size, max_overflow=0)
            reuse_cleanly(engine)
            answer_first_connect(engine)
        else:
            engine = create_async_engine(url, poolclass=NullPool)
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
