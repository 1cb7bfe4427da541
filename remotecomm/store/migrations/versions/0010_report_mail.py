"""Reports by e-mail: each unit's recipients and schedules, and the mailings (an outbox).

A mailing is the report of one period for one unit, claimed once per
schedule and period (``uq_report_mailings_occurrence``), then sent and
retried until it is, or until its attempts run out.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_recipients",
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.unit_id"), primary_key=True),
        sa.Column("address", sa.String(254), primary_key=True),
        sa.Column("added_us", sa.BigInteger, nullable=False),
        sa.Column("added_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "report_schedules",
        sa.Column("schedule_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.unit_id"), nullable=False),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("weekday", sa.Integer, nullable=True),
        sa.Column("day_of_month", sa.Integer, nullable=True),
        sa.Column("at_time", sa.String(5), nullable=False),
        sa.Column("group_by", sa.String(16), nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.CheckConstraint("frequency IN ('daily', 'weekly', 'monthly')",
                           name="ck_report_schedules_frequency"),
    )
    op.create_index("ix_report_schedules_unit", "report_schedules", ["unit_id"])
    op.create_table(
        "report_mailings",
        sa.Column("mailing_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.unit_id"), nullable=False),
        sa.Column("schedule_id", sa.Integer, nullable=True),
        sa.Column("occurrence_us", sa.BigInteger, nullable=True),
        sa.Column("period_from_us", sa.BigInteger, nullable=False),
        sa.Column("period_to_us", sa.BigInteger, nullable=False),
        sa.Column("group_by", sa.String(16), nullable=True),
        sa.Column("requested_by", sa.String(128), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("sent_us", sa.BigInteger, nullable=True),
        sa.Column("recipients", sa.Text, nullable=True),
        sa.UniqueConstraint("schedule_id", "occurrence_us",
                            name="uq_report_mailings_occurrence"),
        sa.CheckConstraint("state IN ('queued', 'sending', 'sent', 'failed')",
                           name="ck_report_mailings_state"),
    )
    op.create_index("ix_report_mailings_due", "report_mailings", ["state", "next_attempt_us"])


def downgrade() -> None:
    op.drop_table("report_mailings")
    op.drop_table("report_schedules")
    op.drop_table("report_recipients")
