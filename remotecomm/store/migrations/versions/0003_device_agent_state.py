"""What a device agent last said of itself: versions and app list.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("agent_version", sa.String(32), nullable=True))
        batch.add_column(sa.Column("envelope_version", sa.Integer, nullable=True))
        batch.add_column(sa.Column("apps", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("last_hello_us", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        for column in ("last_hello_us", "apps", "envelope_version", "agent_version"):
            batch.drop_column(column)
