"""create account

Revision ID: 0001
"""
import sqlalchemy as sa

from asyncmigrate import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )
    # Every run of this migration leaves a row here: a test counts them.
    op.create_table("migration_runs", sa.Column("revision", sa.String(20)))
    op.execute("INSERT INTO migration_runs VALUES ('0001')")


def downgrade() -> None:
    op.drop_table("migration_runs")
    op.drop_table("account")
