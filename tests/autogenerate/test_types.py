"""Type comparison: what counts as a change of type, per dialect."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from asyncmigrate.autogenerate.compare.types import type_signature, types_differ

PG = postgresql.dialect()
LITE = sqlite.dialect()


@pytest.mark.parametrize(
    ("dialect", "inspected", "model", "differ"),
    [
        (PG, sa.VARCHAR(50), sa.String(50), False),
        (PG, sa.VARCHAR(50), sa.String(100), True),
        (PG, sa.VARCHAR(50), sa.String(), False),
        (PG, sa.INTEGER(), sa.BigInteger(), True),
        (PG, sa.VARCHAR(50), sa.Text(), True),
        (PG, sa.NUMERIC(10, 2), sa.Numeric(10, 2), False),
        (PG, sa.NUMERIC(10, 2), sa.Numeric(12, 2), True),
        (PG, sa.NUMERIC(10, 2), sa.DECIMAL(10, 2), False),
        (PG, postgresql.DOUBLE_PRECISION(), sa.Float(), False),
        (PG, postgresql.TIMESTAMP(), sa.DateTime(timezone=True), True),
        (PG, postgresql.TIMESTAMP(timezone=True), sa.DateTime(timezone=True), False),
        (PG, postgresql.ENUM("a", name="mood"), sa.Enum("a", "b", name="mood"), False),
        (PG, postgresql.JSONB(), postgresql.JSONB(), False),
        (PG, postgresql.JSON(), postgresql.JSONB(), True),
        (LITE, sa.DATETIME(), sa.DateTime(), False),
        (LITE, sa.VARCHAR(4), sa.Enum("low", "medium", name="p"), True),
        (LITE, sa.BOOLEAN(), sa.Boolean(), False),
        (LITE, sa.INTEGER(), sa.BigInteger(), True),
    ],
)
def test_types_differ(dialect: sa.Dialect, inspected: sa.types.TypeEngine, model: sa.types.TypeEngine,
                      differ: bool) -> None:
    assert types_differ(dialect, inspected, model) is differ


def test_signature_splits_words_arguments_and_trailing_words() -> None:
    signature = type_signature(PG, postgresql.TIMESTAMP(timezone=True, precision=3))
    assert (signature.words, signature.args, signature.trailing) == (("timestamp",), ("3",),
                                                                      ("with", "time", "zone"))
    assert type_signature(PG, postgresql.DOUBLE_PRECISION()).phrase == "double precision"
