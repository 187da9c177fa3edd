"""Differential runs: the same operations through asyncmigrate and Alembic, same resulting schema.

Each scenario runs on two fresh databases of one backend -- one per tool --
and the reflected schemas (and table contents) must be identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from .support import rows, run_alembic_ops, run_ops, snapshot

pytest.importorskip("alembic")

ALL = ("sqlite", "postgresql", "mysql")
SERVERS = ("postgresql", "mysql")


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Callable[[Any], Any], ...]
    backends: tuple[str, ...] = ALL
    naming_convention: dict[str, str] | None = None

    def __str__(self) -> str:
        return self.name


def _base_tables(op: Any) -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(120), nullable=False),
        sa.Column("name", sa.String(50), server_default="someone", comment="display name"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("balance", sa.Numeric(10, 2), server_default="0"),
        sa.Column("created", sa.DateTime, server_default=sa.func.current_timestamp()),
        sa.Column("notes", sa.Text),
        sa.UniqueConstraint("email", name="uq_account_email"),
        sa.CheckConstraint("balance >= 0", name="ck_account_balance"),
        sa.Index("ix_account_name", "name"),
        comment="accounts",
    )
    op.create_table(
        "entry",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("account.id", ondelete="CASCADE", onupdate="CASCADE"),
            nullable=False,
        ),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("memo", sa.String(30), unique=True),
        sa.Column("kind", sa.String(10), index=True),
        sa.Column("ref_id", sa.Integer),
    )
    op.bulk_insert(
        sa.table("account", sa.column("id"), sa.column("email"), sa.column("notes")),
        [{"id": 1, "email": "a@x", "notes": "n1"}, {"id": 2, "email": "b@x", "notes": None}],
    )
    op.bulk_insert(
        sa.table("entry", sa.column("id"), sa.column("account_id"), sa.column("amount"),
                 sa.column("memo"), sa.column("kind")),
        [
            {"id": 1, "account_id": 1, "amount": 10, "memo": "m1", "kind": "in"},
            {"id": 2, "account_id": 2, "amount": 20, "memo": "m2", "kind": "out"},
        ],
    )


def _drop_and_recreate(op: Any) -> None:
    op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True))
    op.drop_table("scratch")
    op.create_table("scratch2", sa.Column("id", sa.Integer, primary_key=True), if_not_exists=True)
    op.drop_table("scratch2", if_exists=True)


def _columns_sqlite(op: Any) -> None:
    op.add_column("entry", sa.Column("note", sa.String(40), server_default="none"))
    op.add_column("entry", sa.Column("weight", sa.Float, nullable=False, server_default="1.5"))
    op.drop_column("account", "notes")
    op.alter_column("entry", "note", new_column_name="remark")


def _columns_servers(op: Any) -> None:
    op.add_column("entry", sa.Column("note", sa.String(40), server_default="none"))
    op.add_column("entry", sa.Column("weight", sa.Float, nullable=False, server_default="1.5"))
    op.drop_column("account", "notes")
    op.alter_column("entry", "note", new_column_name="remark", existing_type=sa.String(40),
                    existing_server_default="none")
    op.add_column("entry", sa.Column("other_id", sa.Integer, sa.ForeignKey("account.id")))
    op.add_column("entry", sa.Column("code", sa.String(8), unique=True, comment="c"))
    op.drop_column("entry", "kind")


def _alter_servers(op: Any) -> None:
    op.alter_column("entry", "amount", type_=sa.BigInteger, existing_type=sa.Integer,
                    existing_nullable=False)
    op.alter_column("entry", "memo", nullable=False, existing_type=sa.String(30))
    op.alter_column("account", "name", server_default="anon", existing_type=sa.String(50),
                    existing_comment="display name")
    op.alter_column("account", "name", comment="the name", existing_type=sa.String(50),
                    existing_server_default="anon")
    op.alter_column("account", "balance", server_default=None, existing_type=sa.Numeric(10, 2))
    op.alter_column("account", "notes", new_column_name="remarks", existing_type=sa.Text)
    op.alter_column("account", "email", type_=sa.String(200), existing_type=sa.String(120),
                    existing_nullable=False)


def _indexes(op: Any) -> None:
    op.create_index("ix_entry_amount_kind", "entry", ["amount", "kind"])
    op.create_index("ix_entry_uq_amount", "entry", ["amount", "account_id"], unique=True)
    op.drop_index("ix_account_name", table_name="account")
    op.create_index("ix_account_name", "account", ["name", "email"])


def _partial_indexes_pg(op: Any) -> None:
    op.create_index("ix_part", "entry", ["amount"], postgresql_where=sa.text("amount > 5"))
    op.create_index("ix_fn", "account", [sa.text("lower(email)")])
    op.create_index("ix_gin", "account", ["notes"], postgresql_using="hash")


def _constraints_servers(op: Any) -> None:
    op.create_table("tag", sa.Column("id", sa.Integer, nullable=False), sa.Column("label", sa.String(20)),
                    sa.Column("entry_id", sa.Integer))
    op.create_primary_key("pk_tag", "tag", ["id"])
    op.create_unique_constraint("uq_tag_label", "tag", ["label"])
    op.create_foreign_key("fk_tag_entry", "tag", "entry", ["entry_id"], ["id"], ondelete="SET NULL")
    op.create_check_constraint("ck_tag_label", "tag", "label <> ''")
    op.drop_constraint("uq_account_email", "account", type_="unique")
    op.drop_constraint("ck_account_balance", "account", type_="check")
    op.create_unique_constraint("uq_account_email_name", "account", ["email", "name"])


def _rename(op: Any) -> None:
    op.rename_table("entry", "ledger_entry")


def _rename_and_comment(op: Any) -> None:
    op.rename_table("entry", "ledger_entry")
    op.create_table_comment("ledger_entry", "ledger")
    op.drop_table_comment("account", existing_comment="accounts")


def _data(op: Any) -> None:
    account = sa.table("account", sa.column("id", sa.Integer), sa.column("email", sa.String),
                       sa.column("name", sa.String))
    op.bulk_insert(account, [{"id": 3, "email": "c@x", "name": "C"}], multiinsert=False)
    op.execute(account.update().where(account.c.id == op.inline_literal(1))
               .values(name=op.inline_literal("First")))
    op.execute("DELETE FROM entry WHERE id = 2")


def _conventions(op: Any) -> None:
    op.create_table(
        "c",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.Integer),
        sa.Column("b", sa.Integer),
        sa.Column("flag", sa.Boolean(create_constraint=True, name="flagged")),
        sa.CheckConstraint("a > 0", name="positive"),
        sa.UniqueConstraint("a"),
    )
    op.create_index(None, "c", ["b"])


def _conventions_servers(op: Any) -> None:
    _conventions(op)
    op.create_unique_constraint(None, "c", ["b"])
    op.create_foreign_key(None, "c", "account", ["a"], ["id"])
    op.create_check_constraint("small", "c", "b < 10")
    op.drop_constraint("small", "c", type_="check")
    op.create_check_constraint(op.f("ck_exact"), "c", "b < 20")


# -- batch ---------------------------------------------------------------------------------


def _batch_columns(op: Any) -> None:
    with op.batch_alter_table("entry") as batch:
        batch.add_column(sa.Column("note", sa.String(40), nullable=False, server_default="x"))
        batch.alter_column("amount", new_column_name="value", existing_type=sa.Integer,
                           existing_nullable=False)
        batch.alter_column("memo", type_=sa.String(60), existing_type=sa.String(30))
        batch.alter_column("kind", nullable=False, existing_type=sa.String(10),
                           server_default="in")
        batch.add_column(sa.Column("extra", sa.Integer))
    with op.batch_alter_table("entry") as batch:
        batch.drop_column("ref_id")


def _batch_constraints(op: Any) -> None:
    with op.batch_alter_table("account") as batch:
        batch.drop_constraint("uq_account_email", type_="unique")
        batch.create_unique_constraint("uq_account_email_name", ["email", "name"])
        batch.drop_constraint("ck_account_balance", type_="check")
        batch.create_check_constraint("ck_account_balance2", "balance > -1")
        batch.drop_index("ix_account_name")
        batch.create_index("ix_account_email", ["email"])
    with op.batch_alter_table("entry") as batch:
        batch.create_foreign_key("fk_entry_ref", "account", ["ref_id"], ["id"])
        batch.create_index("ix_entry_amount", ["amount"], unique=False)


def _batch_recreate_always(op: Any) -> None:
    with op.batch_alter_table("entry", recreate="always") as batch:
        batch.alter_column("memo", new_column_name="memo2", existing_type=sa.String(30))
        batch.add_column(sa.Column("flag", sa.Integer, server_default="0"), insert_before="amount")


def _batch_reordering(op: Any) -> None:
    order = ("memo", "first", "amount", "id", "account_id", "kind", "ref_id")
    with op.batch_alter_table("entry", recreate="always", partial_reordering=[order]) as batch:
        batch.add_column(sa.Column("first", sa.Integer))


def _batch_naming_convention(op: Any) -> None:
    op.create_table(
        "nc",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("x", sa.Integer),
        sa.Column("y", sa.Integer, sa.ForeignKey("account.id")),
        sa.UniqueConstraint("x"),
    )
    with op.batch_alter_table(
        "nc",
        naming_convention={
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        },
    ) as batch:
        batch.drop_constraint("uq_nc_x", type_="unique")
        batch.drop_constraint("fk_nc_y_account", type_="foreignkey")
        batch.create_unique_constraint("uq_nc_y", ["y"])


SCENARIOS = [
    Scenario("tables", (_base_tables, _drop_and_recreate)),
    Scenario("columns-sqlite", (_base_tables, _columns_sqlite), ("sqlite",)),
    Scenario("columns", (_base_tables, _columns_servers), SERVERS),
    Scenario("alter", (_base_tables, _alter_servers), SERVERS),
    Scenario("indexes", (_base_tables, _indexes)),
    Scenario("partial-indexes", (_base_tables, _partial_indexes_pg), ("postgresql",)),
    Scenario("constraints", (_base_tables, _constraints_servers), SERVERS),
    Scenario("rename", (_base_tables, _rename), ("sqlite",)),
    Scenario("rename-comment", (_base_tables, _rename_and_comment), SERVERS),
    Scenario("data", (_base_tables, _data)),
    Scenario(
        "conventions-sqlite",
        (_base_tables, _conventions),
        ("sqlite",),
        {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
         "ck": "ck_%(table_name)s_%(constraint_name)s", "pk": "pk_%(table_name)s"},
    ),
    Scenario(
        "conventions",
        (_base_tables, _conventions_servers),
        SERVERS,
        {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
         "ck": "ck_%(table_name)s_%(constraint_name)s",
         "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
         "pk": "pk_%(table_name)s"},
    ),
    Scenario("batch-columns", (_base_tables, _batch_columns)),
    Scenario("batch-constraints", (_base_tables, _batch_constraints)),
    Scenario("batch-recreate-always", (_base_tables, _batch_recreate_always), ("sqlite",)),
    Scenario("batch-reordering", (_base_tables, _batch_reordering), ("sqlite",)),
    Scenario("batch-naming-convention", (_base_tables, _batch_naming_convention), ("sqlite",)),
]

CASES = [
    pytest.param(scenario, backend, id=f"{scenario.name}-{backend}")
    for scenario in SCENARIOS
    for backend in scenario.backends
]


async def _contents(url: URL, schema: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Return every table's rows (the clock-dependent ``created`` column left out)."""
    found = {}
    for table, info in schema.items():
        names = ", ".join(c["name"] for c in info["columns"] if c["name"] != "created")
        found[table] = sorted(await rows(url, f"SELECT {names} FROM {table}"), key=repr)
    return found


@pytest.mark.parametrize(("scenario", "db_pair"), CASES, indirect=["db_pair"])
async def test_same_schema_as_alembic(scenario: Scenario, db_pair: tuple[URL, URL]) -> None:
    ours, theirs = db_pair
    metadata = (
        sa.MetaData(naming_convention=scenario.naming_convention)
        if scenario.naming_convention
        else None
    )
    for step in scenario.steps:
        await run_ops(ours, step, target_metadata=metadata)
        await run_alembic_ops(theirs, step, target_metadata=metadata)
    expected = await snapshot(theirs)
    assert await snapshot(ours) == expected
    assert await _contents(ours, expected) == await _contents(theirs, expected)
