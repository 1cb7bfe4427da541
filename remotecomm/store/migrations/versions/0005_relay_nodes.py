"""The relay nodes the manager knows: where they are, whether they are alive, their load.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_nodes",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("api_url", sa.String(300), nullable=False),
        sa.Column("public_url", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("registered_us", sa.BigInteger, nullable=False),
        sa.Column("last_heartbeat_us", sa.BigInteger, nullable=False),
        sa.Column("open_sessions", sa.Integer, nullable=False),
        sa.Column("lost_us", sa.BigInteger, nullable=True),
        sa.CheckConstraint("state IN ('active', 'draining', 'lost')",
                           name="ck_relay_nodes_state"),
    )
    op.create_index("ix_sessions_relay_node_state", "sessions", ["relay_node", "state"])


def downgrade() -> None:
    op.drop_index("ix_sessions_relay_node_state", "sessions")
    op.drop_table("relay_nodes")
