"""Alembic's extension API (register_operation, implementation_for, invoke) and op helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

import asyncmigrate
from asyncmigrate.exceptions import NoMigrationContextError
from asyncmigrate.operations import BatchOperations, MigrateOperation, Operations, ops
from asyncmigrate.runtime.migration import MigrationContext

from .support import offline_sql, rows, run_ops, run_sync, snapshot


class CreateSequenceOp(MigrateOperation):
    """Create a sequence (a plugin operation, as Alembic's docs write one)."""

    def __init__(self, sequence_name: str, schema: str | None = None, **kw: Any) -> None:
        self.sequence_name = sequence_name
        self.schema = schema
        self.kw = kw

    @classmethod
    def create_sequence(cls, operations: Any, sequence_name: str, **kw: Any) -> Any:
        """Issue a CREATE SEQUENCE."""
        return operations.invoke(cls(sequence_name, **kw))

    @classmethod
    def batch_create_sequence(cls, operations: Any, sequence_name: str) -> Any:
        """Issue a CREATE SEQUENCE from a batch block."""
        return operations.invoke(cls(sequence_name))

    def reverse(self) -> DropSequenceOp:
        return DropSequenceOp(self.sequence_name, schema=self.schema)


class DropSequenceOp(MigrateOperation):
    """Drop a sequence."""

    def __init__(self, sequence_name: str, schema: str | None = None) -> None:
        self.sequence_name = sequence_name
        self.schema = schema

    @classmethod
    def drop_sequence(cls, operations: Any, sequence_name: str, *, schema: str | None = None) -> Any:
        """Issue a DROP SEQUENCE."""
        return operations.invoke(cls(sequence_name, schema=schema))


@pytest.fixture
def sequence_directives() -> Iterator[None]:
    registry = dict(Operations._to_impl)
    Operations.register_operation("create_sequence")(CreateSequenceOp)
    Operations.register_operation("drop_sequence")(DropSequenceOp)
    BatchOperations.register_operation("create_sequence", "batch_create_sequence")(CreateSequenceOp)

    @Operations.implementation_for(CreateSequenceOp)
    def create_sequence(operations: Operations, operation: CreateSequenceOp) -> str:
        operations.execute(f"CREATE SEQUENCE {operation.sequence_name}")
        return operation.sequence_name

    @Operations.implementation_for(DropSequenceOp)
    def drop_sequence(operations: Operations, operation: DropSequenceOp) -> None:
        operations.execute(f"DROP SEQUENCE {operation.sequence_name}")

    try:
        yield
    finally:
        for name in ("create_sequence", "drop_sequence"):
            delattr(Operations, name)
        delattr(BatchOperations, "create_sequence")
        Operations._to_impl.clear()
        Operations._to_impl.update(registry)


async def test_registered_operations_become_directives(
    pg_db: URL, sequence_directives: None
) -> None:
    signature = str(__import__("inspect").signature(Operations.create_sequence))  # type: ignore[attr-defined]
    assert signature == "(self, sequence_name: 'str', **kw: 'Any') -> 'Any'"
    assert Operations.create_sequence.__doc__ == "Issue a CREATE SEQUENCE."  # type: ignore[attr-defined]

    def work(op: Any) -> None:
        assert op.create_sequence("seq_a") == "seq_a"
        op.invoke(CreateSequenceOp("seq_b").reverse())  # raises if seq_b were not dropped
        op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))

    with pytest.raises(sa.exc.ProgrammingError):
        await run_ops(pg_db, work)  # DROP of a missing sequence fails
    await run_ops(pg_db, lambda op: op.create_sequence("seq_a"))
    found = await rows(pg_db, "SELECT sequence_name FROM information_schema.sequences")
    assert found == [("seq_a",)]


def test_batch_operations_get_registered_directives_too(sequence_directives: None) -> None:
    sql = offline_sql(
        "postgresql",
        lambda op: _batch_sequence(op),
    )
    assert "CREATE SEQUENCE s1;" in sql


def _batch_sequence(op: Any) -> None:
    with op.batch_alter_table("t") as batch:
        batch.create_sequence("s1")


