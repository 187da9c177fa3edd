"""autogenerate writes what the lint rules find in a new revision as comments, and the file still runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from asyncmigrate import command

from ..autogenerate.support import project, sync_connection


def account(*extra: sa.SchemaItem) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("account", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("name", sa.String(50)), *extra)
    return metadata


@pytest.mark.postgresql
async def test_generated_revision_carries_lint_comments(pg_db: URL, tmp_path: Path) -> None:
    with sync_connection(pg_db) as conn:
        account().create_all(conn)
        conn.commit()
    wanted = account(sa.Index("ix_account_name", "name"))
    sa.Table("invoice", wanted, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("at", sa.DateTime, index=True))
    config = project(tmp_path / "p", pg_db, wanted)
    script = await command.revision(config, "index names", autogenerate=True)
    assert not isinstance(script, list)
    text = Path(script.path).read_text()
    upgrade = text.split("def upgrade()")[1].split("def downgrade()")[0]
    downgrade = text.split("def downgrade()")[1]
    # The index on the existing table is flagged; the new table's index is not.
    assert "# asyncmigrate lint: error AM101 create-index-non-concurrently: CREATE INDEX ix_account_name" \
        in " ".join(line.strip() for line in upgrade.splitlines())
    assert "ix_invoice_at" not in upgrade.split("# ### commands")[0]
    assert "#   instead: Build it concurrently" in upgrade
    assert "AM102" in downgrade  # dropping the index again takes ACCESS EXCLUSIVE
    joined = " ".join(line.strip(" #") for line in downgrade.splitlines())
    assert joined.count("ACCESS EXCLUSIVE on account") == 1, downgrade  # said once, not repeated
    await command.upgrade(config, "head")  # comments only: the file runs as generated
    await command.downgrade(config, "base")
