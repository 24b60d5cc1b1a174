"""The journal row's encoding and the projection's merging of batches.

Change sets come from the real engine on random request streams: a batch
must come back from its journal bytes exactly, and any grouping of
consecutive batches into windows must write the same tables as the
batches one by one (checked by rebuilding the exchange from the merged
rows: its state digest is the engine's).
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.core.changes import ChangeSet, OrderRow
from bourse.core.commands import Request
from bourse.core.digest import state_digest
from bourse.core.exchange import Exchange
from bourse.core.restore import restore_exchange
from bourse.store.coalesce import coalesce, windows
from bourse.store.journal_codec import JournalFormatError, decode, encode
from tests.builders import account, create, order, shares, transactions
from tests.property.test_engine_properties import SEED, requests


def cut_batches(stream: list[Request], group: int) -> tuple[Exchange, list[tuple[int, ChangeSet]]]:
    """The engine after ``stream``, and its change sets cut every ``group`` requests."""
    engine = Exchange()
    batches: list[tuple[int, ChangeSet]] = []
    chunks: list[list[Request]] = [[SEED]]
    chunks += (stream[i : i + group] for i in range(0, len(stream), group))
    for now, chunk in enumerate(chunks):
        for request in chunk:
            engine.apply(request, now)
        batches.append((len(batches) + 1, engine.take_changes()))
    return engine, batches


def rows(changes: ChangeSet) -> tuple[object, ...]:
    """Every table's rows (not the market update, which is not journaled)."""
    return (
        list(changes.symbols),
        list(changes.accounts),
        list(changes.positions),
        list(changes.orders),
        list(changes.executions),
        list(changes.deposits),
        list(changes.sequences),
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(requests, max_size=40), st.integers(min_value=1, max_value=6))
def test_a_batch_comes_back_from_its_journal_row(stream: list[Request], group: int) -> None:
    _, batches = cut_batches(stream, group)
    for _, changes in batches:
        assert rows(decode(encode(changes))) == rows(changes)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(requests, max_size=40),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=60),
)
def test_any_windows_rebuild_the_engine(stream: list[Request], group: int, bound: int) -> None:
    """Merging all batches at once, or window by window and then the
    windows again, gives the rows that rebuild the engine's very state."""
    engine, batches = cut_batches(stream, group)
    whole = coalesce(batches)
    assert state_digest(restore_exchange(whole.changes)) == state_digest(engine)
    merged_windows = list(enumerate((w.changes for w in windows(batches, bound)), 1))
    again = coalesce(merged_windows)
    assert rows(again.changes)[:4] == rows(whole.changes)[:4]
    assert again.changes.executions == whole.changes.executions
    assert (whole.first, whole.last) == (1, len(batches))


def test_each_row_keeps_the_batch_that_made_it() -> None:
    engine = Exchange()
    engine.apply(create(account("1", "100"), account("2", "0"), shares("S", "2", "10")), 1)
    first = engine.take_changes()
    engine.apply(transactions("2", order("S", "-4", "5")), 2)
    second = engine.take_changes()
    engine.apply(transactions("1", order("S", "4", "5")), 3)
    third = engine.take_changes()
    window = coalesce([(7, first), (8, second), (9, third)])
    assert [row.order_id for row in window.changes.orders] == [1, 2]
    assert window.order_batches == [8, 9]
    assert [row.open_shares for row in window.changes.orders] == [0, 0]
    assert window.execution_batches == [9, 9]
    assert window.deposit_batches == [7, 7, 7]
    assert (window.first, window.last) == (7, 9)


def test_windows_close_at_the_row_bound() -> None:
    _, batches = cut_batches([transactions("1", order("A", "1", "1"))] * 6, 1)
    sizes = [changes.row_count() for _, changes in batches]
    grouped = list(windows(batches, max_rows=sizes[1] * 2))
    assert [(w.first, w.last) for w in grouped] == [(1, 1), (2, 3), (4, 5), (6, 7)]


def test_batches_must_follow_each_other() -> None:
    _, batches = cut_batches([], 1)
    with pytest.raises(ValueError, match="does not follow"):
        coalesce([(1, batches[0][1]), (3, batches[0][1])])


def forged(payload: object) -> bytes:
    return pickle.dumps(payload)


@pytest.mark.parametrize(
    "data",
    [
        forged((1, (), [], [], [OrderedDict()], [], [], [])),
        forged(OrderRow(1, "1", "S", Decimal(1), Decimal(1), Decimal(1), Decimal(0), None, 1)),
        b"not a pickle",
        forged((2, (), [], [], [], [], [], [])),
        forged((1, ())),
    ],
    ids=["a foreign class", "a bourse class", "garbage", "another version", "a short row"],
)
def test_a_forged_or_foreign_row_is_refused(data: bytes) -> None:
    with pytest.raises(JournalFormatError):
        decode(data)
