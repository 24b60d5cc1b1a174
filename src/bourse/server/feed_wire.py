"""The feed's wire format: the JSON of every message, and the client's ops.

Prices and shares are JSON strings in the canonical decimal form of the
XML replies (``format_decimal``: no exponent, no trailing zeros), so no
client ever rounds them through a float. Texts are compact ASCII JSON, so
a text's length is its size in bytes, which is what the subscribers'
backlog counts. ``docs/market-data.md`` is the reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bourse.core.market import (
    Level,
    MarketMessage,
    OrderEvent,
    Standing,
    SymbolState,
    Trade,
)
from bourse.core.mirror import MarketMirror
from bourse.core.money import format_decimal

#: Recent trades a WebSocket snapshot carries (``/api/trades`` has more).
SNAPSHOT_TRADES = 100
MARKET_CHANNELS = frozenset({"book", "trades"})
CHANNELS = MARKET_CHANNELS | {"orders"}


def encode(value: object) -> str:
    """Compact ASCII JSON: its length is its size in bytes."""
    return json.dumps(value, separators=(",", ":"))


def levels_json(levels: Iterable[Level]) -> list[list[str]]:
    """``[[price, shares], …]`` as decimal strings."""
    return [[format_decimal(level.price), format_decimal(level.shares)] for level in levels]


def trade_json(trade: Trade) -> dict[str, Any]:
    """A trade as listed in snapshots and ``/api/trades``."""
    return {
        "seq": trade.seq,
        "price": format_decimal(trade.price),
        "shares": format_decimal(trade.shares),
        "time": trade.time,
    }


def book_json(state: SymbolState) -> dict[str, Any]:
    """The body of ``/api/book/{symbol}``."""
    return {
        "symbol": state.symbol,
        "seq": state.seq,
        "bids": levels_json(state.bids),
        "asks": levels_json(state.asks),
    }


def snapshot_text(state: SymbolState) -> str:
    """Message ``snapshot``: the whole book and the latest trades."""
    trades = [trade_json(trade) for trade in state.trades[-SNAPSHOT_TRADES:]]
    return encode({"type": "snapshot", **book_json(state), "trades": trades})


def message_text(message: MarketMessage, committed: float) -> str:
    """Message ``trade`` or ``book``; ``committed`` is when its batch
    committed (epoch seconds, to the microsecond).

    These two are the feed's bulk, written once per update in every
    process that serves subscribers, so they are formatted directly rather
    than through ``json.dumps``: every value is a number, a side, a symbol
    (ASCII letters and digits) or a canonical decimal, none of which JSON
    escapes, and the text is exactly what ``encode`` would give (tested)."""
    when = repr(round(committed, 6))
    if isinstance(message, Trade):
        return (
            f'{{"type":"trade","symbol":"{message.symbol}","seq":{message.seq},'
            f'"price":"{format_decimal(message.price)}",'
            f'"shares":"{format_decimal(message.shares)}",'
            f'"time":{message.time},"committed":{when}}}'
        )
    changes = ",".join(
        f'["{level.side}","{format_decimal(level.price)}","{format_decimal(level.shares)}"]'
        for level in message.changes
    )
    return (
        f'{{"type":"book","symbol":"{message.symbol}","seq":{message.seq},'
        f'"changes":[{changes}],"committed":{when}}}'
    )


def order_text(event: OrderEvent, committed: float) -> str:
    """Message ``order`` of the private channel."""
    return encode(
        {
            "type": "order",
            "account": event.account_id,
            "id": event.order_id,
            "symbol": event.symbol,
            "event": event.kind,
            "amount": format_decimal(event.amount),
            "limit": format_decimal(event.limit),
            "shares": format_decimal(event.shares),
            "price": format_decimal(event.price),
            "open": format_decimal(event.open_shares),
            "time": event.time,
            "committed": round(committed, 6),
        }
    )


def error_text(message: str) -> str:
    """Message ``error``."""
    return encode({"type": "error", "message": message})


def symbols_json(mirror: MarketMirror) -> list[dict[str, Any]]:
    """The body of ``/api/symbols``."""
    return [
        {
            "symbol": summary.symbol,
            "last": _optional_decimal(summary.last_price),
            "bid": _optional_decimal(summary.best_bid),
            "ask": _optional_decimal(summary.best_ask),
            "seq": mirror.seq(summary.symbol),
        }
        for summary in mirror.symbols()
    ]


def _optional_decimal(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def standings_json(standings: Iterable[Standing]) -> list[dict[str, Any]]:
    """The body of ``/api/leaderboard``: ranked as given, from 1."""
    return [
        {
            "rank": rank,
            "account": standing.account_id,
            "cash": format_decimal(standing.cash),
            "value": format_decimal(standing.value),
        }
        for rank, standing in enumerate(standings, start=1)
    ]


class OpError(ValueError):
    """A client message the feed cannot act on; its text is sent back."""


@dataclass(frozen=True, slots=True)
class Op:
    """A client's ``subscribe`` or ``unsubscribe``."""

    kind: str
    symbols: tuple[str, ...]
    channels: frozenset[str]
    account: str | None
    token: str | None


def parse_op(text: str) -> Op:
    """The op in ``text``; ``OpError`` says what is wrong with it."""
    try:
        value = json.loads(text)
    except ValueError:
        raise OpError("malformed JSON") from None
    if not isinstance(value, dict):
        raise OpError("expected a JSON object")
    kind = value.get("op")
    if kind not in {"subscribe", "unsubscribe"}:
        raise OpError("unknown op: expected 'subscribe' or 'unsubscribe'")
    channels = frozenset(_strings(value, "channels", ("book", "trades")))
    unknown = sorted(channels - CHANNELS)
    if unknown or not channels:
        raise OpError(f"unknown channel: {', '.join(unknown) or 'none given'}")
    symbols = tuple(_strings(value, "symbols", ()))
    if symbols and not channels & MARKET_CHANNELS:
        raise OpError("symbols need the 'book' or 'trades' channel")
    account, token = _optional_string(value, "account"), _optional_string(value, "token")
    if "orders" in channels and account is None:
        raise OpError("the 'orders' channel needs an 'account'")
    return Op(kind, symbols, channels, account, token)


def _strings(value: dict[str, Any], key: str, default: tuple[str, ...]) -> list[str]:
    items = value.get(key, list(default))
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise OpError(f"'{key}' must be a list of strings")
    return items


def _optional_string(value: dict[str, Any], key: str) -> str | None:
    item = value.get(key)
    if item is not None and not isinstance(item, str):
        raise OpError(f"'{key}' must be a string")
    return item


def op_json(op: Op) -> dict[str, Any]:
    """What a ``subscribed``/``unsubscribed`` reply repeats of the op."""
    reply: dict[str, Any] = {"symbols": list(op.symbols), "channels": sorted(op.channels)}
    if op.account is not None:
        reply["account"] = op.account
    return reply
