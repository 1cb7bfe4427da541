"""Provider admins: users who administer every unit (their role needs no membership).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of "users" would break the memberships' foreign keys.
    op.add_column("users", sa.Column("provider_admin", sa.Boolean, nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.drop_column("provider_admin")
