"""env.py files written by ``alembic init`` run unchanged, in the caller's event loop."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from asyncmigrate import Config, command
from asyncmigrate.exceptions import ConnectionFailedError, ScriptError

from .. import backends
from ..project import Rev, write_revisions
from .test_run import LINEAR, tables_and_versions

ALEMBIC_TEMPLATES = ["generic", "async", "pyproject", "pyproject_async"]


def alembic_init(root: Path, template: str, url: str) -> Config:
    """Run the real ``alembic init`` and point its ini at ``url``."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "alembic", "init", "-t", template, "migrations"],
        cwd=root, check=True, capture_output=True,
    )
    ini = root / "alembic.ini"
    text = ini.read_text(encoding="utf-8")
    ini.write_text(
        text.replace("driver://user:pass@localhost/dbname", url.replace("%", "%%")),
        encoding="utf-8",
    )
    write_revisions(root / "migrations" / "versions", LINEAR)
    toml = root / "pyproject.toml"
    return Config(str(ini), toml_file=str(toml) if toml.exists() else None)


@pytest.mark.parametrize("template", ALEMBIC_TEMPLATES)
async def test_alembic_templates_run_unchanged(tmp_path: Path, template: str) -> None:
    db = tmp_path / "app.db"
    # A sync-style URL, as an Alembic project has it: asyncmigrate maps it to aiosqlite.
    config = alembic_init(tmp_path, template, f"sqlite:///{db}")
    result = await command.upgrade(config, "head")
    assert result.to_heads == ("c3",)
    assert await tables_and_versions(backends.sqlite_url(db)) == ({"t1", "t2", "t3"}, {"c3"})
    await command.downgrade(config, "base")
    assert await tables_and_versions(backends.sqlite_url(db)) == (set(), set())


async def test_env_py_logging_leaves_the_host_loggers_enabled(tmp_path: Path) -> None:
    """An app migrating at start-up keeps its own loggers after env.py's ``fileConfig``."""
    host = logging.getLogger(f"host_app_{tmp_path.name}")
    assert not host.disabled
    config = alembic_init(tmp_path, "generic", f"sqlite:///{tmp_path / 'app.db'}")
    await command.upgrade(config, "head")
    assert not host.disabled
    # The ini's own logger settings still apply.
    assert logging.getLogger("alembic").level == logging.INFO


@pytest.mark.parametrize("template", ["generic", "async"])
async def test_alembic_templates_on_postgresql(tmp_path: Path, pg_db: URL, template: str) -> None:
    sync_url = pg_db.set(drivername="postgresql").render_as_string(hide_password=False)
    config = alembic_init(tmp_path, template, sync_url)
    await command.upgrade(config, "head")
    assert await tables_and_versions(pg_db) == ({"t1", "t2", "t3"}, {"c3"})


