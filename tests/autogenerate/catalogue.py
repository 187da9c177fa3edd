"""A catalogue of model changes for the differential autogenerate suite.

Each :class:`Change` gives the models the database starts from (``before``,
created with ``MetaData.create_all``) and the models after the change
(``after``). The suite compares them with Alembic's ``compare_metadata``
and asyncmigrate's, writes and applies the revision, and checks the round
trip. ``ours_only`` lists the differences asyncmigrate reports and Alembic
does not (PostgreSQL enum types, sequences, partial-index predicates): the
README's "Differences from Alembic" explain each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .support import NAMING_CONVENTION

BOTH = ("sqlite", "postgresql")
PG = ("postgresql",)

KINDS = (
    "tables",
    "columns",
    "types",
    "nullable",
    "server defaults",
    "comments",
    "indexes",
    "unique constraints",
    "foreign keys",
    "check constraints",
    "enums",
    "identity",
    "sequences",
    "schemas",
    "filters",
    "several MetaData",
)


@dataclass(frozen=True)
class Change:
    """One model change: the models before and after, where it runs, how it compares."""

    name: str
    kind: str
    before: Callable[[], Any]
    after: Callable[[], Any]
    backends: tuple[str, ...] = BOTH
    options: Mapping[str, Any] = field(default_factory=dict)
    schemas: tuple[str, ...] = ()
    ours_only: frozenset[tuple[Any, ...]] = frozenset()
    expect_empty: bool = False


def md() -> MetaData:
    """A MetaData with the naming convention the catalogue uses."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def account(metadata: MetaData, *extra: Any, **kw: Any) -> Table:
    """The ``account`` table most changes start from."""
    return Table(
        "account",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(50), nullable=False),
        *extra,
        **kw,
    )


def models(*builders: Callable[[MetaData], Any]) -> Callable[[], MetaData]:
    """Return a factory of a fresh MetaData filled by ``builders``."""

    def build() -> MetaData:
        metadata = md()
        for builder in builders:
            builder(metadata)
        return metadata

    return build


def base(metadata: MetaData) -> None:
    account(metadata)


def with_account(*extra: Callable[[], Any], **kw: Any) -> Callable[[], MetaData]:
    """Models holding ``account`` with extra columns/constraints (built fresh each time)."""
    return models(lambda m: account(m, *(make() for make in extra), **kw))


def note(metadata: MetaData, *extra: Any) -> Table:
    return Table(
        "note",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("body", Text),
        *extra,
    )


