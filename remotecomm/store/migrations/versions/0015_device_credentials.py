"""Devices count their XMPP credential rotations.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("credentials_version", sa.Integer, nullable=False,
                                       server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("devices") as table:
        table.drop_column("credentials_version")
