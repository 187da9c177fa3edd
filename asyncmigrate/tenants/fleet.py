"""The fleet pre-read: many tenants' version rows in one query -- only when it is certain.

``current``, ``check`` and a re-run of ``upgrade`` over the schemas of one
PostgreSQL database can answer most tenants from one query that reads every
schema's version table at once, instead of running env.py per tenant. That
answer is right only if the query reads the very table env.py would have
the run read. env.py decides that (``context.configure(version_table=...,
version_table_schema=...)``), and env.py is arbitrary Python: the only way
to be certain without running it is to recognise it. :func:`preread_table`
does so when env.py is, statement for statement, a stock template
(asyncmigrate's own, or Alembic's ``generic``/``async``), which configure
the default table in the tenant's schema. Any other env.py -- one passing
``version_table``, one importing a helper that might -- runs per tenant.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Config
from ..exceptions import AsyncMigrateError
from ..masking import get_logger
from ..revision.plan import downgrade_plan, stamp_plan, upgrade_plan
from ..revision.revision import as_tuple
from ..script import ScriptDirectory
from .attempt import one_line
from .model import Tenant
from .report import TenantResult, TenantStatus

__all__ = [
    "PRE_READ_LIMIT",
    "answer",
    "fleet_versions",
    "plan_is_empty",
    "pre_read",
    "preread_table",
    "stock_env_digest",
]

log = get_logger(__name__)

#: The version table a stock env.py has the run use (in the tenant's schema).
DEFAULT_VERSION_TABLE = "alembic_version"

#: Digests (see :func:`stock_env_digest`) of Alembic 1.x's ``generic``/``pyproject`` and
#: ``async``/``pyproject_async`` env.py, as ``ast.unparse`` renders them on CPython 3.11+.
#: On a Python that renders them otherwise they are not recognised: env.py then runs.
_ALEMBIC_STOCK = frozenset({
    "a829b10cb70afa54b72cb28fc2f27d75f5a2057eb2e9d46cd4bb2cb08e7c0971",
    "3d2a9baaab30580c4dc62cc33778ff584ea9778c7968ebbf1bfff9b1b8c24c45",
})

_DOCSTRING_HOLDERS = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def stock_env_digest(source: str) -> str | None:
    """Return a digest of env.py's code, blind to comments, docstrings and layout (None: no Python)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, _DOCSTRING_HOLDERS) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                first.value.value, str
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=4)
def _shipped_digests(template_dir: str) -> frozenset[str]:
    digests = set(_ALEMBIC_STOCK)
    for env_py in Path(template_dir).glob("*/env.py"):
        digest = stock_env_digest(env_py.read_text(encoding="utf-8"))
        if digest is not None:
            digests.add(digest)
    return frozenset(digests)


def preread_table(script: ScriptDirectory, template_dir: str) -> str | None:
    """Return the version table every tenant's run would read, if that is certain; else None.

    Certain only when env.py is a stock template (see the module docstring):
    the run then reads :data:`DEFAULT_VERSION_TABLE` in the tenant's schema.
    """
    try:
        source = Path(script.env_py_location).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    digest = stock_env_digest(source)
    if digest is None or digest not in _shipped_digests(template_dir):
        return None
    return DEFAULT_VERSION_TABLE


_VERSION_VALUE = re.compile(r"<version_num>([^<]*)</version_num>")


async def fleet_versions(
    engine: AsyncEngine, schemas: Sequence[str], version_table: str
) -> dict[str, tuple[str, ...]]:
    """Read the version rows of many schemas of one PostgreSQL database in one round trip."""
    query = text(
        "SELECT n.nspname, query_to_xml(format('SELECT version_num FROM %I.%I', n.nspname, "
        "c.relname), false, true, '') FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relname = :table AND c.relkind IN ('r', 'p') "
        "AND n.nspname = ANY(:schemas)"
    )
    found: dict[str, tuple[str, ...]] = dict.fromkeys(schemas, ())
    async with engine.connect() as conn:
        for start in range(0, len(schemas), 5000):
            chunk = list(schemas[start : start + 5000])
            rows = await conn.execute(query, {"table": version_table, "schemas": chunk})
            for schema, xml in rows:
                found[schema] = tuple(_VERSION_VALUE.findall(xml or ""))
    return found


def plan_is_empty(
    script: ScriptDirectory, operation: str, heads: tuple[str, ...], target: str | Sequence[str] | None
) -> bool | None:
    """Tell whether ``operation`` to ``target`` has nothing to do from ``heads`` (None: unknown)."""
    graph = script.graph
    try:
        if operation == "upgrade":
            return not upgrade_plan(graph, heads, str(target))
        if operation == "downgrade":
            return not downgrade_plan(graph, heads, str(target))
        if operation == "stamp" and target is not None:
            return not stamp_plan(graph, as_tuple(target), heads)
    except AsyncMigrateError:
        return None
    return None


#: Seconds the fleet pre-read may take per database before tenants read their own.
PRE_READ_LIMIT = 5.0


async def pre_read(
    config: Config,
    script: ScriptDirectory,
    engine_for: Callable[[str], AsyncEngine],
    selected: Sequence[Tenant],
    operation: str,
    timeout: float | None,
) -> dict[str, tuple[str, ...]]:
    """Read the version rows of schema tenants of one PostgreSQL database at once, when sound.

    An optimisation only: a server that does not answer within :data:`PRE_READ_LIMIT`
    (or the tenant timeout, if shorter) is left to the tenants' own reads.
    """
    if operation == "validate":  # reads the history table too: each tenant reads its own
        return {}
    limit = PRE_READ_LIMIT if timeout is None else min(PRE_READ_LIMIT, timeout)
    table = preread_table(script, config.get_template_directory())
    if table is None:
        return {}
    by_url: dict[str, list[Tenant]] = {}
    for tenant in selected:
        if tenant.schema and tenant.sa_url.get_backend_name() == "postgresql":
            by_url.setdefault(tenant.url, []).append(tenant)
    known: dict[str, tuple[str, ...]] = {}
    for url, group in by_url.items():
        if len(group) < 2 and operation not in ("current", "check"):
            continue
        versions = None
        with anyio.move_on_after(limit):
            try:
                versions = await fleet_versions(engine_for(url), [t.schema or "" for t in group], table)
            except Exception as exc:  # an optimisation only: the tenants' own runs say what is wrong
                log.info("Could not pre-read versions on %s: %s", group[0].masked_url, one_line(exc))
        if versions is None:  # each tenant then reads its own, under its own deadline and retries
            continue
        for tenant in group:
            known[tenant.name] = versions[tenant.schema or ""]
    return known


def answer(
    script: ScriptDirectory,
    operation: str,
    target: str | Sequence[str] | None,
    tenant: Tenant,
    heads: tuple[str, ...] | None,
) -> TenantResult | None:
    """The result of a tenant the pre-read answers without visiting it (None: visit it)."""
    if heads is None:
        return None

    def result(status: TenantStatus, error: str | None = None) -> TenantResult:
        return TenantResult(
            tenant.name, tenant.masked_url, tenant.schema, status, from_heads=heads, to_heads=heads,
            error=error,
        )

    if operation in ("current", "check"):
        try:
            pending = len(upgrade_plan(script.graph, heads, "heads"))
        except AsyncMigrateError:
            return None  # the tenant's own run says what is wrong
        if operation == "check" and pending:
            return result("failed", f"not at head: {pending} revision(s) to apply")
        return result("ok")
    if plan_is_empty(script, operation, heads, target):
        return result("unchanged")
    return None
