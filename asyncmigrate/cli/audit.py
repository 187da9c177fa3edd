"""``log`` across tenants: the same tenant sources as the fan-out, read-only.

Each tenant's record is read in its own task, at most ``--concurrency`` at
once; one tenant's failure (an unreachable server) becomes its line and
never stops the others. (``validate`` across tenants is a fan-out
operation: see :func:`asyncmigrate.tenants.migrate_tenants`.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from .. import command
from ..exceptions import AsyncMigrateError
from .tenants import TenantOptions, _load_tenants, _parse_shard

if TYPE_CHECKING:
    from ..audit import AppliedRecord
    from ..config import Config
    from ..tenants import Tenant

__all__ = ["TenantOutcome", "log_across"]

T = TypeVar("T")


@dataclass(frozen=True)
class TenantOutcome(Generic[T]):
    """One tenant's result, or the one-line error that stopped it."""

    tenant: Tenant
    result: T | None = None
    error: str | None = None


async def _across(
    config: Config, options: TenantOptions, fn: Callable[[Config, dict[str, Any]], Awaitable[T]]
) -> list[TenantOutcome[T]]:
    from ..tenants import select_tenants

    selection = await select_tenants(await _load_tenants(config, options), _parse_shard(options.shard))
    tenants = selection.tenants
    script = await command._script_directory(config)
    limiter = anyio.CapacityLimiter(options.concurrency)
    outcomes: dict[int, TenantOutcome[T]] = {}

    async def one(index: int, tenant: Tenant) -> None:
        async with limiter:
            tenant_config = config.copy(url=tenant.url, attributes={"tenant": tenant})
            opts = {"tenant": tenant, "tenant_schema": tenant.schema, "script": script}
            try:
                outcomes[index] = TenantOutcome(tenant, await fn(tenant_config, opts))
            except AsyncMigrateError as exc:
                outcomes[index] = TenantOutcome(tenant, error=str(exc).splitlines()[0])

    async with anyio.create_task_group() as group:
        for index, tenant in enumerate(tenants):
            group.start_soon(one, index, tenant)
    return [outcomes[i] for i in range(len(tenants))]


async def log_across(config: Config, options: TenantOptions) -> list[TenantOutcome[AppliedRecord]]:
    """Read every selected tenant's applied record."""

    async def log(tenant_config: Config, opts: dict[str, Any]) -> AppliedRecord:
        return await command.log(tenant_config, **opts)

    return await _across(config, options, log)
