"""Revision file checksums: what counts as a change, and what does not."""

from __future__ import annotations

from pathlib import Path

from asyncmigrate.script.checksum import file_checksum, source_checksum

SOURCE = '''"""add accounts

Revision ID: ae10
Revises:
Create Date: 2024-01-02 03:04:05.000000

"""
import sqlalchemy as sa
from alembic import op

revision = "ae10"
down_revision = None


def upgrade():
    op.create_table("account", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("account")
'''


def test_line_endings_and_trailing_whitespace_do_not_count() -> None:
    base = source_checksum(SOURCE)
    assert source_checksum(SOURCE.replace("\n", "\r\n")) == base
    assert source_checksum(SOURCE.replace("\n", "\r")) == base
    assert source_checksum(SOURCE.replace("\n", "   \n") + "\n\n") == base
    assert source_checksum("\ufeff" + SOURCE) == base


def test_the_docstring_header_does_not_count() -> None:
    base = source_checksum(SOURCE)
    assert source_checksum(SOURCE.replace("2024-01-02 03:04:05.000000", "2025-12-31 00:00:00")) == base
    assert source_checksum(SOURCE.replace("add accounts", "add the accounts table")) == base
    assert source_checksum(SOURCE.replace('"""add accounts', '# -*- coding: utf-8 -*-\n"""add')) != base


def test_code_edits_count() -> None:
    base = source_checksum(SOURCE)
    assert source_checksum(SOURCE.replace('"account"', '"accounts"')) != base
    assert source_checksum(SOURCE.replace("def downgrade():", "# note\ndef downgrade():")) != base
    assert source_checksum(SOURCE.replace('revision = "ae10"', 'revision = "ae11"')) != base
    assert len(base) == 64


def test_file_checksum_reads_bytes(tmp_path: Path) -> None:
    path = tmp_path / "ae10_add.py"
    path.write_bytes(SOURCE.replace("\n", "\r\n").encode())
    assert file_checksum(path) == source_checksum(SOURCE)


def test_no_docstring_and_broken_source() -> None:
    plain = "revision = 'x'\n"
    assert source_checksum(plain) != source_checksum("revision = 'y'\n")
    assert source_checksum("def (:\n") != source_checksum("def (:\n  '''")
