"""Differential suite: every catalogue change, against Alembic's autogenerate, round trip included.

For each change and backend:

1. the database is created from the ``before`` models;
2. Alembic's ``compare_metadata`` and asyncmigrate's autogenerate (through
   ``command.revision(autogenerate=True)``, env.py and all) must find the same
   differences, less the documented ones only asyncmigrate reports;
3. the written revision is applied with ``upgrade head``; then ``command.check``
   passes and neither tool sees a difference left;
4. ``downgrade base`` brings the schema back to exactly where it started.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from asyncmigrate import command

from .. import backends
from .catalogue import CATALOGUE, KINDS, Change
from .support import (
    alembic_diffs,
    diff_keys,
    our_diffs,
    project,
    reset_postgresql,
    schema_picture,
    shared_postgresql_database,
    sync_connection,
)

CASES = [
    pytest.param(change, backend, id=f"{change.name}-{backend}",
                 marks=[pytest.mark.postgresql] if backend == "postgresql" else [])
    for change in CATALOGUE
    for backend in change.backends
]


def test_catalogue_covers_the_issue() -> None:
    counts = Counter(change.kind for change in CATALOGUE)
    assert len(CATALOGUE) >= 30
    assert set(counts) == set(KINDS)
    assert {change.name for change in CATALOGUE if "sqlite" in change.backends}
    assert len({change.name for change in CATALOGUE}) == len(CATALOGUE)


@pytest.fixture(scope="module")
def postgresql_database() -> Iterator[URL]:
    backends.require("postgresql")
    with shared_postgresql_database() as url:
        yield url


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    backend = request.node.callspec.params["backend"]
    if backend == "sqlite":
        return backends.sqlite_url(tmp_path / "db.sqlite")
    url: URL = request.getfixturevalue("postgresql_database")
    reset_postgresql(url)
    return url


def _metadatas(models: Any) -> list[sa.MetaData]:
    return list(models) if isinstance(models, (list, tuple)) else [models]


def _create(url: URL, change: Change) -> None:
    with sync_connection(url) as conn:
        for schema in change.schemas:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        for metadata in _metadatas(change.before()):
            metadata.create_all(conn)
        conn.commit()


def _keys(diffs: list[Any], conn: sa.Connection) -> set[tuple[Any, ...]]:
    return diff_keys(diffs, conn.dialect.default_schema_name)


@pytest.mark.parametrize(("change", "backend"), CASES)
async def test_change(change: Change, backend: str, database: URL, tmp_path: Path) -> None:
    url = database
    _create(url, change)
    schemas = [None, *change.schemas]
    target = change.after()
    options = dict(change.options)

    with sync_connection(url) as conn:
        started = schema_picture(conn, schemas)
        theirs = _keys(alembic_diffs(conn, target, options), conn)
        conn.rollback()
        ours_sync = _keys(our_diffs(conn, target, options), conn)
        default_schema = conn.dialect.default_schema_name

    config = project(tmp_path / "project", url, target, **options)
    captured: list[Any] = []

    def capture(context: Any, revision: Any, directives: list[Any]) -> None:
        for script in directives:
            for upgrade_ops in script.upgrade_ops_list:
                captured.extend(upgrade_ops.as_diffs())

    script = await command.revision(
        config, f"catalogue {change.name}", autogenerate=True, process_revision_directives=capture
    )
    assert not isinstance(script, list)
    ours = diff_keys(captured, default_schema)
    source = Path(script.path).read_text(encoding="utf-8")

    # 2. the same differences as Alembic, less what only asyncmigrate reports
    assert ours == ours_sync
    assert ours - change.ours_only == theirs - change.ours_only, source
    if backend == "postgresql":
        assert change.ours_only <= ours, source
    if change.expect_empty:
        assert not ours, source
        assert "pass" in source
    else:
        assert ours, f"{change.name}: nothing detected"

    # 3. applied, nothing is left to detect, by either tool
    await command.upgrade(config, "head")
    await command.check(config)
    with sync_connection(url) as conn:
        assert _keys(alembic_diffs(conn, change.after(), options), conn) - change.ours_only == set(), source
        conn.rollback()
        assert our_diffs(conn, change.after(), options) == []

    # 4. the downgrade puts the schema back where it started
    await command.downgrade(config, "base")
    with sync_connection(url) as conn:
        assert schema_picture(conn, schemas) == started, source
