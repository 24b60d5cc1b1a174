"""Market data: each symbol's last published sequence number.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "symbols",
        sa.Column("market_seq", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.create_check_constraint("market_seq_valid", "symbols", "market_seq >= 0")


def downgrade() -> None:
    op.drop_constraint("market_seq_valid", "symbols", type_="check")
    op.drop_column("symbols", "market_seq")
