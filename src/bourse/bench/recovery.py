"""How long the exchange takes to rebuild from the database, and its memory.

``python -m bourse.bench.recovery --orders 100000 --closed 1000000
--database-url URL`` fills an empty database with accounts, symbols, a
history of ``--closed`` closed orders (three pairs in four filled against
each other, the rest canceled) and ``--orders`` open orders after them
(buys below 100 and sells above, so none cross; half of them with a fill
in their history, a buy and a sell of one symbol at 75 each time, so that
executions come in pairs as the exchange writes them), then times loading
and rebuilding the exchange, as a restart does, checks the rebuilt books
hold every open order and nothing else, and reports the process's
resident memory: recovery reads the live state only, so time and memory
should follow the open orders, not the history.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]
import psycopg

from bourse.core.exchange import Exchange
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
  SELECT o, (1 + o %% %(accounts)s)::text, 'S' || ((o + 1) / 2 %% %(symbols)s),
         CASE WHEN o %% 2 = 1 THEN 10 ELSE -10 END, 100, 0,
         CASE WHEN (o - 1) %% 8 < 6 THEN 0 ELSE 10 END,
         CASE WHEN (o - 1) %% 8 < 6 THEN NULL ELSE now() END, now(), 1
  FROM generate_series(1, %(closed)s) o;
INSERT INTO executions (order_id, shares, price, executed_at, batch_id)
  SELECT id, 10, 100, now(), 1 FROM orders WHERE canceled_shares = 0 ORDER BY id;
INSERT INTO orders (id, account_id, symbol, amount, limit_price, open_shares,
                    canceled_shares, canceled_at, created_at, batch_id)
  SELECT %(closed)s + o, (1 + o %% %(accounts)s)::text, 'S' || (o / 4 %% %(symbols)s),
         CASE WHEN o %% 2 = 0 THEN 10 ELSE -10 END,
         CASE WHEN o %% 2 = 0 THEN 50 + (o %% 4000) / 100.0 ELSE 101 + (o %% 4000) / 100.0 END,
         CASE WHEN o %% 4 < 2 THEN 10 ELSE 7 END, 0, NULL, now(), 1
  FROM generate_series(1, %(orders)s) o;
INSERT INTO executions (order_id, shares, price, executed_at, batch_id)
  SELECT id, 3, 75, now(), 1 FROM orders WHERE open_shares = 7 ORDER BY id;
"""


@dataclass(frozen=True, slots=True)
class Recovery:
    """One measured rebuild."""

    seconds: float
    #: Resident memory of this process before loading and after the rebuild.
    rss_before: int
    rss_after: int

    def bytes_per_order(self, orders: int) -> float:
        """Resident memory the rebuild added, per open order."""
        return (self.rss_after - self.rss_before) / max(1, orders)


def fill(url: str, orders: int, closed: int, accounts: int, symbols: int) -> None:
    """Write the synthetic exchange (the schema must exist and be empty)."""
    sizes = {"orders": orders, "closed": closed, "accounts": accounts, "symbols": symbols}
    with psycopg.connect(url) as connection:
        for statement in _FILL.split(";"):
            if statement.strip():
                connection.execute(statement, sizes)
        connection.commit()
        connection.execute("ANALYZE")


def resident_bytes() -> int:
    """This process's resident memory now."""
    return int(psutil.Process().memory_info().rss)


async def time_recovery(
    url: str, orders: int, closed: int, accounts: int, symbols: int
) -> Recovery:
    """Load and rebuild the exchange; check what was rebuilt."""
    store = Store(url)
    try:
        await store.migrate()
        await asyncio.to_thread(fill, url, orders, closed, accounts, symbols)
        gc.collect()
        before = resident_bytes()
        started = time.perf_counter()
        exchange, _ = await store.load_exchange()
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    gc.collect()
    _check(exchange, orders, closed)
    return Recovery(seconds, before, resident_bytes())


def _check(exchange: Exchange, orders: int, closed: int) -> None:
    resting = sum(
        len(level) for book in exchange.books.values() for side in (book.bids, book.asks)
        for level in side.levels.values()
    )  # fmt: skip
    if resting != orders or len(exchange.orders) != orders:
        raise AssertionError(f"rebuilt {resting} resting orders of {orders}")
    if exchange.next_order_id != closed + orders + 1:
        raise AssertionError(f"next order id {exchange.next_order_id}, not {closed + orders + 1}")


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--orders", type=int, default=1_000_000, help="open orders")
    parser.add_argument("--closed", type=int, default=0, help="closed orders before them")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=10)
    args = parser.parse_args(argv)
    recovery = asyncio.run(
        time_recovery(args.database_url, args.orders, args.closed, args.accounts, args.symbols)
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"rebuilt {args.orders:,} open orders ({args.orders // 4 * 2:,} with a fill) "
        f"after {args.closed:,} closed ones in {recovery.seconds:.2f} s; "
        f"resident memory {recovery.rss_after / 2**20:,.0f} MiB "
        f"({recovery.rss_before / 2**20:,.0f} MiB before loading, "
        f"{recovery.bytes_per_order(args.orders):,.0f} bytes per open order); "
        f"peak {peak_mib:,.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
