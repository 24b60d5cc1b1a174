"""The exchange's invariants, checked in SQL on the stored exchange.

Benchmarks, crash tests and users can run these against any bourse
database: cash and each symbol's shares are conserved (what is free plus
what open orders hold equals what was ever deposited), every order's
shares add up, and nothing is negative (the CHECK constraints already
refuse negatives; they are verified here too, in case of manual edits).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_CASH = text(
    "SELECT (SELECT coalesce(sum(balance), 0) FROM accounts) "
    "+ (SELECT coalesce(sum(open_shares * limit_price), 0) FROM orders WHERE amount > 0), "
    "(SELECT coalesce(sum(amount), 0) FROM deposits WHERE symbol IS NULL)"
)

_SHARES = text(
    "WITH held AS ("
    "  SELECT symbol, shares AS n FROM positions"
    "  UNION ALL SELECT symbol, open_shares FROM orders WHERE amount < 0),"
    " created AS (SELECT symbol, sum(amount) AS n FROM deposits"
    "  WHERE symbol IS NOT NULL GROUP BY symbol) "
    "SELECT s.symbol, coalesce((SELECT sum(n) FROM held WHERE held.symbol = s.symbol), 0), "
    "coalesce((SELECT n FROM created WHERE created.symbol = s.symbol), 0) "
    "FROM symbols s"
)

_ORDERS = text(
    "SELECT o.id, abs(o.amount), o.open_shares + o.canceled_shares "
    "+ coalesce((SELECT sum(e.shares) FROM executions e WHERE e.order_id = o.id), 0) "
    "FROM orders o "
    "WHERE abs(o.amount) <> o.open_shares + o.canceled_shares "
    "+ coalesce((SELECT sum(e.shares) FROM executions e WHERE e.order_id = o.id), 0) "
    "OR (o.open_shares > 0 AND o.canceled_shares > 0)"
)

_NEGATIVE = text(
    "SELECT 'account ' || id FROM accounts WHERE balance < 0 "
    "UNION ALL SELECT 'position ' || account_id || ' ' || symbol FROM positions WHERE shares < 0"
)


async def audit_database(database: AsyncEngine) -> list[str]:
    """Every invariant the stored exchange breaks, as sentences; [] if none."""
    problems: list[str] = []
    async with database.connect() as connection:
        await connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        held, deposited = (await connection.execute(_CASH)).one()
        if held != deposited:
            problems.append(f"cash: {held} free and held != {deposited} deposited")
        for symbol, shares, created in await connection.execute(_SHARES):
            if shares != created:
                problems.append(f"shares of {symbol}: {shares} held != {created} created")
        for order_id, size, accounted in await connection.execute(_ORDERS):
            problems.append(f"order {order_id}: {accounted} accounted for, size {size}")
        problems.extend(f"{row[0]} is negative" for row in await connection.execute(_NEGATIVE))
    return problems
