"""An index of the open orders, which are all that recovery reads of the orders.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Recovery reads the open orders only, in id order; with most orders
    # closed, this partial index keeps that read proportional to them.
    op.execute("CREATE INDEX orders_open ON orders (id) WHERE open_shares > 0")


def downgrade() -> None:
    op.execute("DROP INDEX orders_open")
