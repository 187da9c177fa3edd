"""The isolation battery: every tenant ends with exactly what its own run of the revisions computed.

Per-tenant values reach revisions by every route Alembic users take:
``context.run_migrations(region=...)`` keyword arguments, the
environment-level ``context.get_context()`` (a schema named in a
``ForeignKey``), a helper module's (task-local) state set by env.py, and
code at a revision module's top level (read once per run, as Alembic's
per-database command loop imports the files afresh each time).
Schema tenants and a plain tenant share one URL (and its pooled
connections); SQLite files, PostgreSQL and MariaDB; one at a time and many
at once.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from asyncmigrate.tenants import Tenant, migrate_tenants

from ..project import make_project

HELPER = "fanout_isolation_values"

ENV_PY = f"""
from sqlalchemy.engine import Connection

from asyncmigrate import context
import {HELPER}

target_metadata = None


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    tenant = context.tenant
    {HELPER}.LABEL.set("lbl_" + tenant.name)
    with context.begin_transaction():
        context.run_migrations(region="region-" + tenant.name)


async def run_migrations_online() -> None:
    async with context.connect() as connection:
        await connection.run_sync(do_run_migrations)


context.run_async(run_migrations_online)
"""

REVISIONS = {
    "i0": (None, """
        def upgrade(region):
            op.create_table(
                "users",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("region", sa.String(60), server_default=region),
            )
            op.create_index("ix_users_" + {helper}.LABEL.get(), "users", ["region"])
    """),
    "i1": ("i0", """
        def upgrade(region):
            from alembic import context as env
            schema = env.get_context().version_table_schema
            target = f"{{schema}}.users.id" if schema else "users.id"
            op.create_table(
                "orders",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("user_id", sa.Integer, sa.ForeignKey(target, name="fk_orders_" + {helper}.LABEL.get())),
                sa.Column("note", sa.String(60), server_default=region + "/" + {helper}.LABEL.get()),
                schema=schema,
            )
    """),
    "i2": ("i1", """
        from alembic import context as env_at_import

        SCHEMA = env_at_import.get_context().version_table_schema
        RUNS = []


        def upgrade(region):
            RUNS.append(region)
            op.create_table(
                "audit",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("runs", sa.Integer, server_default=str(len(RUNS))),
                schema=SCHEMA,
            )
    """),
}


def write_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_project(root, [], env_py=ENV_PY)
    helpers = root / "helpers"
    helpers.mkdir()
    (helpers / f"{HELPER}.py").write_text(
        "from contextvars import ContextVar\n\nLABEL: ContextVar[str] = ContextVar('label')\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(helpers))
    versions = root / "migrations" / "versions"
    for rev, (down, body) in REVISIONS.items():
        code = textwrap.dedent(body.format(helper=HELPER)).strip()
        (versions / f"{rev}.py").write_text(
            f"import sqlalchemy as sa\nfrom alembic import op\nimport {HELPER}\n\n"
            f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"{code}\n\n\ndef downgrade(region):\n    pass\n",
            encoding="utf-8",
        )
    del config


async def what_tenant_has(tenant: Tenant) -> dict[str, object]:
    """Read back what the revisions left in ``tenant``: defaults, index and FK names, FK target."""
    engine = create_async_engine(tenant.url, poolclass=NullPool)
    schema = tenant.schema
    prefix = f"{schema}." if schema else ""
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"INSERT INTO {prefix}users (id) VALUES (1)"))
            await conn.execute(text(f"INSERT INTO {prefix}orders (id, user_id) VALUES (1, 1)"))
            region = (await conn.execute(text(f"SELECT region FROM {prefix}users"))).scalar_one()
            note = (await conn.execute(text(f"SELECT note FROM {prefix}orders"))).scalar_one()
            await conn.execute(text(f"INSERT INTO {prefix}audit (id) VALUES (1)"))
            runs = (await conn.execute(text(f"SELECT runs FROM {prefix}audit"))).scalar_one()
            await conn.rollback()

            def reflect(sync_conn: object) -> dict[str, object]:
                found = inspect(sync_conn)
                fks = found.get_foreign_keys("orders", schema=schema)
                return {
                    "indexes": sorted(i["name"] for i in found.get_indexes("users", schema=schema)),
                    "fks": [(fk["name"], fk.get("referred_schema"), fk["referred_table"]) for fk in fks],
                }

            shape = await conn.run_sync(reflect)
    finally:
        await engine.dispose()
    return {"region": region, "note": note, "runs": runs, **shape}


def expected(tenant: Tenant, default_schema: str | None) -> dict[str, object]:
    label = "lbl_" + tenant.name
    fk_name = "fk_orders_" + label
    return {
        "region": "region-" + tenant.name,
        "note": f"region-{tenant.name}/{label}",
        "runs": 1,
        "indexes": ["ix_users_" + label],
        "fks": [(fk_name, tenant.schema or default_schema, "users")],
    }


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_each_tenant_ends_with_exactly_its_own_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_db: URL, concurrency: int
) -> None:
    write_project(tmp_path, monkeypatch)
    from asyncmigrate import Config

    config = Config(str(tmp_path / "alembic.ini"))
    shared = server_db.render_as_string(hide_password=False)
    database = server_db.database
    tenants = [Tenant("plain_shared", shared)]  # the URL's default schema, next to schema tenants
    # Schema tenants interleaved with the plain one: they take turns on the same pooled connections.
    tenants += [Tenant(f"sch{i}", shared, f"{database}_s{i}") for i in range(6)]
    tenants.insert(3, tenants.pop(0))
    tenants += [Tenant(f"file{i}", f"sqlite:///{tmp_path}/file{i}.db") for i in range(4)]
    report = await migrate_tenants(config, tenants, "head", concurrency=concurrency)
    assert report.counts["ok"] == len(tenants), report.failed
    default_schema = "public" if server_db.get_backend_name() == "postgresql" else None
    for tenant in tenants:
        got = await what_tenant_has(tenant)
        want = expected(tenant, default_schema if not tenant.url.startswith("sqlite") else None)
        if tenant.schema is None and not tenant.url.startswith("sqlite"):
            # Reflection names the default schema's own tables without a schema.
            want["fks"] = [(want["fks"][0][0], None, "users")]  # type: ignore[index]
        assert got == want, tenant


async def test_a_revisions_top_level_code_runs_once_for_each_tenant_and_sees_that_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each tenant's run imports the revision once, at its own context; no run sees another's module.

    The import log is a helper module's list: a module imported once per
    process would log one tenant; one imported twice in a run would log it
    twice.
    """
    make_project(tmp_path, [])  # the async template's env.py
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "fanout_import_log.py").write_text("IMPORTS = []\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(helpers))
    (tmp_path / "migrations" / "versions" / "t0.py").write_text(
        textwrap.dedent("""
            import sqlalchemy as sa
            from alembic import context, op
            import fanout_import_log

            revision = "t0"
            down_revision = None
            TENANT = context.tenant.name
            fanout_import_log.IMPORTS.append(TENANT)


            def upgrade():
                op.create_table("imported_by", sa.Column("name", sa.String(40), server_default=TENANT))


            def downgrade():
                op.drop_table("imported_by")
        """),
        encoding="utf-8",
    )
    from asyncmigrate import Config

    import fanout_import_log  # type: ignore[import-not-found]

    config = Config(str(tmp_path / "alembic.ini"))
    tenants = [Tenant(f"t{i}", f"sqlite:///{tmp_path}/t{i}.db") for i in range(6)]
    report = await migrate_tenants(config, tenants, "head", concurrency=3)
    assert report.counts["ok"] == len(tenants), report.failed
    assert sorted(fanout_import_log.IMPORTS) == sorted(t.name for t in tenants)
    for tenant in tenants:
        engine = create_async_engine(tenant.url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO imported_by DEFAULT VALUES"))
                assert (await conn.execute(text("SELECT name FROM imported_by"))).scalar_one() == tenant.name
        finally:
            await engine.dispose()
