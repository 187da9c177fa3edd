"""Database URLs: map sync-style URLs to async drivers, and hide passwords."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .exceptions import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# SQLAlchemy is imported inside the functions: reading a revision history (heads,
# history) never needs it, and the command line starts faster without it.

__all__ = ["mask_password", "mask_passwords_in", "parse_url", "to_async_url"]

# Driver names that only work synchronously, per backend, and the async driver to use.
_ASYNC_DRIVERS = {
    "postgresql": ("asyncpg", {"", "psycopg2", "psycopg2cffi", "pg8000", "pygresql"}),
    "sqlite": ("aiosqlite", {"", "pysqlite", "pysqlcipher"}),
    "mysql": ("asyncmy", {"", "pymysql", "mysqldb", "mysqlconnector", "cymysql"}),
    "mariadb": ("asyncmy", {"", "pymysql", "mysqldb", "mysqlconnector", "mariadbconnector"}),
}
_BACKEND_ALIASES = {"postgres": "postgresql", "pgsql": "postgresql"}
# libpq's sslmode values and what asyncpg's ``ssl`` argument calls them.
_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


def parse_url(url: str | URL) -> URL:
    """Parse ``url`` into a SQLAlchemy :class:`~sqlalchemy.engine.URL`.

    :raises ConfigError: with the password masked, when the URL is malformed.
    """
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, URL):
        return url
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"Invalid database URL {mask_passwords_in(url)!r}") from exc


def to_async_url(url: str | URL) -> URL:
    """Return ``url`` with a sync-only driver replaced by its asyncio counterpart.

    ``postgres://`` and ``postgresql://`` (and psycopg2, pg8000) become
    ``postgresql+asyncpg://``, with libpq's ``sslmode`` turned into asyncpg's
    ``ssl``; ``sqlite://`` becomes ``sqlite+aiosqlite://``; ``mysql://`` and
    ``mariadb://`` become ``+asyncmy``. Async drivers and unknown backends are
    returned unchanged.
    """
    parsed = parse_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    backend = _BACKEND_ALIASES.get(backend, backend)
    entry = _ASYNC_DRIVERS.get(backend)
    if entry is None:
        return parsed
    async_driver, sync_drivers = entry
    if driver not in sync_drivers:
        return parsed.set(drivername=f"{backend}+{driver}" if driver else backend)
    parsed = parsed.set(drivername=f"{backend}+{async_driver}")
    if async_driver == "asyncpg" and "sslmode" in parsed.query:
        mode = parsed.query["sslmode"]
        mode = mode if isinstance(mode, str) else mode[-1]
        if mode not in _SSLMODES:
            raise ConfigError(f"Unknown sslmode {mode!r} in database URL")
        parsed = parsed.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})
    return parsed


def mask_password(url: str | URL) -> str:
    """Render ``url`` with its password replaced by ``***``."""
    try:
        return parse_url(url).render_as_string(hide_password=True)
    except ConfigError:
        return mask_passwords_in(str(url))


_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


def mask_passwords_in(text: str) -> str:
    """Replace the password of every URL found in free ``text`` with ``***``."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
