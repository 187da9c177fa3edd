"""Extensions registered against Alembic work under asyncmigrate: differential runs with the real packages.

alembic_utils (views, functions, triggers: ``op.create_entity`` /
``replace_entity`` / ``drop_entity`` and their autogenerate) and
alembic-postgresql-enum (autogenerate of enum changes, ``op.sync_enum_values``)
import the real Alembic and register on its classes. The same project runs
with Alembic on one database and asyncmigrate on another; the version rows,
tables and what the extensions manage (read from ``pg_catalog``) must match,
and so must the code autogenerate writes.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from .. import backends
from .extension_project import body, catalog, run_alembic, run_asyncmigrate, write_project

pytestmark = pytest.mark.postgresql


@pytest.fixture
async def two_pg_dbs() -> AsyncIterator[tuple[URL, URL]]:
    backends.require("postgresql")
    async with backends.scratch_database("postgresql") as first, backends.scratch_database(
        "postgresql"
    ) as second:
        yield first, second


@pytest.fixture
def alembic_comparators() -> Iterator[Any]:
    """Alembic's global comparator registry, restored after the test.

    The extensions register their comparators on import, for the whole
    process: left in place they would take part in every later autogenerate
    test of this worker (alembic-postgresql-enum would take over enum types).
    """
    from alembic.autogenerate import comparators

    saved = {key: list(entries) for key, entries in comparators._registry.items()}
    yield comparators
    comparators._registry.clear()
    comparators._registry.update(saved)


def ensure_registered(comparators: Any, fn: Any, **kw: Any) -> None:
    """Register ``fn`` for "schema" as the package's import does, unless an earlier import did."""
    if not any(fn in [e[0] for e in entries] for entries in comparators._registry.values()):
        comparators.dispatch_for("schema", **kw)(fn)


@pytest.fixture
def entity_registry(alembic_comparators: Any) -> Iterator[None]:
    """alembic_utils, registered for this test only, with no entities left from another."""
    from alembic_utils.replaceable_entity import compare_registered_entities, registry

    ensure_registered(alembic_comparators, compare_registered_entities)
    registry.clear()
    yield
    registry.clear()


@pytest.fixture
def enum_extension(alembic_comparators: Any) -> None:
    """alembic-postgresql-enum, registered for this test only."""
    from alembic.util import DispatchPriority
    from alembic_postgresql_enum.compare_dispatch import compare_enums

    ensure_registered(alembic_comparators, compare_enums, priority=DispatchPriority.LAST)


async def autogenerate_both(
    projects: tuple[Path, Path], dbs: tuple[URL, URL], models: str, rev_id: str
) -> str:
    """Give both projects ``models``, autogenerate ``rev_id`` with each tool; return our upgrade().

    The two revisions must do the same (compared as ``ast.unparse`` writes them).
    """
    (theirs, ours), (theirs_db, ours_db) = projects, dbs
    for project in projects:
        (project.parent / "models.py").write_text(models, encoding="utf-8")
    written = run_alembic(theirs, theirs_db, "revision", "auto", autogenerate=True, rev_id=rev_id)
    script = await run_asyncmigrate(ours, ours_db, "revision", "auto", autogenerate=True, rev_id=rev_id)
    for function in ("upgrade", "downgrade"):
        assert body(script.path, function) == body(written.path, function)
    return str(script.path)


async def step_both(projects: tuple[Path, Path], dbs: tuple[URL, URL], *targets: str) -> None:
    """Move both databases through ``targets`` (``-name`` downgrades), comparing after each."""
    for target in targets:
        verb, target = ("downgrade", target[1:]) if target.startswith("-") else ("upgrade", target)
        run_alembic(projects[0], dbs[0], verb, target)
        await run_asyncmigrate(projects[1], dbs[1], verb, target)
        assert catalog(dbs[1]) == catalog(dbs[0]), f"after {verb} {target}"


ENTITY_MODELS = '''
import sqlalchemy as sa
from alembic_utils.pg_function import PGFunction
from alembic_utils.pg_trigger import PGTrigger
from alembic_utils.pg_view import PGView
from alembic_utils.replaceable_entity import register_entities, registry

metadata = sa.MetaData()
sa.Table(
    "account", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("updated", sa.DateTime),
)

touch = PGFunction(
    schema="public",
    signature="touch_account()",
    definition="RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated := now(); RETURN NEW; END; $$",
)
names = PGView(schema="public", signature="account_names", definition={view!r})
trigger = PGTrigger(
    schema="public",
    signature="account_touch",
    on_entity="public.account",
    definition="BEFORE UPDATE ON public.account FOR EACH ROW EXECUTE FUNCTION public.touch_account()",
)
entities = [touch, names, trigger]
{extra}
registry.clear()
register_entities(entities)
'''

