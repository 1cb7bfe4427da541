"""Session delivery details: the relay URL, when the device was told, why it ended.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("relay_url", sa.String(300), nullable=True))
        batch.add_column(sa.Column("device_notified_us", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("end_detail", sa.String(200), nullable=True))
    op.create_index("ix_sessions_state", "sessions", ["state"])


def downgrade() -> None:
    op.drop_index("ix_sessions_state", "sessions")
    with op.batch_alter_table("sessions") as batch:
        for column in ("end_detail", "device_notified_us", "relay_url"):
            batch.drop_column(column)
