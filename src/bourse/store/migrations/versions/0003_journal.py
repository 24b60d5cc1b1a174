"""The journal (one compact row per committed batch) and the projection watermark.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("batch_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column(
            "committed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("changes", sa.JSON, nullable=False),
    )
    # Kept out of line and uncompressed: compressing a large batch's row
    # would cost the commit that replies wait for.
    op.execute("ALTER TABLE journal ALTER COLUMN changes SET STORAGE EXTERNAL")
    op.create_table(
        "projection",
        sa.Column("only", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('"only"', name="one_watermark"),
    )
    op.execute(
        "INSERT INTO projection (batch_id, committed_at) "
        "SELECT coalesce(max(id), 0), max(committed_at) FROM batches"
    )


def downgrade() -> None:
    op.drop_table("projection")
    op.drop_table("journal")
