"""The record's sources in full: relay errors per side, the device's firmware and errors
(and an end and bytes it may not know), asks for missing device reports, and scheduled runs.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_connections") as table:
        table.add_column(sa.Column("refused_frames", sa.Integer, nullable=True))
        table.add_column(sa.Column("end_detail", sa.String(200), nullable=True))
    with op.batch_alter_table("session_device_reports") as table:
        table.add_column(sa.Column("firmware_version", sa.String(64), nullable=True))
        table.add_column(sa.Column("errors", sa.Integer, nullable=True))
        table.alter_column("ended_us", existing_type=sa.BigInteger, nullable=True)
        table.alter_column("end_code", existing_type=sa.Integer, nullable=True)
        table.alter_column("bytes_to_device", existing_type=sa.BigInteger, nullable=True)
        table.alter_column("bytes_from_device", existing_type=sa.BigInteger, nullable=True)
    with op.batch_alter_table("sessions") as table:
        table.add_column(sa.Column("device_report_asks", sa.Integer, nullable=False,
                                   server_default="0"))
        table.add_column(sa.Column("device_report_asked_us", sa.BigInteger, nullable=True))
    with op.batch_alter_table("devices") as table:
        table.add_column(sa.Column("firmware_version", sa.String(64), nullable=True))
    op.create_table(
        "scheduled_runs",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("period_start_us", sa.BigInteger, primary_key=True),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("finished_us", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("scheduled_runs")
    with op.batch_alter_table("devices") as table:
        table.drop_column("firmware_version")
    with op.batch_alter_table("sessions") as table:
        table.drop_column("device_report_asked_us")
        table.drop_column("device_report_asks")
    with op.batch_alter_table("session_device_reports") as table:
        table.alter_column("bytes_from_device", existing_type=sa.BigInteger, nullable=False)
        table.alter_column("bytes_to_device", existing_type=sa.BigInteger, nullable=False)
        table.alter_column("end_code", existing_type=sa.Integer, nullable=False)
        table.alter_column("ended_us", existing_type=sa.BigInteger, nullable=False)
        table.drop_column("errors")
        table.drop_column("firmware_version")
    with op.batch_alter_table("session_connections") as table:
        table.drop_column("end_detail")
        table.drop_column("refused_frames")
