"""Sessions and their per-side connection records.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("terminal_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("relay_node", sa.String(200), nullable=True),
        sa.Column("session_id", sa.String(64), nullable=True, unique=True),
        sa.Column("device_token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("terminal_token_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("terminal_token_delivered", sa.Boolean, nullable=False),
        sa.Column("approver", sa.String(200), nullable=True),
        sa.Column("approved_by_test_approver", sa.Boolean, nullable=False),
        sa.Column("requested_us", sa.BigInteger, nullable=False),
        sa.Column("approval_deadline_us", sa.BigInteger, nullable=True),
        sa.Column("decided_us", sa.BigInteger, nullable=True),
        sa.Column("join_deadline_us", sa.BigInteger, nullable=True),
        sa.Column("lifetime_deadline_us", sa.BigInteger, nullable=True),
        sa.Column("idle_timeout_us", sa.BigInteger, nullable=True),
        sa.Column("ended_us", sa.BigInteger, nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
    )
    op.create_index("ix_sessions_device_terminal", "sessions", ["device_id", "terminal_id"])
    op.create_index("ix_sessions_unit_requested", "sessions", ["unit_id", "requested_us"])
    op.create_table(
        "session_connections",
        sa.Column("request_id", sa.String(64), sa.ForeignKey("sessions.request_id"),
                  primary_key=True),
        sa.Column("side", sa.String(16), primary_key=True),
        sa.Column("party_id", sa.String(128), nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=True),
        sa.Column("ended_us", sa.BigInteger, nullable=True),
        sa.Column("ended_normally", sa.Boolean, nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("bytes_from_side", sa.BigInteger, nullable=False),
        sa.Column("bytes_to_side", sa.BigInteger, nullable=False),
        sa.Column("started_log_key", sa.String(128), nullable=True, unique=True),
        sa.Column("ended_log_key", sa.String(128), nullable=True, unique=True),
        sa.CheckConstraint("side IN ('device', 'terminal')", name="ck_session_connections_side"),
    )


def downgrade() -> None:
    op.drop_table("session_connections")
    op.drop_table("sessions")
