"""Logs the manager rejected for good, with its reason: kept, never resent, never blocking.

Revision ID: r0002
Revises: r0001
"""

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("log_key", sa.String(160), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("dead_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
