"""Failed logins in the store, so that the throttle survives restarts and is shared by every
manager.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("failure_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_login_failures_account", "login_failures", ["account", "at_us"])
    op.create_index("ix_login_failures_address", "login_failures", ["address", "at_us"])


def downgrade() -> None:
    op.drop_table("login_failures")
