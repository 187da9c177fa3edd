"""Step a test database through the history: upgrade to a revision, insert rows, upgrade, assert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from ... import command
from ...results import MigrationResult
from ...script import ScriptDirectory
from .databases import TemporaryDatabase

__all__ = ["MigrationRunner"]


class MigrationRunner:
    """Move one test database up and down the revision history, in the test's event loop.

    It owns nothing but the database it was given (empty at first) and the
    script directory, read once; every move is an ordinary
    :mod:`asyncmigrate.command` call on that database, so the test sees
    exactly what production would run. For data migrations::

        await runner.upgrade("a1")
        async with runner.database.begin() as conn:
            await conn.execute(text("INSERT INTO account (name) VALUES ('x')"))
        await runner.upgrade("b2")          # the data migration under test
        async with runner.database.connect() as conn:
            ...                             # assert on the migrated rows
    """

    __test__ = False

    def __init__(self, database: TemporaryDatabase, **command_options: Any) -> None:
        self.database = database
        self.config = database.config
        self.command_options = command_options
        self._script: ScriptDirectory | None = None

    @property
    def url(self) -> Any:
        """The database's URL."""
        return self.database.url

    async def script(self) -> ScriptDirectory:
        """Return the script directory (headers read once, off the event loop)."""
        if self._script is None:
            def load() -> ScriptDirectory:
                script = ScriptDirectory.from_config(self.config)
                script.graph  # noqa: B018 - read the headers here, in the worker thread
                return script

            self._script = await anyio.to_thread.run_sync(load)
        return self._script

    async def revisions(self) -> list[str]:
        """Return every revision id, from the base to the heads (parents before children)."""
        script = await self.script()
        return [rev.revision for rev in reversed(list(script.walk_revisions()))]

    async def upgrade(self, target: str = "+1") -> MigrationResult:
        """Upgrade the database to ``target`` (a revision id, ``+1``, ``head``...)."""
        return await command.upgrade(
            self.config, target, url=self.database.url, script=await self.script(),
            **self.command_options,
        )

    async def downgrade(self, target: str = "-1") -> MigrationResult:
        """Downgrade the database to ``target`` (a revision id, ``-1``, ``base``...)."""
        return await command.downgrade(
            self.config, target, url=self.database.url, script=await self.script(),
            **self.command_options,
        )

    async def stamp(self, target: str | Sequence[str]) -> MigrationResult:
        """Set the version table to ``target`` without running migrations."""
        return await command.stamp(
            self.config, target, url=self.database.url, script=await self.script(),
            **self.command_options,
        )

    async def current(self) -> tuple[str, ...]:
        """Return the revisions the database's version table holds."""
        state = await command.current(self.config, url=self.database.url, script=await self.script())
        return state.heads
