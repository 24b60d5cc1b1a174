"""Random request streams: the engine must answer exactly like the naive
reference exchange, and every invariant must hold after every request."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.core.audit import audit
from bourse.core.commands import (
    CreateCommand,
    CreateRequest,
    Rejected,
    Request,
    TransactionCommand,
    TransactionsRequest,
)
from bourse.core.errors import ErrorCode
from bourse.core.exchange import Exchange
from tests.builders import account, cancel, order, query, shares
from tests.property.reference import NaiveExchange

ACCOUNTS = ["1", "2", "3", "4"]
SYMBOLS = ["A", "B"]

account_ids = st.sampled_from([*ACCOUNTS, "9"])
symbols = st.sampled_from([*SYMBOLS, "Z"])
sizes = st.sampled_from(["1", "2", "3", "5", "10", "0.5", "2.25"])
prices = st.sampled_from(["1", "1.5", "2", "2.5", "3", "4", "0.01"])
order_ids = st.integers(min_value=1, max_value=40)


@st.composite
def create_commands(draw: st.DrawFn) -> CreateCommand:
    kind = draw(st.sampled_from(["account", "shares", "rejected"]))
    if kind == "account":
        return account(draw(account_ids), draw(st.sampled_from(["0", "10", "100", "55.5"])))
    if kind == "shares":
        return shares(draw(symbols), draw(account_ids), draw(sizes))
    return Rejected(ErrorCode.INVALID_BALANCE, (("id", "x"),))


@st.composite
def transaction_commands(draw: st.DrawFn) -> TransactionCommand:
    kind = draw(st.sampled_from(["buy", "sell", "buy", "sell", "query", "cancel", "rejected"]))
    if kind == "buy":
        return order(draw(symbols), draw(sizes), draw(prices))
    if kind == "sell":
        return order(draw(symbols), "-" + draw(sizes), draw(prices))
    if kind == "query":
        return query(draw(order_ids))
    if kind == "cancel":
        return cancel(draw(order_ids))
    return Rejected(ErrorCode.INVALID_AMOUNT, (("sym", "A"), ("amount", "0"), ("limit", "1")))


requests: st.SearchStrategy[Request] = st.one_of(
    st.builds(lambda c: CreateRequest(tuple(c)), st.lists(create_commands(), max_size=4)),
    st.builds(
        TransactionsRequest,
        account_ids,
        st.lists(transaction_commands(), min_size=1, max_size=4).map(tuple),
    ),
)

SEED = CreateRequest(
    tuple(account(a, "100") for a in ACCOUNTS)
    + tuple(shares(s, a, "20") for s in SYMBOLS for a in ACCOUNTS)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(requests, max_size=60))
def test_engine_matches_reference_and_keeps_invariants(stream: list[Request]) -> None:
    engine, reference = Exchange(), NaiveExchange()
    for now, request in enumerate([SEED, *stream]):
        assert engine.apply(request, now) == reference.apply(request, now)
        assert audit(engine) == []
    for account_id, balance in reference.balances.items():
        assert engine.ledger.accounts[account_id].balance == balance
    for (account_id, symbol), held in reference.positions.items():
        assert engine.ledger.accounts[account_id].positions[symbol] == held


@settings(max_examples=100, deadline=None)
@given(st.lists(requests, max_size=40))
def test_change_sets_replay_to_the_same_state(stream: list[Request]) -> None:
    """Rows cut after each request, applied in order, end at the engine's
    own final state: nothing changed goes unrecorded."""
    engine = Exchange()
    balances: dict[str, Decimal] = {}
    positions: dict[tuple[str, str], Decimal] = {}
    open_shares: dict[int, Decimal] = {}
    executions: dict[int, int] = {}
    for now, request in enumerate([SEED, *stream]):
        engine.apply(request, now)
        changes = engine.take_changes()
        balances.update((row.account_id, row.balance) for row in changes.accounts)
        positions.update(((r.account_id, r.symbol), r.shares) for r in changes.positions)
        open_shares.update((row.order_id, row.open_shares) for row in changes.orders)
        for row in changes.executions:
            executions[row.order_id] = executions.get(row.order_id, 0) + 1
    accounts = engine.ledger.accounts
    assert balances == {a: accounts[a].balance for a in accounts}
    assert positions == {(a, s): n for a in accounts for s, n in accounts[a].positions.items()}
    assert open_shares == {o.order_id: o.open_shares for o in engine.orders.values()}
    assert executions == {
        o.order_id: len(o.executions) for o in engine.orders.values() if o.executions
    }
