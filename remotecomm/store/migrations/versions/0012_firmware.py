"""Firmware images, and each firmware job's download reference and progress.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "firmware_images",
        sa.Column("image_id", sa.String(64), primary_key=True),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.String(128), nullable=False),
        sa.Column("uploaded_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_firmware_images_unit", "firmware_images", ["unit_id", "uploaded_us"])
    with op.batch_alter_table("jobs") as table:
        table.add_column(sa.Column("image_id", sa.String(64), nullable=True))
        table.add_column(sa.Column("download_token_sha256", sa.String(64), nullable=True))
        table.add_column(sa.Column("download_expires_us", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("downloaded_us", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("progress_phase", sa.String(16), nullable=True))
        table.add_column(sa.Column("progress_percent", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as table:
        for column in ("progress_percent", "progress_phase", "downloaded_us",
                       "download_expires_us", "download_token_sha256", "image_id"):
            table.drop_column(column)
    op.drop_table("firmware_images")