def parent_child(metadata: MetaData) -> None:
    Table(
        "parent",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("code", String(20), nullable=False, unique=True),
    )
    Table(
        "child",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("parent_id", ForeignKey("parent.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("label", String(40)),
    )


def col(*args: Any, **kw: Any) -> Callable[[], Column[Any]]:
    return lambda: Column(*args, **kw)


def ix(*args: Any, **kw: Any) -> Callable[[], Any]:
    return lambda: Index(*args, **kw)


def varchar_hook(
    context: Any, inspected: Any, model: Any, inspected_type: Any, model_type: Any
) -> bool | None:
    """A ``compare_type`` callable: VARCHAR length changes do not count, the rest as usual."""
    if isinstance(model_type, String) and not isinstance(model_type, Text):
        return False
    return None


def any_default_differs(context: Any, inspected: Any, model: Any, inspected_default: Any,
                        model_default: Any, rendered_model_default: Any) -> bool | None:
    """A ``compare_server_default`` callable: only ``status`` is compared, by hand."""
    if model.name != "status":
        return False

    def value(sql: Any) -> str:
        match = re.match(r"^\(?'(.*?)'(::[\w ]+)?\)?$", sql or "")
        return match.group(1) if match else (sql or "")

    return value(inspected_default) != value(rendered_model_default) or None


def skip_audit_name(name: Any, type_: str, parent_names: Mapping[str, Any]) -> bool:
    return not (type_ == "table" and name == "audit")


def skip_legacy_column(obj: Any, name: Any, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "column" and name == "legacy_code")


def enum_column(*labels: str, name: str = "mood") -> Callable[[], Column[Any]]:
    return col("mood", Enum(*labels, name=name))


CATALOGUE: list[Change] = [
    # -- tables ------------------------------------------------------------------------------------
    Change("add_table", "tables", models(base),
           models(base, lambda m: note(m, Column("account_id", ForeignKey("account.id"))))),
    Change("drop_table", "tables",
           models(base, lambda m: Table("legacy", m, Column("id", Integer, primary_key=True),
                                        Column("payload", String(20), index=True))),
           models(base)),
    Change("add_related_tables", "tables", models(base), models(base, parent_child)),
    Change("drop_related_tables", "tables", models(base, parent_child), models(base)),
    Change("add_table_with_comment_and_check", "tables", models(base),
           models(base, lambda m: Table(
               "price", m, Column("id", Integer, primary_key=True),
               Column("amount", Numeric(10, 2), nullable=False),
               CheckConstraint("amount >= 0", name="non_negative"), comment="prices"))),
    # -- columns -----------------------------------------------------------------------------------
    Change("add_nullable_column", "columns", models(base), with_account(col("email", String(100)))),
    Change("add_not_null_column_with_default", "columns", models(base),
           with_account(col("status", String(10), nullable=False, server_default="new"))),
    Change("drop_column", "columns", with_account(col("email", String(100))), models(base)),
    Change("add_column_with_foreign_key", "columns", models(base, note),
           models(base, lambda m: note(m, Column("account_id", ForeignKey("account.id"))))),
    Change("drop_indexed_column", "columns", with_account(col("nick", String(20), index=True)),
           models(base)),
    # -- types -------------------------------------------------------------------------------------
    Change("varchar_length", "types", with_account(col("email", String(50))),
           with_account(col("email", String(120)))),
    Change("integer_to_bigint", "types", with_account(col("points", Integer)),
           with_account(col("points", BigInteger))),
    Change("string_to_text", "types", with_account(col("bio", String(200))),
           with_account(col("bio", Text))),
    Change("numeric_precision", "types", with_account(col("balance", Numeric(10, 2))),
           with_account(col("balance", Numeric(12, 4)))),
    Change("timestamp_time_zone", "types", with_account(col("seen", DateTime())),
           with_account(col("seen", DateTime(timezone=True))), backends=PG),
    Change("compare_type_off", "types", with_account(col("email", String(50))),
           with_account(col("email", String(120))), options={"compare_type": False},
           expect_empty=True),
    Change("compare_type_callable", "types",
           with_account(col("email", String(50)), col("points", Integer)),
           with_account(col("email", String(120)), col("points", BigInteger)),
           options={"compare_type": varchar_hook}),
    # -- nullability -------------------------------------------------------------------------------
    Change("set_not_null", "nullable", with_account(col("email", String(100))),
           with_account(col("email", String(100), nullable=False))),
    Change("drop_not_null", "nullable", models(base),
           models(lambda m: Table("account", m, Column("id", Integer, primary_key=True),
                                  Column("name", String(50), nullable=True)))),
    # -- server defaults ---------------------------------------------------------------------------
    Change("add_server_default", "server defaults", with_account(col("status", String(10))),
           with_account(col("status", String(10), server_default="new")),
           options={"compare_server_default": True}),
    Change("change_server_default", "server defaults",
           with_account(col("status", String(10), server_default="new")),
           with_account(col("status", String(10), server_default="active")),
           options={"compare_server_default": True}),
    Change("drop_server_default", "server defaults",
           with_account(col("status", String(10), server_default="new")),
           with_account(col("status", String(10))),
           options={"compare_server_default": True}),
    Change("function_server_default", "server defaults", with_account(col("created", DateTime())),
           with_account(col("created", DateTime(), server_default=sa.func.current_timestamp())),
           options={"compare_server_default": True}),
    Change("server_default_callable", "server defaults",
           with_account(col("status", String(10), server_default="new"),
                        col("kind", String(10), server_default="a")),
           with_account(col("status", String(10), server_default="old"),
                        col("kind", String(10), server_default="b")),
           options={"compare_server_default": any_default_differs}),
    # -- comments (PostgreSQL) ---------------------------------------------------------------------
    Change("add_table_comment", "comments", models(base), with_account(comment="customers"),
           backends=PG),
    Change("drop_table_comment", "comments", with_account(comment="customers"), models(base),
           backends=PG),
    Change("column_comment", "comments", with_account(col("email", String(100), comment="old")),
           with_account(col("email", String(100), comment="primary e-mail")), backends=PG),
    # -- indexes -----------------------------------------------------------------------------------
    Change("add_index", "indexes", with_account(col("email", String(100))),
           with_account(col("email", String(100), index=True))),
    Change("drop_index", "indexes", with_account(col("email", String(100), index=True)),
           with_account(col("email", String(100)))),
    Change("add_unique_index", "indexes", with_account(col("email", String(100))),
           with_account(col("email", String(100)), ix("ix_account_email_unique", "email", unique=True))),
    Change("index_columns_changed", "indexes",
           with_account(col("a", Integer), col("b", Integer), ix("ix_account_ab", "a")),
           with_account(col("a", Integer), col("b", Integer), ix("ix_account_ab", "a", "b"))),
    Change("index_made_unique", "indexes",
           with_account(col("code", String(10)), ix("ix_account_code", "code")),
           with_account(col("code", String(10)), ix("ix_account_code", "code", unique=True))),
    Change("add_partial_index", "indexes", with_account(col("active", Boolean)),
           with_account(col("active", Boolean),
                        ix("ix_account_active_name", "name", postgresql_where=sa.text("active")))),
    Change("partial_index_predicate_changed", "indexes",
           with_account(col("score", Integer),
                        ix("ix_account_top", "name", postgresql_where=sa.text("score > 10"))),
           with_account(col("score", Integer),
                        ix("ix_account_top", "name", postgresql_where=sa.text("score > 50"))),
           backends=PG,
           ours_only=frozenset({("remove_index", "account", "ix_account_top"),
                                ("add_index", "account", "ix_account_top")})),
    Change("add_expression_index", "indexes", with_account(col("email", String(100))),
           models(lambda m: Index("ix_account_lower_email", sa.func.lower(
               account(m, Column("email", String(100))).c.email))),
           backends=PG),
    # -- unique constraints ------------------------------------------------------------------------
    Change("add_unique_constraint", "unique constraints", with_account(col("email", String(100))),
           with_account(col("email", String(100), unique=True))),
    Change("drop_unique_constraint", "unique constraints",
           with_account(col("email", String(100), unique=True)),
           with_account(col("email", String(100)))),
    Change("unique_columns_changed", "unique constraints",
           with_account(col("a", Integer), col("b", Integer),
                        lambda: UniqueConstraint("a", name="uq_account_pair")),
           with_account(col("a", Integer), col("b", Integer),
                        lambda: UniqueConstraint("a", "b", name="uq_account_pair"))),
    # -- foreign keys ------------------------------------------------------------------------------
    Change("add_foreign_key", "foreign keys", models(base, lambda m: note(m, Column("account_id", Integer))),
           models(base, lambda m: note(m, Column("account_id", ForeignKey("account.id"))))),
    Change("drop_foreign_key", "foreign keys",
           models(base, lambda m: note(m, Column("account_id", ForeignKey("account.id")))),
           models(base, lambda m: note(m, Column("account_id", Integer)))),
    Change("foreign_key_ondelete", "foreign keys",
           models(base, lambda m: note(m, Column("account_id", ForeignKey("account.id")))),
           models(base, lambda m: note(
               m, Column("account_id", ForeignKey("account.id", ondelete="CASCADE"))))),
    Change("foreign_key_onupdate", "foreign keys",
           models(base, lambda m: note(
               m, Column("account_id", ForeignKey("account.id", onupdate="CASCADE")))),
           models(base, lambda m: note(m, Column("account_id", ForeignKey("account.id"))))),
    Change("composite_foreign_key", "foreign keys",
           models(lambda m: Table("region", m, Column("country", String(2), primary_key=True),
                                  Column("code", String(5), primary_key=True)),
                  lambda m: Table("office", m, Column("id", Integer, primary_key=True),
                                  Column("country", String(2)), Column("region", String(5)))),
           models(lambda m: Table("region", m, Column("country", String(2), primary_key=True),
                                  Column("code", String(5), primary_key=True)),
                  lambda m: Table("office", m, Column("id", Integer, primary_key=True),
                                  Column("country", String(2)), Column("region", String(5)),
                                  ForeignKeyConstraint(["country", "region"],
                                                       ["region.country", "region.code"])))),
    # -- check constraints -------------------------------------------------------------------------
    Change("add_check_constraint", "check constraints", with_account(col("age", Integer)),
           with_account(col("age", Integer), lambda: CheckConstraint("age >= 0", name="age_positive"))),
    Change("drop_check_constraint", "check constraints",
           with_account(col("age", Integer), lambda: CheckConstraint("age >= 0", name="age_positive")),
           with_account(col("age", Integer))),
    # -- enums -------------------------------------------------------------------------------------
    Change("enum_column_added", "enums", models(base), with_account(enum_column("happy", "sad")),
           ours_only=frozenset({("add_enum", None, "mood")})),
    Change("enum_label_added", "enums", with_account(enum_column("low", "high")),
           with_account(enum_column("low", "medium", "high")),
           ours_only=frozenset({("modify_enum", None, "mood")})),
    Change("enum_label_removed", "enums", with_account(enum_column("low", "medium", "high")),
           with_account(enum_column("low", "high")), backends=PG,
           ours_only=frozenset({("modify_enum", None, "mood")})),
    Change("enum_table_dropped", "enums",
           models(base, lambda m: Table("ticket", m, Column("id", Integer, primary_key=True),
                                        Column("state", Enum("open", "closed", name="ticket_state")))),
           models(base), backends=PG,
           ours_only=frozenset({("remove_enum", None, "ticket_state")})),
    Change("enum_table_added", "enums", models(base),
           models(base, lambda m: Table("ticket", m, Column("id", Integer, primary_key=True),
                                        Column("state", Enum("open", "closed", name="ticket_state")))),
           ours_only=frozenset({("add_enum", None, "ticket_state")})),
    # -- identity and sequences --------------------------------------------------------------------
    Change("identity_table_added", "identity", models(base),
           models(base, lambda m: Table("event", m, Column("id", BigInteger, Identity(start=1000),
                                                           primary_key=True),
                                        Column("kind", String(20))))),
    Change("identity_options_changed", "identity",
           models(base, lambda m: Table("event", m, Column("id", BigInteger, Identity(start=1000),
                                                           primary_key=True))),
           models(base, lambda m: Table("event", m, Column("id", BigInteger,
                                                           Identity(start=1000, increment=5),
                                                           primary_key=True))),
           backends=PG, options={"compare_server_default": True}),
    Change("identity_added_to_column", "identity",
           with_account(col("serial_no", BigInteger, nullable=False)),
           with_account(col("serial_no", BigInteger, Identity(always=True), nullable=False)),
           backends=PG, options={"compare_server_default": True}),
    Change("sequence_backed_table_added", "sequences", models(base),
           models(base, lambda m: Table("ticket", m, Column("id", Integer, sa.Sequence("ticket_id_seq"),
                                                            primary_key=True),
                                        Column("title", String(80)))),
           backends=PG, ours_only=frozenset({("add_sequence", None, "ticket_id_seq")})),
    Change("sequence_dropped", "sequences",
           models(base, lambda m: sa.Sequence("invoice_number", metadata=m)),
           models(base), backends=PG,
           ours_only=frozenset({("remove_sequence", None, "invoice_number")})),
    # -- schemas (PostgreSQL, include_schemas) -----------------------------------------------------
    Change("table_added_in_schema", "schemas", models(base),
           models(base, lambda m: Table("ledger", m, Column("id", Integer, primary_key=True),
                                        schema="extra")),
           backends=PG, schemas=("extra",), options={"include_schemas": True}),
    Change("table_dropped_in_schema", "schemas",
           models(base, lambda m: Table("ledger", m, Column("id", Integer, primary_key=True),
                                        Column("memo", String(30), index=True), schema="extra")),
           models(base), backends=PG, schemas=("extra",), options={"include_schemas": True}),
    Change("cross_schema_foreign_key", "schemas",
           models(base, lambda m: Table("ledger", m, Column("id", Integer, primary_key=True),
                                        Column("account_id", Integer), schema="extra")),
           models(base, lambda m: Table("ledger", m, Column("id", Integer, primary_key=True),
                                        Column("account_id", ForeignKey("account.id")), schema="extra")),
           backends=PG, schemas=("extra",), options={"include_schemas": True}),
    # -- filters -----------------------------------------------------------------------------------
    Change("include_name_skips_table", "filters",
           models(base, lambda m: Table("audit", m, Column("id", Integer, primary_key=True))),
           models(base), options={"include_name": skip_audit_name}, expect_empty=True),
    Change("include_object_skips_column", "filters",
           with_account(col("legacy_code", String(5)), col("email", String(50))),
           with_account(col("email", String(80))), options={"include_object": skip_legacy_column}),
    # -- several MetaData --------------------------------------------------------------------------
    Change("metadata_list", "several MetaData", models(base),
           lambda: [models(base)(), models(lambda m: note(m))()]),
]

CHANGE_COUNT = len(CATALOGUE)