ENTITY_REVISIONS = {
    "r1_entities.py": '''
        """account with a view, a function and a trigger

        Revision ID: r1
        """
        import sqlalchemy as sa
        from alembic import op
        from alembic_utils.pg_function import PGFunction
        from alembic_utils.pg_trigger import PGTrigger
        from alembic_utils.pg_view import PGView

        revision = "r1"
        down_revision = None

        touch = PGFunction(
            schema="public",
            signature="touch_account()",
            definition=(
                "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated := now(); RETURN NEW; END; $$"
            ),
        )
        names = PGView(schema="public", signature="account_names", definition="SELECT id, name FROM account")
        trigger = PGTrigger(
            schema="public",
            signature="account_touch",
            on_entity="public.account",
            definition="BEFORE UPDATE ON public.account FOR EACH ROW EXECUTE FUNCTION public.touch_account()",
        )


        def upgrade():
            op.create_table(
                "account",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("name", sa.String(50)),
                sa.Column("updated", sa.DateTime),
            )
            op.create_entity(touch)
            op.create_entity(names)
            op.create_entity(trigger)


        def downgrade():
            op.drop_entity(trigger)
            op.drop_entity(names)
            op.drop_entity(touch)
            op.drop_table("account")
    ''',
    "r2_view.py": '''
        """the view shows when a row changed

        Revision ID: r2
        """
        from alembic import op
        from alembic_utils.pg_view import PGView

        revision = "r2"
        down_revision = "r1"


        def upgrade():
            op.replace_entity(
                PGView(
                    schema="public",
                    signature="account_names",
                    definition="SELECT id, name, updated FROM account",
                )
            )


        def downgrade():
            op.replace_entity(
                PGView(schema="public", signature="account_names", definition="SELECT id, name FROM account")
            )
    ''',
}

V2_EXTRA = '''
double_it = PGFunction(
    schema="public",
    signature="double_it(x integer)",
    definition="RETURNS integer LANGUAGE sql AS $$ SELECT x * 2 $$",
)
entities.append(double_it)
'''


async def test_alembic_utils_entities_and_their_autogenerate(
    tmp_path: Path, two_pg_dbs: tuple[URL, URL], entity_registry: None
) -> None:
    theirs_db, ours_db = two_pg_dbs
    models_v1 = ENTITY_MODELS.format(view="SELECT id, name, updated FROM account", extra="")
    theirs = write_project(tmp_path / "alembic", models_v1, ENTITY_REVISIONS)
    ours = write_project(tmp_path / "ours", models_v1, ENTITY_REVISIONS)
    projects = (theirs, ours)

    await step_both(projects, two_pg_dbs, "head", "-r1", "head")
    expected = catalog(theirs_db)
    assert len(expected["views"]) == len(expected["functions"]) == len(expected["triggers"]) == 1

    # Autogenerate: the view's definition changes and a function is added.
    models_v2 = ENTITY_MODELS.format(view="SELECT id, upper(name) AS name FROM account", extra=V2_EXTRA)
    path = await autogenerate_both(projects, two_pg_dbs, models_v2, "r3")
    assert "op.replace_entity(" in body(path, "upgrade")
    assert "op.create_entity(" in body(path, "upgrade")

    await step_both(projects, two_pg_dbs, "head")
    assert len(catalog(ours_db)["functions"]) == 2
    # asyncmigrate also runs the revision Alembic wrote, down and up.
    (written,) = (theirs.parent / "migrations" / "versions").glob("r3_*.py")
    shutil.copy(written, path)
    await step_both(projects, two_pg_dbs, "-r2", "head")
    # The models and the database agree now, for both tools' comparison.
    run_alembic(theirs, theirs_db, "check")
    await run_asyncmigrate(ours, ours_db, "check")


ENUM_MODELS = '''
import alembic_postgresql_enum  # registers its comparator on Alembic's
import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table(
    "ticket", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", sa.Enum({labels}, name="ticket_status"), nullable=False, server_default="open"),
)
{extra}
'''

ENUM_REVISIONS = {
    "e1_ticket.py": '''
        """tickets with a status

        Revision ID: e1
        """
        import sqlalchemy as sa
        from alembic import op

        revision = "e1"
        down_revision = None


        def upgrade():
            op.create_table(
                "ticket",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column(
                    "status", sa.Enum("open", "closed", name="ticket_status"), nullable=False,
                    server_default="open",
                ),
            )
            op.execute("INSERT INTO ticket (status) VALUES ('open'), ('closed')")


        def downgrade():
            op.drop_table("ticket")
            op.execute("DROP TYPE ticket_status")
    ''',
}

NEW_TABLE = '''
sa.Table(
    "alert", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("level", sa.Enum("low", "high", name="alert_level")),
)
'''


async def test_alembic_postgresql_enum_autogenerate(
    tmp_path: Path, two_pg_dbs: tuple[URL, URL], enum_extension: None
) -> None:
    theirs_db, ours_db = two_pg_dbs
    models_v1 = ENUM_MODELS.format(labels='"open", "closed"', extra="")
    projects = (
        write_project(tmp_path / "alembic", models_v1, ENUM_REVISIONS),
        write_project(tmp_path / "ours", models_v1, ENUM_REVISIONS),
    )
    await step_both(projects, two_pg_dbs, "head")

    # A label added, and a new table with a new enum type.
    models_v2 = ENUM_MODELS.format(labels='"open", "closed", "pending"', extra=NEW_TABLE)
    path = await autogenerate_both(projects, two_pg_dbs, models_v2, "e2")
    assert "op.add_enum_value(" in body(path, "upgrade")
    assert "op.sync_enum_values(" in body(path, "downgrade")

    await step_both(projects, two_pg_dbs, "head", "-e1", "head")
    assert ("ticket_status", "open,closed,pending") in catalog(ours_db)["enums"]
    run_alembic(projects[0], theirs_db, "check")
    await run_asyncmigrate(projects[1], ours_db, "check")
