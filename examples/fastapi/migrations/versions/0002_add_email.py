"""add email

Revision ID: 0002
"""
import sqlalchemy as sa

from asyncmigrate import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("account", sa.Column("email", sa.String(200)))
    op.execute("INSERT INTO migration_runs VALUES ('0002')")


def downgrade() -> None:
    op.drop_column("account", "email")