@pytest.mark.parametrize("template", ["generic", "async"])
async def test_env_py_does_not_block_the_loop(tmp_path: Path, pg_db: URL, template: str) -> None:
    """While a migration waits on the server, other tasks keep running."""
    sync_url = pg_db.set(drivername="postgresql").render_as_string(hide_password=False)
    config = alembic_init(tmp_path, template, sync_url)
    write_revisions(
        tmp_path / "migrations" / "versions",
        [Rev("d4", "c3", "op.execute('SELECT pg_sleep(0.5)')")],
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await command.upgrade(config, "head")
    elapsed = time.perf_counter() - started
    task.cancel()
    assert elapsed >= 0.5
    # A blocked loop would tick about once; a free one ticks every 10 ms.
    assert ticks > elapsed / 0.01 * 0.5


USUAL_EDITS = '''
import os
from logging.config import fileConfig

from sqlalchemy import engine_from_config, pool, MetaData, Table, Column, Integer, String

from alembic import context

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

# URL from an environment variable, set in env.py as many projects do.
config.set_main_option("sqlalchemy.url", os.environ["ENVPY_TEST_DB_URL"])

naming = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "pk": "pk_%(table_name)s"}
target_metadata = MetaData(naming_convention=naming)
Table("model_table", target_metadata, Column("id", Integer, primary_key=True), Column("n", String(10)))


def include_object(obj, name, type_, reflected, compare_to):
    return not name.startswith("tmp_")


def run_migrations_online():
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations(tag_seen=context.get_tag_argument())


run_migrations_online()
'''


async def test_env_py_with_usual_edits(
    tmp_path: Path, sqlite_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = alembic_init(tmp_path, "generic", "driver://unused")
    (tmp_path / "migrations" / "env.py").write_text(USUAL_EDITS, encoding="utf-8")
    write_revisions(tmp_path / "migrations" / "versions", [Rev("d4", "c3", """
        ctx = op.get_context()
        assert ctx.opts["render_as_batch"] is True
        assert ctx.opts["target_metadata"].naming_convention["pk"] == "pk_%(table_name)s"
        assert ctx.opts["include_object"](None, "tmp_x", "table", True, None) is False
        op.execute("CREATE TABLE d4 (id INTEGER)")
    """)])
    # The revision functions receive run_migrations(**kw) arguments, as in Alembic.
    for path in (tmp_path / "migrations" / "versions").glob("*.py"):
        path.write_text(
            path.read_text().replace("def upgrade():", "def upgrade(**kw):"), encoding="utf-8"
        )
    monkeypatch.setenv("ENVPY_TEST_DB_URL", sqlite_db.set(drivername="sqlite").render_as_string())
    await command.upgrade(config, "head", tag="t1")
    assert await tables_and_versions(sqlite_db) == ({"t1", "t2", "t3", "d4"}, {"d4"})


async def test_env_py_syntax_error_is_one_clear_error(tmp_path: Path) -> None:
    config = alembic_init(tmp_path, "generic", "sqlite:///x.db")
    (tmp_path / "migrations" / "env.py").write_text("def broken(:\n", encoding="utf-8")
    with pytest.raises(ScriptError, match=r"env\.py: invalid Python syntax at line 1"):
        await command.upgrade(config, "head")


async def test_revision_file_syntax_error_is_reported_when_it_runs(tmp_path: Path, sqlite_db: URL) -> None:
    config = alembic_init(tmp_path, "async", sqlite_db.render_as_string())
    path = next((tmp_path / "migrations" / "versions").glob("b2_*.py"))
    path.write_text(path.read_text().replace("def upgrade():", "def upgrade(:"), encoding="utf-8")
    # Reading heads does not import the file.
    assert [s.revision for s in await command.heads(config)] == ["c3"]
    with pytest.raises(ScriptError, match=r"b2_rev\.py: invalid Python syntax"):
        await command.upgrade(config, "head")
    # Nothing ran: the broken file is imported before the first step.
    assert await tables_and_versions(sqlite_db) == (set(), set())


async def test_unreachable_server_is_one_line_without_password(tmp_path: Path) -> None:
    config = alembic_init(tmp_path, "async", "postgresql://app:hunter2@127.0.0.1:1/nowhere")
    with pytest.raises(ConnectionFailedError) as info:
        await command.upgrade(config, "head")
    message = str(info.value)
    assert "hunter2" not in message
    assert "\n" not in message
    assert message.startswith("Cannot connect to postgresql+asyncpg://app:***@127.0.0.1:1/nowhere")


async def test_wrong_password_is_one_line_without_password(tmp_path: Path) -> None:
    backends.require("mysql")
    base = backends.server_url("mysql")
    url = base.set(username="asyncmigrate_nobody", password="hunter2")
    config = alembic_init(tmp_path, "async", url.render_as_string(hide_password=False))
    with pytest.raises(ConnectionFailedError) as info:
        await command.upgrade(config, "head")
    assert "hunter2" not in str(info.value)
    assert "Access denied" in str(info.value)


async def test_bad_url_is_a_config_error(tmp_path: Path) -> None:
    from asyncmigrate.exceptions import ConfigError

    config = alembic_init(tmp_path, "async", "nosuchdb+nodriver://u:hunter2@h/db")
    with pytest.raises(ConfigError) as info:
        await command.upgrade(config, "head")
    assert "hunter2" not in str(info.value)


LATIN1_REVISION = """# -*- coding: latin-1 -*-
\"\"\"d4: caf\xe9 table (a latin-1 comment: \xe9t\xe9)

Revision ID: d4
\"\"\"
from alembic import op

revision = "d4"
down_revision = "c3"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE t4 (id INTEGER PRIMARY KEY)")  # caf\xe9


def downgrade():
    op.execute("DROP TABLE t4")
"""

BOM_REVISION = """\ufeff\"\"\"e5: a UTF-8 file with a byte-order mark \u2014 na\u00efve

Revision ID: e5
\"\"\"
from alembic import op

revision = "e5"
down_revision = "d4"


def upgrade():
    op.execute("CREATE TABLE t5 (id INTEGER PRIMARY KEY)")


def downgrade():
    op.execute("DROP TABLE t5")
"""


async def test_source_files_are_decoded_as_python_decodes_them(tmp_path: Path) -> None:
    """A coding line (latin-1) or a BOM in env.py and revision files: Python and Alembic run them."""
    config = alembic_init(tmp_path, "generic", f"sqlite:///{tmp_path / 'app.db'}")
    migrations = tmp_path / "migrations"
    env_py = migrations / "env.py"
    env_py.write_bytes(
        b"# -*- coding: latin-1 -*-\n# env.py for the caf\xe9\n" + env_py.read_bytes()
    )
    (migrations / "versions" / "d4_cafe.py").write_bytes(LATIN1_REVISION.encode("latin-1"))
    (migrations / "versions" / "e5_bom.py").write_bytes(BOM_REVISION.encode("utf-8"))

    alembic = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=tmp_path, capture_output=True, text=True
    )
    assert alembic.returncode == 0, alembic.stderr
    expected = await tables_and_versions(backends.sqlite_url(tmp_path / "app.db"))
    await command.downgrade(config, "base")  # also proves asyncmigrate reads the files
    await command.upgrade(config, "head")
    assert await tables_and_versions(backends.sqlite_url(tmp_path / "app.db")) == expected
    assert expected == ({"t1", "t2", "t3", "t4", "t5"}, {"e5"})
    history = await command.history(config)
    assert [script.doc for script, _ in history][:2] == [
        "e5: a UTF-8 file with a byte-order mark \u2014 na\u00efve",
        "d4: caf\xe9 table (a latin-1 comment: \xe9t\xe9)",
    ]
