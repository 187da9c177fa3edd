"""A corpus of small migration projects, each the shape of a case teams meet, for the checks.

Written for asyncmigrate's tests (no third-party files): the shapes follow the
cases pytest-alembic's own examples exercise -- branches and merges, several
heads, data migrations that need rows (before and at a revision), downgrades
that raise ``NotImplementedError`` or fail, ``minimum_downgrade_revision``,
skipped revisions, models out of sync, models missing from the metadata,
no ``target_metadata`` at all. Every project has Alembic's generic (sync)
env.py, so Alembic, pytest-alembic and asyncmigrate all run it unchanged.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..project import Rev, make_project

ENV_PY = '''
from alembic import context
from sqlalchemy import engine_from_config, pool

{metadata_import}

config = context.config


def run_migrations_offline():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connectable = config.attributes.get("connection", None)
    if connectable is None:
        connectable = engine_from_config(
            config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool
        )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''


@dataclass
class Project:
    """One corpus project: its revisions, its models, its options, what it is about."""

    name: str
    about: str
    revisions: list[Rev]
    models: dict[str, str] = field(default_factory=dict)
    """Files of the models package ``<name>_models`` (relative path -> source); none: no metadata."""
    options: dict[str, Any] = field(default_factory=dict)
    """The options, in pytest-alembic's ``alembic_config`` form (MigrationTestOptions reads it too)."""
    expected_failures: frozenset[str] = frozenset()
    """Checks this project is built to fail (asyncmigrate's verdicts)."""
    known_differences: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Check -> (pytest-alembic's verdict, asyncmigrate's) where they differ on purpose."""

    @property
    def package(self) -> str:
        return f"corpus_{self.name}_models"

    def write(self, root: Path, url: str) -> Path:
        """Write the project under ``root``; return its alembic.ini."""
        if self.models:
            metadata_import = f"from {self.package} import target_metadata"
        else:
            metadata_import = "target_metadata = None"
        make_project(root, self.revisions, url=url, env_py=ENV_PY.format(metadata_import=metadata_import),
                     ini_extra="prepend_sys_path = %(here)s")
        for relative, source in self.models.items():
            path = root / self.package / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source), encoding="utf-8")
        return root / "alembic.ini"


def _table(name: str, *columns: str) -> str:
    body = "".join(f"    {c},\n" for c in columns)
    head = f'sa.Table(\n    "{name}", target_metadata,\n'
    return head + f'    sa.Column("id", sa.Integer, primary_key=True),\n{body})\n'


def _models(*tables: str) -> dict[str, str]:
    return {"__init__.py": "import sqlalchemy as sa\n\ntarget_metadata = sa.MetaData()\n" + "".join(tables)}


def create_table(rev: str, down: str, name: str, downgrade: str | None = None) -> Rev:
    """A revision creating table ``name`` (an id column); its downgrade drops it unless told otherwise."""
    return Rev(rev, down, f"op.create_table({name!r}, sa.Column('id', sa.Integer, primary_key=True))",
               downgrade if downgrade is not None else f"op.drop_table({name!r})")


CREATE_FOO = Rev("aaaa0001", None, """
    op.create_table("foo", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
""", "op.drop_table('foo')")
FOO = _table("foo", 'sa.Column("name", sa.String(50))')

BRANCH_WALK = {"downgrade_clean": ("failed", "passed")}

PROJECTS = [
    Project(
        "linear", "a linear history whose models match",
        [CREATE_FOO,
         Rev("bbbb0002", "aaaa0001", "op.add_column('foo', sa.Column('size', sa.Integer))",
             "op.drop_column('foo', 'size')"),
         Rev("cccc0003", "bbbb0002", "op.create_index('ix_foo_name', 'foo', ['name'])",
             "op.drop_index('ix_foo_name', 'foo')")],
        _models(_table("foo", 'sa.Column("name", sa.String(50))', 'sa.Column("size", sa.Integer)',
                       'sa.Index("ix_foo_name", "name")')),
    ),
    Project(
        "branched_merge", "two branches from one revision, merged again",
        [CREATE_FOO,
         create_table("bbbb0002", "aaaa0001", "bar"),
         create_table("cccc0003", "aaaa0001", "baz"),
         Rev("dddd0004", ("bbbb0002", "cccc0003"))],
        _models(FOO, _table("bar"), _table("baz")),
        # pytest-alembic walks siblings as if one followed the other: undoing cccc0003 it compares
        # with the schema before bbbb0002 and reports baz... as left by cccc0003's downgrade.
        known_differences=BRANCH_WALK,
    ),
    Project(
        "several_heads", "two branches never merged",
        [CREATE_FOO,
         create_table("bbbb0002", "aaaa0001", "bar"),
         create_table("cccc0003", "aaaa0001", "baz")],
        _models(FOO, _table("bar"), _table("baz")),
        expected_failures=frozenset({"single_head", "branches"}),
        known_differences=BRANCH_WALK,
    ),
    Project(
        "data_needs_rows", "a data migration that reads a row the test must seed before it",
        [CREATE_FOO,
         Rev("bbbb0002", "aaaa0001", """
            bind = op.get_bind()
            first = bind.execute(sa.text("SELECT name FROM foo ORDER BY id")).scalar_one()
            op.add_column("foo", sa.Column("label", sa.String(50)))
            op.execute(sa.text("UPDATE foo SET label = :label").bindparams(label=first.upper()))
         """, "op.drop_column('foo', 'label')")],
        _models(_table("foo", 'sa.Column("name", sa.String(50))', 'sa.Column("label", sa.String(50))')),
        options={"before_revision_data": {"bbbb0002": {"__tablename__": "foo", "id": 1, "name": "ada"}}},
        # It reads through the connection: there is no offline SQL for it.
        expected_failures=frozenset({"offline_sql"}),
    ),
    Project(
        "data_needs_rows_unseeded", "the same data migration with no rows seeded",
        [CREATE_FOO,
         Rev("bbbb0002", "aaaa0001", """
            bind = op.get_bind()
            first = bind.execute(sa.text("SELECT name FROM foo ORDER BY id")).scalar_one()
            op.add_column("foo", sa.Column("label", sa.String(50)))
         """, "op.drop_column('foo', 'label')")],
        _models(_table("foo", 'sa.Column("name", sa.String(50))', 'sa.Column("label", sa.String(50))')),
        expected_failures=frozenset({"upgrade", "stairway", "models", "downgrade_clean", "offline_sql"}),
    ),
    Project(
        "data_at_revision", "rows inserted at a revision feed the next data migration",
        [CREATE_FOO,
         Rev("bbbb0002", "aaaa0001", """
            op.create_table("bar", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("foo_id", sa.Integer, nullable=False))
            bind = op.get_bind()
            foo_id = bind.execute(sa.text("SELECT id FROM foo WHERE name = 'default'")).scalar_one()
            op.execute(sa.text("INSERT INTO bar (id, foo_id) VALUES (1, :f)").bindparams(f=foo_id))
         """, "op.drop_table('bar')")],
        _models(FOO, _table("bar", 'sa.Column("foo_id", sa.Integer, nullable=False)')),
        options={"at_revision_data": {"aaaa0001": [{"__tablename__": "foo", "id": 7, "name": "default"}]}},
        expected_failures=frozenset({"offline_sql"}),
    ),
    Project(
        "downgrade_not_implemented", "a downgrade that raises NotImplementedError (a warning)",
        [CREATE_FOO,
         Rev("bbbb0002", "aaaa0001", "op.add_column('foo', sa.Column('size', sa.Integer))",
             "raise NotImplementedError('irreversible')"),
         create_table("cccc0003", "bbbb0002", "bar")],
        _models(_table("foo", 'sa.Column("name", sa.String(50))', 'sa.Column("size", sa.Integer)'),
                _table("bar")),
    ),
    Project(
        "downgrade_fails", "a downgrade that drops what does not exist",
        [CREATE_FOO,
         create_table("bbbb0002", "aaaa0001", "bar", "op.drop_table('nonexistent')")],
        _models(FOO, _table("bar")),
        expected_failures=frozenset({"stairway", "downgrade_clean"}),
    ),
    Project(
        "minimum_downgrade", "a downgrade that fails, below the minimum downgrade revision",
        [CREATE_FOO,
         create_table("bbbb0002", "aaaa0001", "bar", "raise ValueError('no way back')"),
         Rev("cccc0003", "bbbb0002", "op.add_column('bar', sa.Column('size', sa.Integer))",
             "op.drop_column('bar', 'size')"),
         Rev("dddd0004", "cccc0003", "op.add_column('foo', sa.Column('size', sa.Integer))",
             "op.drop_column('foo', 'size')")],
        _models(_table("foo", 'sa.Column("name", sa.String(50))', 'sa.Column("size", sa.Integer)'),
                _table("bar", 'sa.Column("size", sa.Integer)')),
        options={"minimum_downgrade_revision": "bbbb0002"},
    ),
    Project(
        "skipped_revision", "a revision that cannot run here, skipped (stamped)",
        [CREATE_FOO,
         Rev("bbbb0002", "aaaa0001", "raise RuntimeError('needs the production extension')", "pass"),
         create_table("cccc0003", "bbbb0002", "bar")],
        _models(FOO, _table("bar")),
        options={"skip_revisions": ["bbbb0002"]},
        # Skipping is about running here; its offline SQL is still what production would get.
        expected_failures=frozenset({"offline_sql"}),
    ),
    Project(
        "models_out_of_sync", "models with a column no migration creates",
        [CREATE_FOO],
        _models(_table("foo", 'sa.Column("name", sa.String(50))', 'sa.Column("email", sa.String(200))')),
        expected_failures=frozenset({"models"}),
    ),
    Project(
        "downgrade_leaves_trace", "a downgrade that forgets an index",
        [CREATE_FOO,
         Rev("bbbb0002", "aaaa0001", "op.execute('CREATE INDEX IF NOT EXISTS ix_foo_name ON foo (name)')",
             "pass")],
        _models(_table("foo", 'sa.Column("name", sa.String(50))', 'sa.Index("ix_foo_name", "name")')),
        expected_failures=frozenset({"downgrade_clean"}),
    ),
    Project(
        "model_not_imported", "a models package whose __init__ does not import one of its modules",
        [CREATE_FOO,
         create_table("bbbb0002", "aaaa0001", "bar")],
        {
            "__init__.py": "from .base import target_metadata\nfrom . import foo\n",
            "base.py": "import sqlalchemy as sa\n\ntarget_metadata = sa.MetaData()\n",
            "foo.py": "import sqlalchemy as sa\nfrom .base import target_metadata\n\n" + FOO,
            "bar.py": "import sqlalchemy as sa\nfrom .base import target_metadata\n\n" + _table("bar"),
        },
        # Without bar, autogenerate sees the bar table as one to drop: both models checks fail.
        expected_failures=frozenset({"all_models_register", "models"}),
    ),
    Project(
        "models_all_imported", "a models package whose __init__ imports every module",
        [CREATE_FOO],
        {
            "__init__.py": "from .base import target_metadata\nfrom . import foo\n",
            "base.py": "import sqlalchemy as sa\n\ntarget_metadata = sa.MetaData()\n",
            "foo.py": "import sqlalchemy as sa\nfrom .base import target_metadata\n\n" + FOO,
        },
        # pytest-alembic takes every module that refers to the metadata for a package to import
        # in full and fails ("Invalid module name") on a plain module such as base.py.
        known_differences={"all_models_register": ("failed", "passed")},
    ),
    Project(
        "no_metadata", "an env.py without target_metadata",
        [CREATE_FOO],
        # Nothing to compare: asyncmigrate skips with the reason; pytest-alembic fails.
        known_differences={"models": ("failed", "skipped"), "all_models_register": ("failed", "skipped")},
    ),
]
