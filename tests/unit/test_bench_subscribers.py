"""The bench's subscriber bookkeeping: gaps, fresh snapshots, delays, frames
of one message or an array (the same answers either way), and subscribe
ops the server accepts."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bourse.bench.feed_tally import Arrivals, Frame, Tally, read_frame
from bourse.bench.feed_watch import feed_lines
from bourse.bench.subscribers import MAX_OP_BYTES, FeedResult, subscribe_ops


def _snapshot(symbol: str, seq: int) -> dict[str, object]:
    return {"type": "snapshot", "symbol": symbol, "seq": seq, "bids": [], "asks": []}


def _book(symbol: str, seq: int, committed: float | None = 100.0) -> dict[str, object]:
    message: dict[str, object] = {"type": "book", "symbol": symbol, "seq": seq, "changes": []}
    if committed is not None:
        message["committed"] = committed
    return message


def _take(tally: Tally, arrivals: Arrivals, *messages: object, now: float = 100.0) -> None:
    """Each message in a frame of its own."""
    for message in messages:
        frame = read_frame(json.dumps(message))
        tally.apply(frame)
        arrivals.record(frame, now)


def _take_together(tally: Tally, arrivals: Arrivals, *messages: object) -> None:
    """All messages in one frame (a JSON array)."""
    frame = read_frame(json.dumps(messages))
    tally.apply(frame)
    arrivals.record(frame, 100.0)


Take = Callable[..., None]
TAKE_WAYS = pytest.mark.parametrize("take", [_take, _take_together], ids=["one", "array"])


@TAKE_WAYS
def test_consecutive_updates_after_a_snapshot_are_no_gap(take: Take) -> None:
    tally, arrivals = Tally(frozenset({"A", "B"})), Arrivals()
    take(tally, arrivals, _snapshot("A", 4))
    assert not tally.ready
    take(tally, arrivals, _snapshot("B", 0), _book("A", 5), _book("B", 1), _book("A", 6))
    assert tally.ready
    assert (tally.updates, tally.gaps, tally.snapshots_after_first) == (3, 0, 0)
    assert tally.seqs == {"A": 6, "B": 1}
    assert arrivals.count == 3


@TAKE_WAYS
def test_a_skipped_or_repeated_seq_is_a_gap(take: Take) -> None:
    tally, arrivals = Tally(frozenset({"A"})), Arrivals()
    take(tally, arrivals, _snapshot("A", 1), _book("A", 3), _book("A", 3), _book("A", 4))
    assert tally.gaps == 2


@TAKE_WAYS
def test_an_update_before_any_snapshot_is_a_gap(take: Take) -> None:
    tally, arrivals = Tally(frozenset({"A"})), Arrivals()
    take(tally, arrivals, _book("A", 1))
    assert tally.gaps == 1


@TAKE_WAYS
def test_a_fresh_snapshot_resets_the_seq_and_is_counted(take: Take) -> None:
    tally, arrivals = Tally(frozenset({"A"})), Arrivals()
    take(tally, arrivals, _snapshot("A", 1), _book("A", 2), _snapshot("A", 9), _book("A", 10))
    assert (tally.gaps, tally.snapshots_after_first) == (0, 1)


def test_behind_names_the_first_symbol_short_of_its_target() -> None:
    tally, arrivals = Tally(frozenset({"A", "B"})), Arrivals()
    _take(tally, arrivals, _snapshot("A", 3), _snapshot("B", 7))
    assert tally.behind({"A": 3, "B": 7}) is None
    assert tally.behind({"A": 3, "B": 8}) == "B at 7, not 8"
    assert tally.behind({"C": 0}) == "C at None, not 0"


def test_errors_and_malformed_messages_are_kept_apart() -> None:
    tally, arrivals = Tally(frozenset({"A"})), Arrivals()
    error = {"type": "error", "message": "unknown symbol: A"}
    _take(tally, arrivals, error, {"type": "book"}, None, {"symbol": "A"})
    assert tally.errors == ["unknown symbol: A"]
    assert tally.malformed == 3
    assert tally.updates == 0


def _dated(committed: float | None, count: int = 1) -> Frame:
    return read_frame(json.dumps([_book("A", seq, committed) for seq in range(1, count + 1)]))


def test_delays_are_arrival_minus_commit() -> None:
    arrivals = Arrivals()
    for delay_ms in (1, 2, 3, 40):
        arrivals.record(_dated(100.0), 100.0 + delay_ms / 1000)
    figures = arrivals.delay_ms()
    assert set(figures) == {"p50", "p99", "p99.9", "max", "min"}
    assert 1.99 <= figures["p50"] <= 2.01
    assert 39.9 <= figures["max"] <= 40.1
    assert 0.99 <= figures["min"] <= 1.01


def test_a_message_committed_after_its_arrival_shows_in_the_minimum() -> None:
    arrivals = Arrivals()
    arrivals.record(_dated(100.0), 99.998)
    assert arrivals.delay_ms()["min"] < 0


def test_updates_without_a_commit_time_are_counted_not_timed() -> None:
    tally, arrivals = Tally(frozenset({"A"})), Arrivals()
    _take(tally, arrivals, _snapshot("A", 0), _book("A", 1, committed=None))
    assert (arrivals.count, arrivals.undated) == (1, 1)
    assert arrivals.delay_ms() == {}


def test_messages_per_second_spans_first_to_last_arrival() -> None:
    arrivals = Arrivals()
    for index in range(11):
        arrivals.record(_dated(None, count=2), 10.0 + index * 0.1)
    arrivals.record(read_frame(json.dumps(_snapshot("A", 1))), 20.0)  # no update: no arrival
    assert abs(arrivals.per_second() - 22 / 1.0) < 1e-6
    assert (arrivals.count, arrivals.frames) == (22, 11)


def test_updates_of_one_commit_in_one_frame_are_each_timed() -> None:
    arrivals = Arrivals()
    arrivals.record(_dated(100.0, count=3), 100.005)
    arrivals.record(_dated(100.0), 100.001)
    assert arrivals.histogram.get_total_count() == 4
    assert 4.99 <= arrivals.delay_ms()["p50"] <= 5.01


def test_a_frame_is_read_into_runs_of_consecutive_seqs_per_symbol() -> None:
    messages = [_book("A", 2), _book("B", 7), _book("A", 3, 101.0), _book("A", 5)]
    messages += [_snapshot("A", 9), _book("A", 10)]
    frame = read_frame(json.dumps(messages).encode())
    assert frame.steps == {"A": [(2, 3), (5, 5), (None, 9), (10, 10)], "B": [(7, 7)]}
    assert (frame.updates, frame.undated, frame.committed) == (5, 0, {100.0: 4, 101.0: 1})


def test_a_gap_inside_an_array_frame_is_a_gap() -> None:
    tally, arrivals = Tally(frozenset({"A"})), Arrivals()
    _take(tally, arrivals, _snapshot("A", 1))
    _take_together(tally, arrivals, _book("A", 2), _book("A", 4), _book("A", 5))
    assert (tally.gaps, tally.updates, tally.seqs) == (1, 3, {"A": 5})


def test_a_frame_that_is_not_json_is_malformed() -> None:
    tally = Tally(frozenset({"A"}))
    tally.apply(read_frame("{not json"))
    assert tally.malformed == 1


def test_subscribe_ops_split_many_symbols_under_the_size_limit() -> None:
    symbols = tuple(f"SYMBOL{index:05d}" for index in range(1000))
    ops = subscribe_ops(symbols)
    assert len(ops) > 1
    assert all(len(op) <= MAX_OP_BYTES for op in ops)
    decoded = [json.loads(op) for op in ops]
    assert all(op["op"] == "subscribe" for op in decoded)
    assert all(op["channels"] == ["book", "trades"] for op in decoded)
    assert tuple(symbol for op in decoded for symbol in op["symbols"]) == symbols
    assert subscribe_ops(()) == []


def _result(**changes: object) -> FeedResult:
    figures: dict[str, object] = {
        "subscribers": 3,
        "symbols": 2,
        "messages": 1200,
        "frames": 300,
        "messages_per_second": 600.0,
        "fewest_messages": 400,
        "delay_ms": {"p50": 1.0, "p99": 2.5, "p99.9": 3.0, "max": 4.0, "min": 0.2},
        "undated": 0,
        "gaps": 0,
        "snapshots_after_first": 0,
        "malformed": 0,
        "behind": 0,
        "cpu_seconds": 0.5,
    }
    return FeedResult(**{**figures, **changes})  # type: ignore[arg-type]


def test_a_result_is_ok_only_without_gaps_stragglers_or_problems() -> None:
    assert _result().ok
    assert _result(snapshots_after_first=5).ok
    assert not _result(gaps=1).ok
    assert not _result(behind=1).ok
    assert not _result(malformed=1).ok
    assert not _result(problems=["subscriber 0: closed by the server (1008)"]).ok


def test_the_feed_line_gives_the_figures_and_lists_problems() -> None:
    lines = feed_lines(_result(gaps=2, problems=["subscriber 1: behind, A at 3, not 4"]))
    figures = "feed: 3 subscribers x 2 symbols, 1,200 messages (600/s, 4.0 per frame)"
    assert lines[0].startswith(figures)
    assert "p99 2.50" in lines[0]
    assert "2 gaps" in lines[0]
    assert lines[1] == "  subscriber 1: behind, A at 3, not 4"
    assert "unknown (no committed times)" in feed_lines(_result(delay_ms={}))[0]
