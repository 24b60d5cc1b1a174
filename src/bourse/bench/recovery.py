"""How long the exchange takes to rebuild from the database.

``python -m bourse.bench.recovery --orders 1000000 --database-url URL``
fills an empty database with accounts, symbols and that many open orders
(buys below 100 and sells above, so none cross; half of them with a fill
in their history), then times loading and rebuilding the exchange, as a
restart does, and checks the rebuilt books hold every order.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time

import psycopg

from bourse.store.store import Store

_FILL = """
INSERT INTO batches (id, requests) VALUES (1, 1);
INSERT INTO symbols SELECT 'S' || s FROM generate_series(0, %(symbols)s - 1) s;
INSERT INTO accounts SELECT a::text, 1000000 FROM generate_series(1, %(accounts)s) a;
INSERT INTO deposits (account_id, symbol, amount, deposited_at, batch_id)
  SELECT id, NULL, balance, now(), 1 FROM accounts;
INSERT INTO positions SELECT a.id, s.symbol, 1000000 FROM accounts a, symbols s;
INSERT INTO deposits (account_id, symbol, amount, deposited_at, batch_id)
  SELECT account_id, symbol, shares, now(), 1 FROM positions;
INSERT INTO orders (id, account_id, symbol, amount, limit_price, open_shares,
                    canceled_shares, canceled_at, created_at, batch_id)
  SELECT o, (1 + o %% %(accounts)s)::text, 'S' || (o %% %(symbols)s),
         CASE WHEN o %% 2 = 0 THEN 10 ELSE -10 END,
         CASE WHEN o %% 2 = 0 THEN 50 + (o %% 4000) / 100.0 ELSE 101 + (o %% 4000) / 100.0 END,
         CASE WHEN o %% 4 < 2 THEN 10 ELSE 7 END, 0, NULL, now(), 1
  FROM generate_series(1, %(orders)s) o;
INSERT INTO executions (order_id, shares, price, executed_at, batch_id)
  SELECT id, 3, limit_price, now(), 1 FROM orders WHERE open_shares = 7;
"""


def fill(url: str, orders: int, accounts: int, symbols: int) -> None:
    """Write the synthetic exchange (the schema must exist and be empty)."""
    with psycopg.connect(url) as connection:
        sizes = {"orders": orders, "accounts": accounts, "symbols": symbols}
        for statement in _FILL.split(";"):
            if statement.strip():
                connection.execute(statement, sizes)
        connection.execute("ANALYZE")


async def time_recovery(url: str, orders: int, accounts: int, symbols: int) -> float:
    """Seconds to load and rebuild the exchange; checks what was rebuilt."""
    store = Store(url)
    try:
        await store.migrate()
        await asyncio.to_thread(fill, url, orders, accounts, symbols)
        started = time.perf_counter()
        exchange, _ = await store.load_exchange()
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    resting = sum(
        len(level) for book in exchange.books.values() for side in (book.bids, book.asks)
        for level in side.levels.values()
    )  # fmt: skip
    if resting != orders or len(exchange.orders) != orders:
        raise AssertionError(f"rebuilt {resting} resting orders of {orders}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=10)
    args = parser.parse_args(argv)
    seconds = asyncio.run(
        time_recovery(args.database_url, args.orders, args.accounts, args.symbols)
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"rebuilt {args.orders:,} open orders ({args.orders // 4 * 2:,} with a fill) "
        f"in {seconds:.1f} s; peak memory {peak_mib:,.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
