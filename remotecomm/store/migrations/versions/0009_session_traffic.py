"""What reports add up, on the session row: when it counts, how long it ran, bytes each way.

``counted_at_us`` is the instant a session counts at in reports: when its
first side joined the relay, or when it was requested if no side ever did.
``started_us``/``duration_us`` and the byte counts (the relay's, for the
device's side) are copied from the connection records as the relay's logs
are filed; ``device_reported`` is set when the device's report is kept.
Existing rows are filled in.  One index covers every column a report reads,
so a report scans the index alone.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

REPORT_INDEX = ["unit_id", "counted_at_us", "state", "end_reason", "device_id", "app_id",
                "user_id", "duration_us", "bytes_to_device", "bytes_from_device",
                "device_notified_us", "device_reported"]


def upgrade() -> None:
    with op.batch_alter_table("sessions") as table:
        table.add_column(sa.Column("counted_at_us", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("started_us", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("duration_us", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("bytes_to_device", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("bytes_from_device", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("device_reported", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    op.execute("""
        UPDATE sessions SET device_reported = TRUE WHERE EXISTS (
            SELECT 1 FROM session_device_reports r WHERE r.request_id = sessions.request_id)""")
    op.execute("""
        UPDATE sessions SET started_us = (
            SELECT MIN(c.started_us) FROM session_connections c
            WHERE c.request_id = sessions.request_id)""")
    op.execute("""
        UPDATE sessions SET duration_us = (
            SELECT MAX(c.ended_us) - sessions.started_us FROM session_connections c
            WHERE c.request_id = sessions.request_id)
        WHERE started_us IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM session_connections c
            WHERE c.request_id = sessions.request_id AND c.ended_us IS NULL)""")
    op.execute("""
        UPDATE sessions SET
            bytes_to_device = (SELECT c.bytes_to_side FROM session_connections c
                               WHERE c.request_id = sessions.request_id
                               AND c.side = 'device' AND c.ended_us IS NOT NULL),
            bytes_from_device = (SELECT c.bytes_from_side FROM session_connections c
                                 WHERE c.request_id = sessions.request_id
                                 AND c.side = 'device' AND c.ended_us IS NOT NULL)""")
    op.execute("UPDATE sessions SET counted_at_us = COALESCE(started_us, requested_us)")
    with op.batch_alter_table("sessions") as table:
        table.alter_column("counted_at_us", existing_type=sa.BigInteger, nullable=False)
        table.create_index("ix_sessions_report", REPORT_INDEX)


def downgrade() -> None:
    with op.batch_alter_table("sessions") as table:
        table.drop_index("ix_sessions_report")
        for column in ("device_reported", "bytes_from_device", "bytes_to_device", "duration_us", "started_us",
                       "counted_at_us"):
            table.drop_column(column)
