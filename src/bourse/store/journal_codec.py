"""A batch's change set as the text of one journal row.

The journal row is on the critical path (no reply leaves before it has
committed), so its encoding must cost the engine little, and PostgreSQL
must be able to read it on its own: the projection into the documented
tables is one SQL statement over journal rows (``projection.py``), with no
per-row work in the engine process. So the row is JSON, one array per
table and one array per row, in the column order below; money and share
counts are JSON strings holding the exact decimal (a JSON number would go
through binary floating point in many readers), times are Unix seconds.

``v`` is the layout's version: the projection reads only rows of its own
version, and refuses to go on past one it cannot read.
"""

from __future__ import annotations

import json

from bourse.core.changes import ChangeSet

#: Bumped when the layout changes; the projection reads this version only.
VERSION = 1

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode(changes: ChangeSet) -> str:
    """The change set as a journal row (what the batch wrote, not its
    market update). Keys: ``s`` symbols ``[symbol, market_seq]`` (0 for a
    new symbol with no message yet), ``a`` accounts ``[id, balance]``,
    ``p`` positions ``[account, symbol, shares]``, ``o`` orders ``[id,
    account, symbol, amount, limit, open, canceled, canceled_at,
    created_at]``, ``e`` executions ``[order, shares, price, time]`` and
    ``d`` deposits ``[account, symbol, amount, time]``, each in the order
    the batch made them."""
    symbols = dict.fromkeys(changes.symbols, 0)
    symbols.update((row.symbol, row.seq) for row in changes.sequences)
    return _dumps(
        {
            "v": VERSION,
            "s": list(symbols.items()),
            "a": [(r.account_id, str(r.balance)) for r in changes.accounts],
            "p": [(r.account_id, r.symbol, str(r.shares)) for r in changes.positions],
            "o": [
                (
                    r.order_id,
                    r.account_id,
                    r.symbol,
                    str(r.amount),
                    str(r.limit_price),
                    str(r.open_shares),
                    str(r.canceled_shares),
                    r.canceled_at,
                    r.created_at,
                )
                for r in changes.orders
            ],
            "e": [
                (r.order_id, str(r.execution.shares), str(r.execution.price), r.execution.time)
                for r in changes.executions
            ],
            "d": [(r.account_id, r.symbol, str(r.amount), r.time) for r in changes.deposits],
        }
    )
