"""A project whose revisions call a helper module that says ``from alembic import op, context``.

The shape of pytest-alembic's examples and of packages shipping Alembic
histories: ``<package>/helpers.py`` next to env.py, imported by revision
files through ``prepend_sys_path``. env.py is Alembic's ``generic`` one
(minus its logging set-up), so both tools run the same files.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..project import TEMPLATES

HELPERS = '''
import os

import sqlalchemy as sa
from alembic import context, op

#: Callables a test puts here run at the next checkpoint() (then are forgotten).
HOOKS = []


def create_account():
    op.create_table(
        "account",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )


def checkpoint():
    while HOOKS:
        HOOKS.pop()()


def record_owner(table):
    """Insert the name of the database this migration runs on."""
    database = os.path.basename(op.get_bind().engine.url.database)
    op.execute(sa.text(f"INSERT INTO {table} (name) VALUES (:name)").bindparams(name=database))


def add_audit_column(table):
    user = context.config.get_main_option("audit_user")
    op.add_column(table, sa.Column("created_by", sa.String(50), server_default=user))
'''

ENV_PY = '''
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config


def run_migrations_online():
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
'''

REVISIONS = {
    "r1_account.py": '''
"""account, through the helper module

Revision ID: r1
"""
from alembic import op

from {package} import helpers

revision = "r1"
down_revision = None


def upgrade():
    helpers.create_account()
    helpers.checkpoint()
    helpers.record_owner("account")


def downgrade():
    op.drop_table("account")
''',
    "r2_audit.py": '''
"""audit column, through the helper module

Revision ID: r2
"""
from alembic import op

from {package} import helpers

revision = "r2"
down_revision = "r1"


def upgrade():
    helpers.add_audit_column("account")


def downgrade():
    with op.batch_alter_table("account") as batch:
        batch.drop_column("created_by")
''',
}


def write(root: Path, url: str, package: str) -> Path:
    """Write the project under ``root`` (migrations in ``root/package``); return its alembic.ini."""
    migrations = root / package
    (migrations / "versions").mkdir(parents=True)
    shutil.copy(TEMPLATES / "async" / "script.py.mako", migrations / "script.py.mako")
    (migrations / "env.py").write_text(textwrap.dedent(ENV_PY), encoding="utf-8")
    (migrations / "helpers.py").write_text(HELPERS, encoding="utf-8")
    for name, text in REVISIONS.items():
        (migrations / "versions" / name).write_text(text.format(package=package), encoding="utf-8")
    ini = root / "alembic.ini"
    ini.write_text(
        "[alembic]\n"
        f"script_location = %(here)s/{package}\n"
        "prepend_sys_path = %(here)s\n"
        "path_separator = os\n"
        f"sqlalchemy.url = {url}\n"
        "audit_user = auditor\n",
        encoding="utf-8",
    )
    return ini


@contextmanager
def helper_project(root: Path, url: str) -> Iterator[tuple[Path, str]]:
    """Write a project with a uniquely named package; forget its modules and path afterwards."""
    package = f"migrations_{uuid.uuid4().hex[:8]}"
    saved_path = list(sys.path)
    try:
        yield write(root, url, package), package
    finally:
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
