"""Units, users, memberships, terminals, API tokens, devices and the audit table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.user_id"), primary_key=True),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.unit_id"), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("role IN ('technician', 'unit-admin')", name="ck_memberships_role"),
    )
    op.create_table(
        "terminals",
        sa.Column("terminal_id", sa.String(64), primary_key=True),
        sa.Column("registered_us", sa.BigInteger, nullable=False),
        sa.Column("last_login_us", sa.BigInteger, nullable=False),
        sa.Column("last_user_id", sa.String(128), sa.ForeignKey("users.user_id"), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.user_id"), nullable=False),
        sa.Column("terminal_id", sa.String(64), sa.ForeignKey("terminals.terminal_id"),
                  nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
        sa.Column("source_address", sa.String(64), nullable=True),
    )
    op.create_index("ix_api_tokens_user", "api_tokens", ["user_id"])
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.unit_id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("last_seen_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_devices_unit", "devices", ["unit_id"])
    op.create_table(
        "audit",
        sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("source_address", sa.String(64), nullable=True),
        sa.Column("unit_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at_us"])
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_append_only_{action.lower()} BEFORE {action} ON audit "
                f"BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END")


def downgrade() -> None:
    for table in ("audit", "devices", "api_tokens", "terminals", "memberships", "users", "units"):
        op.drop_table(table)
