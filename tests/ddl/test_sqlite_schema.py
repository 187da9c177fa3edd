"""Parsing stored SQLite CREATE statements (what reflection misses, for batch recreates)."""

from __future__ import annotations

from asyncmigrate.ddl.sqlite_schema import parse_create_index, parse_create_table


def test_column_and_table_constraints_are_found() -> None:
    spec = parse_create_table(
        """CREATE TABLE "odd table" (
            id INTEGER PRIMARY KEY AUTOINCREMENT, -- the key
            "code" VARCHAR(10) CONSTRAINT uq_code UNIQUE NOT NULL,
            qty INTEGER DEFAULT (1 + 2) CHECK (qty >= 0),
            label TEXT CHECK (label <> 'a, (b)') COLLATE NOCASE,
            [weird col] INT CONSTRAINT ck_w CHECK ([weird col] > 0),
            twice INT GENERATED ALWAYS AS (qty * 2) VIRTUAL,
            thrice INT AS (qty * 3) STORED,
            /* a table constraint */ CONSTRAINT ck_both CHECK (qty < 100 AND id > 0),
            CHECK (length(code) > 1),
            UNIQUE (label, qty),
            FOREIGN KEY (qty) REFERENCES other (id)
        ) WITHOUT ROWID"""
    )
    by_name = {column.name: column for column in spec.columns}
    assert list(by_name) == ["id", "code", "qty", "label", "weird col", "twice", "thrice"]
    assert by_name["id"].autoincrement
    assert (by_name["code"].unique, by_name["code"].unique_name) == (True, "uq_code")
    assert by_name["qty"].checks == [(None, "qty >= 0")]
    assert by_name["label"].checks == [(None, "label <> 'a, (b)'")]
    assert by_name["weird col"].checks == [("ck_w", "[weird col] > 0")]
    assert (by_name["twice"].generated, by_name["twice"].stored) == ("qty * 2", False)
    assert (by_name["thrice"].generated, by_name["thrice"].stored) == ("qty * 3", True)
    assert spec.checks == [("ck_both", "qty < 100 AND id > 0"), (None, "length(code) > 1")]


def test_index_statements() -> None:
    spec = parse_create_index(
        'CREATE UNIQUE INDEX IF NOT EXISTS main."ix e" ON t (lower(a), "b" COLLATE NOCASE DESC) '
        "WHERE b > 0 AND a <> 'x'"
    )
    assert spec.name == "ix e"
    assert spec.unique
    assert spec.expressions == ["lower(a)", '"b" COLLATE NOCASE DESC']
    assert spec.where == "b > 0 AND a <> 'x'"
    plain = parse_create_index("create index ix on t(a)")
    assert (plain.unique, plain.expressions, plain.where) == (False, ["a"], None)
