"""Maintenance jobs, and the settings each device declares.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as table:
        table.add_column(sa.Column("settings", sa.Text, nullable=False, server_default="[]"))
        table.add_column(sa.Column("settings_version", sa.Integer, nullable=True))
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("setting_key", sa.String(40), nullable=True),
        sa.Column("setting_value", sa.String(200), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("wait_until_us", sa.BigInteger, nullable=True),
        sa.Column("sent_us", sa.BigInteger, nullable=True),
        sa.Column("answer_deadline_us", sa.BigInteger, nullable=True),
        sa.Column("finished_us", sa.BigInteger, nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("result", sa.Text, nullable=True),
    )
    op.create_index("ix_jobs_unit_created", "jobs", ["unit_id", "created_us"])
    op.create_index("ix_jobs_device_state", "jobs", ["device_id", "state"])
    op.create_index("ix_jobs_state", "jobs", ["state"])


def downgrade() -> None:
    op.drop_table("jobs")
    with op.batch_alter_table("devices") as table:
        table.drop_column("settings_version")
        table.drop_column("settings")
