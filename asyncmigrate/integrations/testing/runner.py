"""Step a test database through the history: upgrade to a revision, insert rows, upgrade, assert.

:class:`MigrationRunner` has pytest-alembic's runner methods under the same
names (``migrate_up_to``, ``migrate_up_before``, ``migrate_down_before``,
``migrate_up_one``, ``roundtrip_next_revision``, ``insert_into``,
``table_at_revision``, ``generate_revision``...), as coroutines that run in
the test's event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table

from ... import command
from ...results import MigrationResult
from ...script import Script, ScriptDirectory
from .databases import TemporaryDatabase
from .history import BASE, LinearHistory, load_script, undo_target
from .options import MigrationTestOptions, Rows
from .seeding import Seeder, insert_rows, reflect_table

__all__ = ["MigrationRunner"]


class MigrationRunner:
    """Move one test database up and down the revision history, in the test's event loop.

    It owns the database it was given (empty at first, or set up), the
    script directory read once, and the walk order of the history. Moves of
    one revision at a time insert the options' data before and at each
    revision and stamp the options' ``skip_revisions`` instead of running
    them; every move is an ordinary :mod:`asyncmigrate.command` call on the
    database, so the test sees what production would run::

        await runner.migrate_up_before("b2")
        await runner.insert_into("account", [{"name": "ada"}, {"name": "bob"}])
        await runner.migrate_up_one()           # the data migration under test
        async with runner.database.connect() as conn:
            ...                                 # assert on the migrated rows
    """

    __test__ = False

    def __init__(
        self,
        database: TemporaryDatabase,
        options: MigrationTestOptions | None = None,
        **command_options: Any,
    ) -> None:
        self.database = database
        self.config = database.config
        self.options = options or MigrationTestOptions()
        self.command_options = command_options
        self.seeder = Seeder(self.options)
        self._script: ScriptDirectory | None = None
        self._history: LinearHistory | None = None

    @property
    def url(self) -> Any:
        """The database's URL."""
        return self.database.url

    async def script(self) -> ScriptDirectory:
        """Return the script directory (headers read once, off the event loop)."""
        if self._script is None:
            self._script = await load_script(self.config)
        return self._script

    async def history(self) -> LinearHistory:
        """Return the history in walk order (parents before children)."""
        if self._history is None:
            self._history = LinearHistory(await self.script())
        return self._history

    def refresh_history(self) -> None:
        """Forget the script directory read so far (after writing a revision file in a test)."""
        self._script = None
        self._history = None

    async def revisions(self) -> list[str]:
        """Return every revision id, from the base to the heads (parents before children)."""
        return list((await self.history()).revisions)

    async def heads(self) -> list[str]:
        """Return the history's head revisions."""
        return list((await self.script()).get_heads())

    # -- plain commands ---------------------------------------------------------------------

    async def upgrade(self, target: str = "+1") -> MigrationResult:
        """Upgrade the database to ``target`` (a revision id, ``+1``, ``head``...) in one command."""
        return await command.upgrade(
            self.config, target, url=self.database.url, script=await self.script(),
            **self.command_options,
        )

    async def downgrade(self, target: str = "-1") -> MigrationResult:
        """Downgrade the database to ``target`` (a revision id, ``-1``, ``base``...) in one command."""
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

    set_revision = stamp

    async def current(self) -> tuple[str, ...]:
        """Return the revisions the database's version table holds (empty at base)."""
        state = await command.current(self.config, url=self.database.url, script=await self.script())
        return state.heads

    # -- one revision at a time ------------------------------------------------------------

    async def _position(self) -> int:
        return (await self.history()).position_of_heads(await self.current())

    async def apply(self, revision: str, *, again: bool = False) -> None:
        """Upgrade to ``revision`` alone: its data before, the step (or a stamp), its data at.

        :param again: ``revision`` was applied and undone before; rows of its
            data still there are not inserted twice.
        """
        url = self.database.url
        await self.seeder.before(revision, url, again=again)
        if revision in self.options.skip_revisions:
            await self.stamp(revision)
        else:
            await self.upgrade(revision)
        await self.seeder.at(revision, url, again=again)

    async def _down(self, revision: str) -> None:
        """Undo ``revision`` alone (a stamp for a skipped revision)."""
        history = await self.history()
        target = undo_target(history.scripts[revision])
        if revision in self.options.skip_revisions:
            previous = history.previous(revision)
            await self.stamp(previous)
        else:
            await self.downgrade(target)

    async def migrate_up_to(self, revision: str, *, again: bool = False) -> tuple[str, ...]:
        """Upgrade one revision at a time up to ``revision`` (``heads`` for all), with the data.

        :param again: these revisions were applied and undone before (see :meth:`apply`).
        :return: the revisions the database is at afterwards.
        """
        history = await self.history()
        for step in history.between(await self._position(), history.position(revision)):
            await self.apply(step, again=again)
        return await self.current()

    async def migrate_up_before(self, revision: str) -> tuple[str, ...]:
        """Upgrade one revision at a time up to the revision just before ``revision``."""
        history = await self.history()
        previous = history.previous(history.resolve(revision))
        if previous == BASE:
            return await self.current()
        return await self.migrate_up_to(previous)

    async def migrate_up_one(self) -> str | None:
        """Upgrade by exactly one revision; return it, or None at the last revision."""
        history = await self.history()
        position = await self._position()
        following = history.between(position, position + 1)
        if not following:
            return None
        await self.apply(following[0])
        return following[0]

    async def migrate_down_to(self, revision: str) -> tuple[str, ...]:
        """Downgrade one revision at a time until ``revision`` is the last applied (``base``: all)."""
        history = await self.history()
        floor = history.position(revision)
        for step in reversed(history.between(floor, await self._position())):
            await self._down(step)
        return await self.current()

    async def migrate_down_before(self, revision: str) -> tuple[str, ...]:
        """Downgrade one revision at a time until ``revision`` itself is undone."""
        history = await self.history()
        return await self.migrate_down_to(history.previous(history.resolve(revision)))

    async def migrate_down_one(self) -> str | None:
        """Undo the last applied revision; return the revision now last (``base``), or None at base."""
        history = await self.history()
        position = await self._position()
        if position < 0:
            return None
        await self._down(history.revisions[position])
        return history.previous(history.revisions[position])

    async def roundtrip_next_revision(self) -> str | None:
        """Upgrade the next revision, downgrade it, upgrade it again; return it (None at the end)."""
        revision = await self.migrate_up_one()
        if revision is None:
            return None
        await self._down(revision)
        await self.apply(revision, again=True)
        return revision

    # -- data -------------------------------------------------------------------------------

    async def insert_into(
        self, table: str | None, data: Rows | None = None, *, schema: str | None = None
    ) -> int:
        """Insert rows into ``table`` as it stands now (rows may name theirs with ``__tablename__``).

        :return: the number of rows inserted.
        """
        if data is None:
            return 0
        async with self.database.begin() as connection:
            return await insert_rows(connection, data, table, schema)

    async def table_at_revision(
        self, name: str, *, revision: str | None = None, schema: str | None = None
    ) -> Table:
        """Return table ``name`` reflected at ``revision`` (default: where the database is now).

        With ``revision``, the database is first moved there one revision at a time.
        """
        if revision is not None:
            history = await self.history()
            target = history.position(revision)
            current = await self._position()
            if target > current:
                await self.migrate_up_to(revision)
            elif target < current:
                await self.migrate_down_to(revision)
        async with self.database.connect() as connection:
            return await connection.run_sync(reflect_table, name, schema)

    # -- writing revisions ------------------------------------------------------------------

    async def generate_revision(
        self,
        message: str = "test revision",
        *,
        autogenerate: bool = True,
        write: bool = False,
        process_revision_directives: Callable[..., None] | None = None,
        **kwargs: Any,
    ) -> list[Any] | Script | list[Script]:
        """Generate a revision against this database, as ``revision --autogenerate`` would.

        :param write: write the file (and forget the history read so far);
            by default nothing is written and the generated directives (Alembic's
            ``MigrationScript`` objects, with ``upgrade_ops``) are returned.
        """
        captured: list[Any] = []

        def capture(context: Any, revision: Any, directives: list[Any]) -> None:
            if process_revision_directives is not None:
                process_revision_directives(context, revision, directives)
            captured.extend(directives)
            if not write:
                directives[:] = []

        result = await command.revision(
            self.config, message, autogenerate=autogenerate, url=self.database.url,
            process_revision_directives=capture, **kwargs,
        )
        if write:
            self.refresh_history()
            return result
        return captured

    async def at_heads(self) -> bool:
        """True when the database is at the history's heads."""
        return set(await self.current()) == set(await self.heads())


