"""Which tenants a run covers: every tenant once, and a shard of them when asked.

A shard is ``index`` of ``count``. Tenants are put in the order of a hash of
their names (ties broken by the name), and that order is cut into ``count``
contiguous runs whose sizes differ by at most one. So shards are

- *balanced*: within one tenant of each other, for any set of names;
- *stable*: a tenant's shard depends on the set of names only, never on the
  order a file or a query lists them in, and every shard process, given
  the same set, computes the same split;
- *cheap to grow*: adding or removing a tenant moves only tenants next to
  the cuts (at most one per cut), not a fraction of the fleet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ..exceptions import ConfigError
from .model import Tenant
from .sources import TenantSource, iterate_tenants

__all__ = ["Selection", "select_tenants", "shard_bounds", "shard_names"]


@dataclass(frozen=True)
class Selection:
    """The tenants a run covers, in the order they were given."""

    tenants: list[Tenant]
    listed: int
    """How many tenants the source listed (before sharding)."""
    shard: tuple[int, int] | None = None

    @property
    def empty_shard(self) -> bool:
        """True when a shard was asked for and it holds no tenant."""
        return self.shard is not None and not self.tenants

    def describe_empty(self) -> str:
        """The warning an empty shard deserves."""
        index, count = self.shard or (0, 0)
        return (
            f"shard {index}/{count} selects no tenants: the source lists {self.listed}, "
            f"fewer than the {count} shards"
            if self.listed < count
            else f"shard {index}/{count} selects no tenants"
        )


def _check_shard(index: int, count: int) -> None:
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"Invalid shard {index}/{count}: need 0 <= index < count")


def _order_key(name: str) -> tuple[bytes, str]:
    return hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), name


def shard_bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """Return the slice ``[start, stop)`` of the hash order that shard ``index`` of ``count`` takes."""
    _check_shard(index, count)
    return total * index // count, total * (index + 1) // count


def shard_names(names: Sequence[str], index: int, count: int) -> set[str]:
    """Return the names of ``names`` that belong to shard ``index`` of ``count``."""
    start, stop = shard_bounds(len(names), index, count)
    return set(sorted(names, key=_order_key)[start:stop])


async def select_tenants(source: TenantSource, shard: tuple[int, int] | None = None) -> Selection:
    """Collect the tenants of ``source`` (each name once) and keep ``shard``'s share.

    :raises ConfigError: when a name appears twice, or the shard is invalid.
    """
    if shard is not None:
        _check_shard(*shard)
    tenants: list[Tenant] = []
    seen: set[str] = set()
    async for tenant in iterate_tenants(source):
        if tenant.name in seen:
            raise ConfigError(f"Tenant name {tenant.name!r} appears more than once")
        seen.add(tenant.name)
        tenants.append(tenant)
    listed = len(tenants)
    if shard is not None:
        members = shard_names([t.name for t in tenants], *shard)
        tenants = [t for t in tenants if t.name in members]
    return Selection(tenants, listed, shard)
