"""What a device reported of a session (S313): pushed when its side ends.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_device_reports",
        sa.Column("request_id", sa.String(64), sa.ForeignKey("sessions.request_id"),
                  primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("app_version", sa.String(64), nullable=True),
        sa.Column("agent_version", sa.String(32), nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("ended_us", sa.BigInteger, nullable=False),
        sa.Column("end_code", sa.Integer, nullable=False),
        sa.Column("end_reason", sa.String(200), nullable=False),
        sa.Column("bytes_to_device", sa.BigInteger, nullable=False),
        sa.Column("bytes_from_device", sa.BigInteger, nullable=False),
        sa.Column("reported_us", sa.BigInteger, nullable=False),
        sa.Column("received_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("session_device_reports")
