"""Many databases or schemas, migrated concurrently: tenants, their sources, the fan-out."""

from __future__ import annotations

from .fanout import FanoutReport, Operation, TenantEvent, TenantResult, TenantStatus, migrate_tenants
from .model import Tenant, check_identifier, in_shard
from .report import merge_reports, printable
from .selection import Selection, select_tenants, shard_names
from .sources import (
    TenantSource,
    discover_schemas,
    iterate_tenants,
    load_tenants_file,
    sqlite_files,
    tenants_from_query,
)

__all__ = [
    "FanoutReport",
    "Operation",
    "Selection",
    "Tenant",
    "TenantEvent",
    "TenantResult",
    "TenantSource",
    "TenantStatus",
    "check_identifier",
    "discover_schemas",
    "in_shard",
    "iterate_tenants",
    "load_tenants_file",
    "merge_reports",
    "migrate_tenants",
    "printable",
    "select_tenants",
    "shard_names",
    "sqlite_files",
    "tenants_from_query",
]
