"""What the terminal says of itself with a session request: client and OS.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = ("client_name", "client_version", "os_name", "os_version")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