def test_implementation_for_refuses_to_replace_silently() -> None:
    with pytest.raises(ValueError, match="replace=True"):
        Operations.implementation_for(ops.CreateTableOp)(lambda operations, operation: None)


def test_replacing_a_built_in_implementation() -> None:
    original = Operations._to_impl[ops.DropTableOp]
    seen: list[str] = []

    @Operations.implementation_for(ops.DropTableOp, replace=True)
    def logged_drop(operations: Operations, operation: ops.DropTableOp) -> None:
        seen.append(operation.table_name)
        original(operations, operation)

    try:
        sql = offline_sql("postgresql", lambda op: op.drop_table("t"))
    finally:
        Operations._to_impl[ops.DropTableOp] = original
    assert seen == ["t"]
    assert "DROP TABLE t;" in sql


def test_invoke_needs_an_implementation() -> None:
    class Unknown(MigrateOperation):
        pass

    with pytest.raises(NotImplementedError, match="Unknown"):
        offline_sql("postgresql", lambda op: op.invoke(Unknown()))


def test_invoke_returns_what_the_implementation_returns() -> None:
    def work(op: Any) -> None:
        table = op.invoke(ops.CreateTableOp("t", [sa.Column("id", sa.Integer)]))
        assert isinstance(table, sa.Table)
        assert table.name == "t"

    offline_sql("sqlite", work)


def test_f_marks_names_final_and_get_bind_offline() -> None:
    def work(op: Any) -> None:
        assert isinstance(op.f("x"), sa.sql.elements.conv)
        assert op.get_bind() is op.get_context().bind
        with pytest.raises(NotImplementedError, match="SQL mode"):
            op.run_async(_count)

    offline_sql("postgresql", work)


async def _count(conn: AsyncConnection, table: str) -> int:
    result = await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))
    return int(result.scalar_one())


async def test_run_async_shares_the_migration_connection(any_db: URL) -> None:
    def work(op: Any) -> None:
        op.create_table("t", sa.Column("id", sa.Integer))
        op.execute("INSERT INTO t (id) VALUES (1)")
        assert op.run_async(_count, "t") == 1

    await run_ops(any_db, work)


async def test_run_async_needs_an_async_driver() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        op = Operations(MigrationContext.configure(connection=conn))
        with pytest.raises(ValueError, match="sync engine"):
            op.run_async(_count, "t")


async def test_operations_context_binds_the_task_local_op(sqlite_db: URL) -> None:
    def work(conn: sa.Connection) -> None:
        ctx = MigrationContext.configure(connection=conn)
        with Operations.context(ctx) as bound:
            asyncmigrate.op.create_table("t", sa.Column("id", sa.Integer))
            assert asyncmigrate.op.get_context() is bound.get_context()
        with pytest.raises(NoMigrationContextError):
            asyncmigrate.op.get_bind()

    await run_sync(sqlite_db, work)
    assert "t" in await snapshot(sqlite_db)


async def test_create_exclude_constraint(pg_db: URL) -> None:
    def work(op: Any) -> None:
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.create_table(
            "booking",
            sa.Column("room", sa.Integer),
            sa.Column("during", sa.dialects.postgresql.TSRANGE),
        )
        op.create_exclude_constraint(
            "no_overlap", "booking", ("room", "="), ("during", "&&"), where="room > 0", using="gist"
        )

    await run_ops(pg_db, work)
    found = await rows(
        pg_db, "SELECT conname, contype::text FROM pg_constraint WHERE conname = 'no_overlap'"
    )
    assert found == [("no_overlap", "x")]
    sql = offline_sql(
        "postgresql",
        lambda op: op.create_exclude_constraint("ex", "t", ("a", "="), where=sa.text("a > 1")),
    )
    assert "ALTER TABLE t ADD CONSTRAINT ex EXCLUDE USING gist (a WITH =) WHERE (a > 1);" in sql
    drop = ops.CreateExcludeConstraintOp("ex", "t", [("a", "=")], using="gist").reverse()
    assert (drop.constraint_name, drop.table_name) == ("ex", "t")
