"""Database URLs: map sync-style URLs to async drivers, and hide passwords."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from .exceptions import ConfigError
from .masking import mask_secrets, mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# SQLAlchemy is imported inside the functions: reading a revision history (heads,
# history) never needs it, and the command line starts faster without it.

__all__ = [
    "driver_missing",
    "engine_error",
    "mask_password",
    "mask_passwords_in",
    "missing_sqlite_file",
    "parse_url",
    "sqlite_file_path",
    "to_async_url",
]

# Driver names that only work synchronously, per backend, and the async driver to use.
_ASYNC_DRIVERS = {
    "postgresql": ("asyncpg", {"", "psycopg2", "psycopg2cffi", "pg8000", "pygresql"}),
    "sqlite": ("aiosqlite", {"", "pysqlite", "pysqlcipher"}),
    "mysql": ("asyncmy", {"", "pymysql", "mysqldb", "mysqlconnector", "cymysql"}),
    "mariadb": ("asyncmy", {"", "pymysql", "mysqldb", "mysqlconnector", "mariadbconnector"}),
}
_BACKEND_ALIASES = {"postgres": "postgresql", "pgsql": "postgresql"}
# Async drivers that are not installed with asyncmigrate, and the extra that brings each.
_OPTIONAL_DRIVERS = {"asyncmy": "mysql"}
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


def to_async_url(url: str | URL, *, require_driver: bool = True) -> URL:
    """Return ``url`` with a sync-only driver replaced by its asyncio counterpart.

    ``postgres://`` and ``postgresql://`` (and psycopg2, pg8000) become
    ``postgresql+asyncpg://``, with libpq's ``sslmode`` turned into asyncpg's
    ``ssl``; ``sqlite://`` becomes ``sqlite+aiosqlite://``; ``mysql://`` and
    ``mariadb://`` become ``+asyncmy``. Async drivers and unknown backends are
    returned unchanged.

    :param require_driver: check that an optional driver the URL needs
        (asyncmy) is installed; off where a URL is only read (a tenant list),
        so the check fails the one tenant that connects with it.
    :raises ConfigError: when the URL needs asyncmy and it is not installed
        (the message names ``asyncmigrate[mysql]``).
    """
    parsed = parse_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    backend = _BACKEND_ALIASES.get(backend, backend)
    entry = _ASYNC_DRIVERS.get(backend)
    if entry is None:
        return parsed
    async_driver, sync_drivers = entry
    if driver not in sync_drivers:
        if require_driver:
            _require_driver(driver, parsed)
        return parsed.set(drivername=f"{backend}+{driver}" if driver else backend)
    if require_driver:
        _require_driver(async_driver, parsed)
    parsed = parsed.set(drivername=f"{backend}+{async_driver}")
    if async_driver == "asyncpg" and "sslmode" in parsed.query:
        mode = parsed.query["sslmode"]
        mode = mode if isinstance(mode, str) else mode[-1]
        if mode not in _SSLMODES:
            raise ConfigError(f"Unknown sslmode {mode!r} in database URL")
        parsed = parsed.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})
    return parsed


def _require_driver(driver: str, url: URL) -> None:
    """Fail with the install command when an optional async driver ``url`` needs is missing."""
    extra = _OPTIONAL_DRIVERS.get(driver)
    if extra is None:
        return
    try:
        installed = importlib.util.find_spec(driver) is not None
    except ImportError:
        installed = False
    if not installed:
        raise ConfigError(
            f"The database URL {mask_password(url)!r} needs the {driver} driver, which is not "
            f"installed: pip install 'asyncmigrate[{extra}]'"
        )


def mask_password(url: str | URL) -> str:
    """Render ``url`` with its password (also one in the query string) replaced by ``***``.

    The masking itself is :func:`asyncmigrate.masking.mask_secrets`, the one
    function every output path uses.
    """
    try:
        return mask_url(parse_url(url))
    except ConfigError:
        return mask_secrets(str(url))


def mask_passwords_in(text: str) -> str:
    """Replace every password found in free ``text`` with ``***`` (see :func:`.masking.mask_secrets`)."""
    return mask_secrets(text)


def engine_error(exc: BaseException) -> str:
    """Say in one line, passwords masked, why no engine could be made for a URL."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"its database driver is not installed (no module named {exc.name!r})"
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return mask_secrets(f"{type(exc).__name__}: {line}" if line else type(exc).__name__)


def driver_missing(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLAlchemy failing to import a URL's database driver."""
    if not isinstance(exc, ModuleNotFoundError):
        return False
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        if name in ("import_dbapi", "dbapi", "create_engine", "create_async_engine"):
            return True
        tb = tb.tb_next
    return False


def missing_sqlite_file(url: str | URL) -> str | None:
    """Return the file path of a SQLite ``url`` whose database file does not exist (else None).

    In-memory databases are never "missing"; a ``file:`` URI names the file
    in its path. Read-only commands check this instead of letting the driver
    create an empty file.
    """
    from pathlib import Path

    try:
        parsed = parse_url(url)
    except ConfigError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    path = sqlite_file_path(parsed)
    return None if path is None or Path(path).exists() else path


def sqlite_file_path(url: URL) -> str | None:
    """The file a SQLite URL opens, as written (maybe relative); None for an in-memory database.

    Plain paths are the URL's database; a ``file:`` URI (``uri=true``) names
    its file in the URI's path, percent-encoded, after an optional
    ``//localhost`` authority.
    """
    from urllib.parse import unquote

    database = url.database or ""
    if not database or database == ":memory:":
        return None
    if not (database.startswith("file:") or url.query.get("uri")):
        return database
    if url.query.get("mode") == "memory":
        return None
    path = database.removeprefix("file:")
    path, _, _ = path.partition("?")
    if path.startswith("//"):  # file://host/path: only an empty or local host is allowed
        host, _, rest = path[2:].partition("/")
        path = "/" + rest if host in ("", "localhost") else path
    path = unquote(path)
    return None if not path or path == ":memory:" else path


