"""Several relays: a node's capacity and when a draining node reported itself empty; per
side, who wrote its end log (the relay, or the manager on a lost relay's behalf) and the
relay's own end log if it arrived after the manager wrote one.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("relay_nodes", sa.Column("capacity", sa.Integer, nullable=True))
    op.add_column("relay_nodes", sa.Column("emptied_us", sa.BigInteger, nullable=True))
    op.add_column("session_connections", sa.Column("ended_by", sa.String(16), nullable=True))
    op.add_column("session_connections",
                  sa.Column("late_log_key", sa.String(128), nullable=True))
    op.add_column("session_connections", sa.Column("late_ended_us", sa.BigInteger,
                                                   nullable=True))
    op.add_column("session_connections", sa.Column("late_end_reason", sa.String(32),
                                                   nullable=True))
    op.add_column("session_connections", sa.Column("late_bytes_from_side", sa.BigInteger,
                                                   nullable=True))
    op.add_column("session_connections", sa.Column("late_bytes_to_side", sa.BigInteger,
                                                   nullable=True))


def downgrade() -> None:
    for column in ("late_bytes_to_side", "late_bytes_from_side", "late_end_reason",
                   "late_ended_us", "late_log_key", "ended_by"):
        with op.batch_alter_table("session_connections") as batch:
            batch.drop_column(column)
    for column in ("emptied_us", "capacity"):
        with op.batch_alter_table("relay_nodes") as batch:
            batch.drop_column(column)
