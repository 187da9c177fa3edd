"""Where tenants come from: a file, a control database, schema discovery, a glob, or code."""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from ..config import expand_environment
from ..exceptions import ConfigError, ConnectionFailedError
from ..urls import mask_password, mask_passwords_in, sqlite_file_path, to_async_url
from .model import Tenant

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "TenantSource",
    "discover_schemas",
    "iterate_tenants",
    "load_tenants_file",
    "sqlite_files",
    "tenants_from_query",
]

#: Anything tenants can be drawn from: a list, any iterable, or an async iterable.
TenantSource: TypeAlias = "Iterable[Tenant] | AsyncIterable[Tenant]"


def _anchored(url: str, base: Path | None) -> str:
    """Resolve a relative SQLite file path in ``url`` against ``base`` (the tenants file's folder).

    Plain paths and ``file:`` URIs alike; in-memory databases and absolute
    paths are left as they are.
    """
    if base is None:
        return url
    parsed = to_async_url(url, require_driver=False)
    if parsed.get_backend_name() != "sqlite":
        return url
    path = sqlite_file_path(parsed)
    if path is None or Path(path).is_absolute():
        return url
    database = parsed.database or ""
    if database.startswith("file:") or parsed.query.get("uri"):  # a URI: its path percent-encoded
        anchored = ("file:" if database.startswith("file:") else "") + quote(str(base / path), safe="/")
    else:
        anchored = str(base / path)
    return parsed.set(database=anchored).render_as_string(hide_password=False)


def _tenant_from_mapping(
    item: Any, where: str, environ: Mapping[str, str] | None, base: Path | None = None
) -> Tenant:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: each tenant must be a table with name and url")
    unknown = set(item) - {"name", "url", "schema"}
    if unknown:
        raise ConfigError(f"{where}: unknown tenant key(s) {', '.join(sorted(unknown))}")
    try:
        name, url = item["name"], item["url"]
    except KeyError as exc:
        raise ConfigError(f"{where}: a tenant is missing '{exc.args[0]}'") from exc
    schema = item.get("schema")
    values = [v for v in (name, url, schema) if v is not None]
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where}: tenant name, url and schema must be strings")
    try:
        return Tenant(
            expand_environment(name, environ),
            _anchored(expand_environment(url, environ), base),
            expand_environment(schema, environ) if schema is not None else None,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: tenant {name!r}: {exc}") from exc


def load_tenants_file(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> list[Tenant]:
    """Read tenants from a TOML (``[[tenants]]``) or JSON file; ``${VAR}`` expands from the environment.

    A relative SQLite path (``sqlite:///data/a.db``) is relative to the
    folder of the tenants file, not to the current directory.

    :raises ConfigError: when the file is missing, malformed, or names a tenant twice.
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read tenants file {file}: {exc.strerror or exc}") from exc
    try:
        if file.suffix.lower() == ".json":
            data: Any = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot parse tenants file {file}: {exc}") from exc
    items = data.get("tenants") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError(f"{file}: expected a list of tenants ([[tenants]] in TOML)")
    tenants = [
        _tenant_from_mapping(item, f"{file} (tenant #{i + 1})", environ, file.absolute().parent)
        for i, item in enumerate(items)
    ]
    _check_unique(tenants, str(file))
    return tenants


def _check_unique(tenants: Iterable[Tenant], where: str) -> None:
    seen: set[str] = set()
    for tenant in tenants:
        if tenant.name in seen:
            raise ConfigError(f"{where}: tenant name {tenant.name!r} appears more than once")
        seen.add(tenant.name)


async def tenants_from_query(
    control_url: str, query: str, params: Mapping[str, Any] | None = None
) -> list[Tenant]:
    """Run ``query`` against a control database; each row gives name, url[, schema].

    Columns are read by name (``name``, ``url``, ``schema``) when present,
    otherwise by position.
    """
    engine = create_async_engine(to_async_url(control_url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(query), dict(params or {}))
            keys = list(result.keys())
            rows = result.all()
    except DBAPIError as exc:
        detail = mask_passwords_in(str(exc.orig or exc).strip().splitlines()[0])
        if exc.statement is None:
            raise ConnectionFailedError(
                f"Cannot connect to {mask_password(control_url)}: {detail}"
            ) from exc
        raise ConfigError(f"Tenant query failed on {mask_password(control_url)}: {detail}") from exc
    except (OSError, SQLAlchemyError) as exc:
        raise ConnectionFailedError(
            f"Cannot connect to {mask_password(control_url)}: {mask_passwords_in(str(exc))}"
        ) from exc
    finally:
        await engine.dispose()
    named = {"name", "url"} <= set(keys)
    tenants = []
    for row in rows:
        mapping = row._mapping
        if named:
            name, url, schema = mapping["name"], mapping["url"], mapping.get("schema")
        else:
            if len(row) < 2:
                raise ConfigError("The tenant query must return name and url columns")
            name, url = row[0], row[1]
            schema = row[2] if len(row) > 2 else None
        tenants.append(Tenant(str(name), str(url), str(schema) if schema is not None else None))
    _check_unique(tenants, "tenant query")
    return tenants


async def discover_schemas(url: str, pattern: str, exclude: Iterable[str] = ()) -> list[Tenant]:
    """Return a tenant for every PostgreSQL schema of ``url`` matching the LIKE ``pattern``.

    Each tenant is named after its schema. System schemas never match.
    """
    async_url = to_async_url(url)
    if async_url.get_backend_name() != "postgresql":
        raise ConfigError("Schema discovery needs a PostgreSQL URL")
    engine = create_async_engine(async_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE :pattern "
                    "AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' "
                    "ORDER BY nspname"
                ),
                {"pattern": pattern},
            )
            names = [r[0] for r in rows]
    except (DBAPIError, OSError) as exc:
        raise ConnectionFailedError(
            f"Cannot list schemas on {mask_password(url)}: {mask_passwords_in(str(exc).splitlines()[0])}"
        ) from exc
    finally:
        await engine.dispose()
    skip = set(exclude)
    plain = async_url.render_as_string(hide_password=False)
    return [Tenant(name, plain, name) for name in names if name not in skip]


def sqlite_files(pattern: str) -> list[Tenant]:
    """Return a tenant for every SQLite file matching the glob ``pattern`` (named by file stem).

    Files whose stems collide are named by their path instead.
    """
    paths = sorted(Path(p).resolve() for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    stems = [p.stem for p in paths]
    tenants = []
    for path in paths:
        name = path.stem if stems.count(path.stem) == 1 else str(path)
        tenants.append(Tenant(name, f"sqlite+aiosqlite:///{path}"))
    return tenants


async def iterate_tenants(source: TenantSource) -> AsyncIterator[Tenant]:
    """Yield tenants from a sync or async iterable, checking each is a :class:`Tenant`."""
    if isinstance(source, AsyncIterable):
        async for tenant in source:
            yield _checked(tenant)
    else:
        for tenant in source:
            yield _checked(tenant)


def _checked(tenant: object) -> Tenant:
    if not isinstance(tenant, Tenant):
        raise ConfigError(f"Expected a Tenant, got {type(tenant).__name__}")
    return tenant
