"""The relay's connections and its log outbox.

Revision ID: r0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_connections",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("side", sa.String(16), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("party_id", sa.String(128), nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("ended_us", sa.BigInteger, nullable=True),
        sa.Column("ended_normally", sa.Boolean, nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("bytes_from_side", sa.BigInteger, nullable=False),
        sa.Column("bytes_to_side", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_relay_connections_open", "relay_connections", ["ended_us"])
    op.create_table(
        "log_outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("log_key", sa.String(160), nullable=False, unique=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("acked_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_log_outbox_pending", "log_outbox", ["acked_us"])


def downgrade() -> None:
    op.drop_table("log_outbox")
    op.drop_table("relay_connections")
