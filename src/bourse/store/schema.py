"""The database tables: the documented interface users query with SQL.

Names and meanings follow DESIGN.md §3 and stay stable; columns may be
added. Money and share counts are ``NUMERIC`` (exact, unbounded), with
``CHECK`` constraints that also refuse ``'NaN'``: PostgreSQL orders NaN
above every number, so ``balance >= 0`` alone would let it in. Times are
UTC ``timestamptz``. ``deposits`` records every cash balance an account was
created with (``symbol`` NULL) and every block of shares a ``<create>``
placed, so the conservation of cash and shares can be checked in SQL. The
tables are created and changed only by the Alembic migrations in
``migrations/``; this module describes them for queries.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("balance", Numeric, nullable=False),
    CheckConstraint("balance >= 0 AND balance <> 'NaN'", name="balance_valid"),
)

symbols = Table(
    "symbols",
    metadata,
    Column("symbol", Text, primary_key=True),
)

positions = Table(
    "positions",
    metadata,
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("symbol", Text, ForeignKey("symbols.symbol"), nullable=False),
    Column("shares", Numeric, nullable=False),
    PrimaryKeyConstraint("account_id", "symbol"),
    CheckConstraint("shares >= 0 AND shares <> 'NaN'", name="shares_valid"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("symbol", Text, ForeignKey("symbols.symbol"), nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("limit_price", Numeric, nullable=False),
    Column("open_shares", Numeric, nullable=False),
    Column("canceled_shares", Numeric, nullable=False),
    Column("canceled_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("batch_id", BigInteger, ForeignKey("batches.id"), nullable=False),
    CheckConstraint("amount <> 0 AND amount <> 'NaN'", name="amount_valid"),
    CheckConstraint("limit_price > 0 AND limit_price <> 'NaN'", name="limit_price_valid"),
    CheckConstraint("open_shares >= 0 AND open_shares <> 'NaN'", name="open_shares_valid"),
    CheckConstraint(
        "canceled_shares >= 0 AND canceled_shares <> 'NaN'", name="canceled_shares_valid"
    ),
    CheckConstraint("open_shares = 0 OR canceled_shares = 0", name="open_or_canceled"),
)

executions = Table(
    "executions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("order_id", BigInteger, ForeignKey("orders.id"), nullable=False),
    Column("shares", Numeric, nullable=False),
    Column("price", Numeric, nullable=False),
    Column("executed_at", DateTime(timezone=True), nullable=False),
    Column("batch_id", BigInteger, ForeignKey("batches.id"), nullable=False),
    CheckConstraint("shares > 0 AND shares <> 'NaN'", name="execution_shares_valid"),
    CheckConstraint("price > 0 AND price <> 'NaN'", name="execution_price_valid"),
)

deposits = Table(
    "deposits",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("symbol", Text, ForeignKey("symbols.symbol"), nullable=True),
    Column("amount", Numeric, nullable=False),
    Column("deposited_at", DateTime(timezone=True), nullable=False),
    Column("batch_id", BigInteger, ForeignKey("batches.id"), nullable=False),
    CheckConstraint("amount >= 0 AND amount <> 'NaN'", name="deposit_amount_valid"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("requests", Integer, nullable=False),
    Column("committed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
