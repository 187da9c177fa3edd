"""Tenant sources: files with ${VAR}, control-database queries, schema discovery, SQLite globs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate.exceptions import ConfigError
from asyncmigrate.tenants import (
    Tenant,
    discover_schemas,
    in_shard,
    iterate_tenants,
    load_tenants_file,
    sqlite_files,
    tenants_from_query,
)


def test_toml_file_with_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_PW", "s3cret")
    path = tmp_path / "tenants.toml"
    path.write_text(
        '[[tenants]]\nname = "acme"\nurl = "postgresql://app:${ACME_PW}@db/acme"\n\n'
        '[[tenants]]\nname = "globex"\nurl = "postgres://app@db/shared"\nschema = "t_globex"\n',
        encoding="utf-8",
    )
    acme, globex = load_tenants_file(path)
    assert acme.url == "postgresql+asyncpg://app:s3cret@db/acme"
    assert "s3cret" not in repr(acme)
    assert acme.masked_url == "postgresql+asyncpg://app:***@db/acme"
    assert (globex.schema, globex.url) == ("t_globex", "postgresql+asyncpg://app@db/shared")


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps([{"name": "a", "url": "sqlite:///a.db"}]), encoding="utf-8")
    # A relative SQLite path is relative to the tenants file, not to the current directory.
    assert load_tenants_file(path) == [Tenant("a", f"sqlite+aiosqlite:///{tmp_path}/a.db")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[[tenants]]\nname = "a"\n', "missing 'url'"),
        ('[[tenants]]\nname = "a"\nurl = "sqlite://"\ncolour = "red"\n', "unknown tenant key"),
        ('[[tenants]]\nname = "a"\nurl = "sqlite://"\n[[tenants]]\nname = "a"\nurl = "sqlite://"\n', "more than once"),
        ('[[tenants]]\nname = "a"\nurl = "sqlite://"\nschema = "x; DROP TABLE y"\n', "Unsafe schema"),
        ('[[tenants]]\nname = "a"\nurl = "postgresql://${NO_SUCH_VAR_99}@h/d"\n', "NO_SUCH_VAR_99"),
        ("tenants = 5\n", "expected a list"),
        ("[[tenants]\n", "Cannot parse"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_tenants_file(path)


@pytest.mark.parametrize("schema", ['a"b', "with space", "dot.ted", "1starts_with_digit", "", "x" * 64])
def test_unsafe_schema_names_are_rejected(schema: str) -> None:
    with pytest.raises(ConfigError, match="Unsafe schema"):
        Tenant("t", "postgresql://h/db", schema)


def test_sqlite_glob(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.db").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.db").write_bytes(b"")
    found = sqlite_files(str(tmp_path / "**" / "*.db"))
    assert sorted(t.name for t in found) == sorted([str(tmp_path / "a.db"), "b", str(tmp_path / "sub" / "a.db")])


async def test_schema_discovery_and_query(pg_db: URL) -> None:
    engine = create_async_engine(pg_db, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for schema in ("tenant_one", "tenant_two", "other"):
                await conn.execute(text(f"CREATE SCHEMA {schema}"))
            await conn.execute(text("CREATE TABLE public.tenants (name text, url text, schema text)"))
            await conn.execute(text(
                "INSERT INTO public.tenants VALUES ('one', 'postgres://u@h/db', 'tenant_one'), "
                "('two', 'sqlite:///two.db', NULL)"
            ))
    finally:
        await engine.dispose()
    url = pg_db.render_as_string(hide_password=False)
    found = await discover_schemas(url, "tenant\\_%")
    assert [(t.name, t.schema) for t in found] == [("tenant_one", "tenant_one"), ("tenant_two", "tenant_two")]
    queried = await tenants_from_query(url, "SELECT name, url, schema FROM public.tenants ORDER BY name")
    assert queried == [Tenant("one", "postgres://u@h/db", "tenant_one"), Tenant("two", "sqlite:///two.db")]


async def test_async_iterable_source() -> None:
    async def source():  # type: ignore[no-untyped-def]
        yield Tenant("a", "sqlite://")
        yield Tenant("b", "sqlite://")

    assert [t.name async for t in iterate_tenants(source())] == ["a", "b"]


def test_shards_partition_stably() -> None:
    names = [f"tenant-{i}" for i in range(500)]
    shards = [[n for n in names if in_shard(n, i, 4)] for i in range(4)]
    assert sorted(n for shard in shards for n in shard) == sorted(names)
    assert all(60 < len(shard) < 190 for shard in shards)
    assert shards == [[n for n in names if in_shard(n, i, 4)] for i in range(4)]
    with pytest.raises(ConfigError):
        in_shard("x", 4, 4)
