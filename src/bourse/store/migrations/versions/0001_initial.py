"""The initial schema: accounts, symbols, positions, orders, executions, deposits, batches.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _money(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Numeric, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column(
            "committed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text, primary_key=True),
        _money("balance"),
        sa.CheckConstraint("balance >= 0 AND balance <> 'NaN'", name="balance_valid"),
    )
    op.create_table("symbols", sa.Column("symbol", sa.Text, primary_key=True))
    op.create_table(
        "positions",
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("symbol", sa.Text, sa.ForeignKey("symbols.symbol"), nullable=False),
        _money("shares"),
        sa.PrimaryKeyConstraint("account_id", "symbol"),
        sa.CheckConstraint("shares >= 0 AND shares <> 'NaN'", name="shares_valid"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("symbol", sa.Text, sa.ForeignKey("symbols.symbol"), nullable=False),
        _money("amount"),
        _money("limit_price"),
        _money("open_shares"),
        _money("canceled_shares"),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount <> 0 AND amount <> 'NaN'", name="amount_valid"),
        sa.CheckConstraint("limit_price > 0 AND limit_price <> 'NaN'", name="limit_price_valid"),
        sa.CheckConstraint("open_shares >= 0 AND open_shares <> 'NaN'", name="open_shares_valid"),
        sa.CheckConstraint(
            "canceled_shares >= 0 AND canceled_shares <> 'NaN'", name="canceled_shares_valid"
        ),
        sa.CheckConstraint("open_shares = 0 OR canceled_shares = 0", name="open_or_canceled"),
    )
    op.create_index("orders_by_account", "orders", ["account_id"])
    op.create_table(
        "executions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("order_id", sa.BigInteger, sa.ForeignKey("orders.id"), nullable=False),
        _money("shares"),
        _money("price"),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.CheckConstraint("shares > 0 AND shares <> 'NaN'", name="execution_shares_valid"),
        sa.CheckConstraint("price > 0 AND price <> 'NaN'", name="execution_price_valid"),
    )
    op.create_index("executions_by_order", "executions", ["order_id", "id"])
    op.create_table(
        "deposits",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("symbol", sa.Text, sa.ForeignKey("symbols.symbol"), nullable=True),
        _money("amount"),
        sa.Column("deposited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount >= 0 AND amount <> 'NaN'", name="deposit_amount_valid"),
    )


def downgrade() -> None:
    op.drop_table("deposits")
    op.drop_table("executions")
    op.drop_table("orders")
    op.drop_table("positions")
    op.drop_table("symbols")
    op.drop_table("accounts")
    op.drop_table("batches")
