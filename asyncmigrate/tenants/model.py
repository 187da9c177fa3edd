"""A tenant: one migration target -- a name, a database URL, optionally a schema in it."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

from sqlalchemy.engine import URL

from ..exceptions import ConfigError
from ..urls import mask_password, to_async_url

__all__ = ["Tenant", "check_identifier", "in_shard"]

# Schema names used unquoted by humans and quoted by us: letters, digits, _ and $,
# not starting with a digit, at most 63 characters (PostgreSQL's limit).
_SAFE_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def check_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a safe SQL identifier.

    :raises ConfigError: for anything else (quotes, spaces, dots, too long, empty).
    """
    if not isinstance(name, str) or not _SAFE_IDENTIFIER.fullmatch(name):
        raise ConfigError(
            f"Unsafe {what} name {name!r}: use letters, digits, '_' and '$', starting with a "
            f"letter or '_', at most 63 characters"
        )
    return name


@dataclass(frozen=True)
class Tenant:
    """One database (or schema in a database) to migrate.

    :param name: a unique, human-readable name (reports and logs use it).
    :param url: the database URL; sync-style URLs are mapped to async drivers.
    :param schema: the tenant's schema, for a schema-per-tenant set-up.
    """

    name: str
    url: str = field(repr=False)
    schema: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("A tenant needs a name")
        if self.schema is not None:
            check_identifier(self.schema, "schema")
        # The driver is checked when the tenant connects: one tenant's missing driver is its own failure.
        normalized = to_async_url(self.url, require_driver=False).render_as_string(hide_password=False)
        object.__setattr__(self, "url", normalized)

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema else ""
        return f"Tenant({self.name!r}, {self.masked_url!r}{schema})"

    @property
    def masked_url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return mask_password(self.url)

    @property
    def sa_url(self) -> URL:
        """The URL as a SQLAlchemy :class:`~sqlalchemy.engine.URL`."""
        return to_async_url(self.url, require_driver=False)

    @property
    def host(self) -> str:
        """``host:port`` of the server (the file path for SQLite), for per-host limits."""
        url = self.sa_url
        if url.get_backend_name() == "sqlite":
            return "sqlite"
        return f"{url.host or 'localhost'}:{url.port or ''}"


def in_shard(name: str, index: int, count: int) -> bool:
    """Tell whether ``name`` hashes to bucket ``index`` of ``count`` (by its name alone).

    A per-name hash cannot balance a small set (7 tenants may all land in
    one bucket); ``--shard`` and ``migrate_tenants(shard=...)`` use
    :func:`asyncmigrate.tenants.shard_names`, which splits the whole set
    evenly. Kept for code that needs a membership test from the name alone.
    """
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"Invalid shard {index}/{count}: need 0 <= index < count")
    return zlib.crc32(name.encode("utf-8")) % count == index
