"""Revision headers are read without importing the file."""

from __future__ import annotations

import pytest

from asyncmigrate.exceptions import RevisionFileError
from asyncmigrate.script.headers import parse_header


def test_alembic_generated_file() -> None:
    source = '''"""add account

Revision ID: ae1027a6acf
Revises: 1975ea83b712
Create Date: 2024-01-01 00:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "ae1027a6acf"
down_revision: Union[str, Sequence[str], None] = "1975ea83b712"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    revision = "not-this-one"
'''
    header = parse_header(source)
    assert header.revision == "ae1027a6acf"
    assert header.down_revision == "1975ea83b712"
    assert header.branch_labels is None
    assert header.depends_on is None
    assert header.doc.startswith("add account\n\nRevision ID: ae1027a6acf")
    assert not header.needs_import


def test_tuples_across_lines_and_comments() -> None:
    source = '''revision = 'v3.0.0.c'  # release
down_revision = (
    'kilo',
    '059',
)
branch_labels = ('feature',)
depends_on = ['x1', 'y2']
'''
    header = parse_header(source)
    assert header.revision == "v3.0.0.c"
    assert header.down_revision == ("kilo", "059")
    assert header.branch_labels == ("feature",)
    assert header.depends_on == ("x1", "y2")
    assert header.doc == ""


def test_docstring_mentioning_assignments_is_ignored() -> None:
    source = '''"""
revision = 'fake'
"""
revision = 'real'
down_revision = None
'''
    assert parse_header(source).revision == "real"


def test_computed_value_needs_import() -> None:
    source = "PREFIX = 'a'\nrevision = PREFIX + 'b'\ndown_revision = None\n"
    assert parse_header(source).needs_import


def test_value_on_the_same_line_as_another_statement_falls_back_to_ast() -> None:
    source = "revision = 'a'; x = 1\ndown_revision = None\n"
    header = parse_header(source)
    assert header.revision == "a"
    assert not header.needs_import


def test_syntax_error_in_header_region_is_reported() -> None:
    source = "revision = 'a'\ndown_revision = (\ndef oops(:\n"
    with pytest.raises(RevisionFileError, match="invalid Python syntax"):
        parse_header(source, "bad.py")


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(RevisionFileError, match="down_revision"):
        parse_header("revision = 'a'\ndown_revision = 5\n", "bad.py")
    with pytest.raises(RevisionFileError, match="'revision' must be a string"):
        parse_header("revision = 7\n", "bad.py")


def test_no_revision_variable() -> None:
    assert parse_header("down_revision = None\n").revision is None
