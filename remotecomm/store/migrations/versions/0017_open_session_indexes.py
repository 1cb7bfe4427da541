"""Indexes for the checks at every session request: a user's and a device's open sessions,
and a device and terminal's open session (they scanned every session of the device ever).

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_user_state", "sessions", ["user_id", "state"])
    op.create_index("ix_sessions_device_state", "sessions", ["device_id", "state"])
    op.drop_index("ix_sessions_device_terminal", table_name="sessions")
    op.create_index("ix_sessions_device_terminal", "sessions",
                    ["device_id", "terminal_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_sessions_device_terminal", table_name="sessions")
    op.create_index("ix_sessions_device_terminal", "sessions", ["device_id", "terminal_id"])
    op.drop_index("ix_sessions_device_state", table_name="sessions")
    op.drop_index("ix_sessions_user_state", table_name="sessions")
