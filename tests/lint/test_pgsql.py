"""Reading SQL with PostgreSQL's parser: statements, sub-commands, defaults, types, bad SQL."""

from __future__ import annotations

from asyncmigrate.lint.changes import (
    AddColumn,
    AddConstraint,
    AlterType,
    CreateIndex,
    DataChange,
    DropIndex,
    DropTable,
    SetNotNull,
    SqlType,
    TransactionControl,
    Unreadable,
    Volatility,
)
from asyncmigrate.lint.pgsql import parse_type, read_sql, volatility_of


def test_several_statements_with_comments_each_keep_their_own_text() -> None:
    changes = read_sql(
        "-- backfill then index\nUPDATE account SET email = lower(email); /* why */\n"
        "CREATE INDEX CONCURRENTLY ix_a ON app.account (email);\nCOMMIT;"
    )
    update, index, commit = changes
    assert isinstance(update, DataChange)
    assert update.sql == "UPDATE account SET email = lower(email)"
    assert not update.where
    assert isinstance(index, CreateIndex)
    assert index.concurrently
    assert str(index.relation) == "app.account"
    assert isinstance(commit, TransactionControl)
    assert not commit.begin


def test_alter_table_sub_commands_become_one_change_each() -> None:
    changes = read_sql(
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id) NOT VALID, "
        "ALTER COLUMN c SET NOT NULL, ALTER COLUMN d TYPE bigint USING d::bigint, "
        "ADD COLUMN e uuid DEFAULT gen_random_uuid() NOT NULL"
    )
    fk, not_null, retype, column = changes
    assert isinstance(fk, AddConstraint)
    assert fk.kind == "foreign_key"
    assert fk.not_valid
    assert fk.referenced is not None
    assert fk.referenced.name == "u"
    assert isinstance(not_null, SetNotNull)
    assert not_null.column == "c"
    assert isinstance(retype, AlterType)
    assert retype.new == SqlType("int8")
    assert retype.using
    assert isinstance(column, AddColumn)
    assert column.not_null
    assert column.default is not None
    assert column.default.volatility == Volatility.VOLATILE


def test_check_that_proves_a_column_not_null_is_recognised() -> None:
    (check,) = read_sql("ALTER TABLE t ADD CONSTRAINT ck CHECK (name IS NOT NULL) NOT VALID")
    assert isinstance(check, AddConstraint)
    assert check.not_null_column == "name"
    (other,) = read_sql("ALTER TABLE t ADD CONSTRAINT ck CHECK (name <> '')")
    assert isinstance(other, AddConstraint)
    assert other.not_null_column is None


def test_default_volatility() -> None:
    assert volatility_of("now()")[0] == Volatility.STABLE
    assert volatility_of("CURRENT_TIMESTAMP")[0] == Volatility.STABLE
    assert volatility_of("'x'::text")[0] == Volatility.CONSTANT
    assert volatility_of("md5(random()::text)") == (Volatility.VOLATILE, "random")
    assert volatility_of("make_code(1)") == (Volatility.UNKNOWN, "make_code")
    (serial,) = read_sql("ALTER TABLE t ADD COLUMN n bigserial")
    assert isinstance(serial, AddColumn)
    assert serial.type == SqlType("int8")
    assert serial.default is not None
    assert serial.default.volatility == Volatility.VOLATILE


def test_drops_and_batched_updates() -> None:
    drop_index, table_a, table_b = read_sql("DROP INDEX ix; DROP TABLE a, s.b")
    assert isinstance(drop_index, DropIndex)
    assert drop_index.relation is None
    assert not drop_index.concurrently
    assert isinstance(table_a, DropTable)
    assert isinstance(table_b, DropTable)
    assert table_b.relation.schema == "s"
    (batch,) = read_sql("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE old LIMIT 500)")
    assert isinstance(batch, DataChange)
    assert batch.verb == "DELETE"
    assert batch.limited


def test_sql_the_parser_rejects_is_reported_not_raised() -> None:
    (bad,) = read_sql("ALTER TABLE `t` MODIFY c INT")
    assert isinstance(bad, Unreadable)
    assert "syntax error" in bad.error


def test_type_spellings_normalise() -> None:
    assert parse_type("VARCHAR(50)") == SqlType("varchar", (50,))
    assert parse_type("INTEGER") == SqlType("int4")
    assert parse_type("NUMERIC(10, 2)") == SqlType("numeric", (10, 2))
    assert parse_type("TEXT[]") == SqlType("text", (), True)
    assert parse_type("not a type at all") is None
