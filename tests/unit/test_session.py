"""The session's wire rules, with no socket, in h11's style: every input
whole, one byte at a time and in odd chunks, alone and with more behind it;
the pipelining cap; replies in request order however slots are settled;
the closes (after a fatal error's reply, after the replies owed at the end
of stream, at its turn when an outcome is unknown); rendering only when a reply
leaves, and never once the connection is gone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

from bourse.core.commands import CreateRequest, Request, TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.core.results import Result
from bourse.protocol import render
from bourse.protocol.events import RequestError
from bourse.protocol.framing import frame_request as length_line
from bourse.protocol.reader import ReaderLimits
from bourse.protocol.session import Ending, SessionLimits, SessionSignal
from tests.unit.chunkers import Chunker, byte_by_byte, odd_chunks, whole
from tests.unit.session_peer import Peer, answer, binary, refusal

CREATE = b'<create><account id="7" balance="1000"/></create>'
ORDER = b'<transactions id="7"><order sym="SPY" amount="100" limit="125"/></transactions>'
TRAILER = b'<transactions id="8"><query id="1"/></transactions>'

CHUNKERS = pytest.mark.parametrize("chunker", [whole, byte_by_byte, odd_chunks])

SMALL = SessionLimits(max_request_size=128)
BINARY_4096 = (4096).to_bytes(4, "little") + b"\n"

#: (name, bytes, the outcome of each request in them, whether the stream is lost)
INPUTS = [
    ("length line", length_line(CREATE), ["applied"], False),
    ("binary length", binary(ORDER), ["applied"], False),
    ("bare XML", CREATE, ["applied"], False),
    ("three framings", length_line(ORDER) + binary(CREATE) + ORDER, ["applied"] * 3, False),
    ("malformed XML", length_line(b"<create>"), [ErrorCode.MALFORMED_XML], False),
    ("unknown root", length_line(b"<hello/>"), [ErrorCode.UNKNOWN_ROOT], False),
    ("a zero length", b"0\n", [ErrorCode.BAD_FRAMING], False),
    ("a length over the limit", b"200\n" + b" " * 200, [ErrorCode.REQUEST_TOO_LARGE], False),
    ("a negative length", b"-5\n<a/>", [ErrorCode.BAD_FRAMING], True),
    ("a binary length over the limit", BINARY_4096, [ErrorCode.REQUEST_TOO_LARGE], True),
    ("a DOCTYPE in bare XML", b"<!DOCTYPE x><x/>", [ErrorCode.FORBIDDEN_XML], True),
]  # fmt: skip


def ending(peer: Peer) -> Ending:
    """A call, so that type checkers do not narrow it between assertions."""
    return peer.session.ending


def outcomes(peer: Peer) -> list[str | ErrorCode]:
    """What became of each request, in order: applied, or refused with a code."""
    refusals = iter(peer.refusals)
    return [next(refusals).code if b"<error>" in reply else "applied" for reply in peer.owed]


def serve(chunks: Iterable[bytes]) -> Peer:
    """A peer that sends ``chunks`` then ends, the exchange committing
    every request at once."""
    peer = Peer(SMALL, release_at_once=True)
    peer.send(*chunks)
    assert peer.end() is SessionSignal.NO_MORE_REQUESTS
    return peer


@pytest.mark.parametrize(("name", "data", "expected", "lost"), INPUTS, ids=[i[0] for i in INPUTS])
@CHUNKERS
def test_every_input_alone(
    name: str, data: bytes, expected: list[str | ErrorCode], lost: bool, chunker: Chunker
) -> None:
    peer = serve(chunker(data))
    assert outcomes(peer) == expected
    assert bytes(peer.sent) == b"".join(peer.owed)
    assert ending(peer) is Ending.CLOSE
    assert not peer.session.owes_replies


@pytest.mark.parametrize(("name", "data", "expected", "lost"), INPUTS, ids=[i[0] for i in INPUTS])
@CHUNKERS
def test_every_input_with_a_request_behind_it(
    name: str, data: bytes, expected: list[str | ErrorCode], lost: bool, chunker: Chunker
) -> None:
    peer = serve(chunker(data + length_line(TRAILER)))
    assert outcomes(peer) == (expected if lost else [*expected, "applied"])
    assert bytes(peer.sent) == b"".join(peer.owed)
    assert ending(peer) is Ending.CLOSE


@CHUNKERS
def test_every_input_the_same_whatever_the_chunking(chunker: Chunker) -> None:
    stream = b"\n".join(data for _, data, _, lost in INPUTS if not lost)
    assert serve(chunker(stream)).sent == serve([stream]).sent


@CHUNKERS
def test_an_end_of_stream_inside_a_request_is_a_fatal_framing_error(chunker: Chunker) -> None:
    peer = serve(chunker(length_line(CREATE)[:-3]))
    assert outcomes(peer) == [ErrorCode.BAD_FRAMING]
    assert peer.refusals[0].fatal
    assert ending(peer) is Ending.CLOSE


def test_a_complete_request_is_handed_out_before_more_bytes_or_the_end() -> None:
    peer = Peer()
    assert peer.send(length_line(CREATE)) is SessionSignal.NEED_DATA
    assert [type(request) for request in peer.requests] == [CreateRequest]
    assert not peer.session.receiving
    assert peer.session.owes_replies
    assert peer.send(length_line(CREATE)[:5]) is SessionSignal.NEED_DATA
    assert peer.session.receiving


def test_the_reader_counts_commands_against_the_configured_limit() -> None:
    peer = Peer(SessionLimits(reader=ReaderLimits(max_children=1)))
    two = b'<create><account id="1" balance="1"/><account id="2" balance="1"/></create>'
    peer.send(length_line(two))
    assert [error.code for error in peer.refusals] == [ErrorCode.REQUEST_TOO_LARGE]


# --- the pipelining cap -----------------------------------------------------------


def test_no_more_than_max_pipelined_requests_are_handed_out() -> None:
    peer = Peer(SessionLimits(max_pipelined=3))
    assert peer.send(length_line(CREATE) * 5) is SessionSignal.PIPELINE_FULL
    assert len(peer.requests) == 3
    assert peer.session.pipeline_full
    peer.release(2)  # behind the first: still in progress
    assert peer.pump() is SessionSignal.PIPELINE_FULL
    peer.release(1)
    assert not peer.session.pipeline_full
    assert peer.pump() is SessionSignal.PIPELINE_FULL
    assert len(peer.requests) == 5


def test_refusals_waiting_behind_a_request_count_toward_the_cap() -> None:
    peer = Peer(SessionLimits(max_pipelined=3))
    assert peer.send(length_line(CREATE) + length_line(b"<x>") * 4) is SessionSignal.PIPELINE_FULL
    assert len(peer.refusals) == 2
    peer.release(1)
    assert peer.pump() is SessionSignal.NEED_DATA
    assert bytes(peer.sent) == b"".join(peer.owed)


def test_refusals_with_nothing_owed_before_them_leave_at_once() -> None:
    peer = Peer(SessionLimits(max_pipelined=2))
    assert peer.send(length_line(b"<x>") * 10) is SessionSignal.NEED_DATA
    assert len(peer.refusals) == 10
    assert bytes(peer.sent) == b"".join(peer.owed)
    assert peer.sent.count(b"<error>Malformed XML") == 10


def test_the_end_of_stream_waits_behind_a_full_pipeline() -> None:
    peer = Peer(SessionLimits(max_pipelined=1))
    peer.send(length_line(CREATE) * 2)
    assert peer.end() is SessionSignal.PIPELINE_FULL
    assert peer.session.taking_requests
    peer.release(1)
    assert peer.pump() is SessionSignal.PIPELINE_FULL
    peer.release(2)
    assert ending(peer) is Ending.OPEN
    assert peer.pump() is SessionSignal.NO_MORE_REQUESTS
    assert bytes(peer.sent) == answer(1) + answer(2)
    assert ending(peer) is Ending.CLOSE


# --- replies in order -------------------------------------------------------------


def test_slots_settled_out_of_order_are_answered_in_order() -> None:
    peer = Peer()
    peer.send(length_line(CREATE) * 4)
    peer.release(3)
    assert peer.sent == b""
    assert peer.notifications == 0
    peer.release(1)
    assert bytes(peer.sent) == answer(1)
    peer.release(4)
    assert bytes(peer.sent) == answer(1)
    peer.release(2)
    assert bytes(peer.sent) == answer(1) + answer(2) + answer(3) + answer(4)
    assert peer.notifications == 2  # once per settlement that unblocked the front
    assert not peer.session.owes_replies


def test_a_refusal_waits_for_the_request_before_it() -> None:
    peer = Peer()
    peer.send(length_line(CREATE) + length_line(b"<x>") + length_line(CREATE))
    assert peer.sent == b""
    peer.release(2)
    assert peer.sent == b""
    peer.release(1)
    assert bytes(peer.sent) == b"".join(peer.owed)
    assert peer.owed[0] == answer(1)
    assert b"<error>Malformed XML: " in peer.owed[1]
    assert peer.owed[2] == answer(2)


def test_an_exchange_refusal_is_answered_in_its_place() -> None:
    peer = Peer()
    peer.send(length_line(CREATE) * 2)
    peer.release(2)
    peer.refuse(1, ErrorCode.UNAVAILABLE)
    assert bytes(peer.sent) == refusal(ErrorCode.UNAVAILABLE) + answer(2)


# --- closes -----------------------------------------------------------------------


def test_a_fatal_error_closes_after_the_replies_before_it_and_its_own() -> None:
    peer = Peer()
    signal = peer.send(length_line(CREATE) + b"-5\n" + length_line(CREATE))
    assert signal is SessionSignal.NO_MORE_REQUESTS
    assert len(peer.requests) == 1
    assert not peer.session.taking_requests
    assert ending(peer) is Ending.OPEN
    peer.release(1)
    assert peer.sent.startswith(answer(1))
    assert peer.sent.endswith(b"</error>\n</results>\n")
    assert ending(peer) is Ending.CLOSE
    assert peer.send(length_line(CREATE)) is SessionSignal.NO_MORE_REQUESTS
    assert len(peer.requests) == 1


def test_the_end_of_stream_closes_after_the_replies_owed() -> None:
    peer = Peer()
    peer.send(length_line(CREATE) * 2)
    assert peer.end() is SessionSignal.NO_MORE_REQUESTS
    assert ending(peer) is Ending.OPEN
    peer.release(2)
    assert ending(peer) is Ending.OPEN
    peer.release(1)
    assert bytes(peer.sent) == answer(1) + answer(2)
    assert ending(peer) is Ending.CLOSE


def test_the_end_of_stream_with_nothing_owed_closes_at_once() -> None:
    peer = Peer()
    assert peer.end() is SessionSignal.NO_MORE_REQUESTS
    assert ending(peer) is Ending.CLOSE
    assert peer.sent == b""


def test_bytes_after_the_end_of_stream_are_ignored() -> None:
    peer = Peer()
    peer.end()
    assert peer.send(length_line(CREATE)) is SessionSignal.NO_MORE_REQUESTS
    assert peer.requests == []


def test_a_request_timed_out_is_refused_then_closes() -> None:
    peer = Peer()
    peer.send(length_line(CREATE)[:10])
    assert peer.session.receiving
    refused = peer.session.request_timed_out()
    assert refused.error == RequestError(ErrorCode.REQUEST_TIMEOUT, fatal=True)
    peer.flush()
    assert bytes(peer.sent) == refusal(ErrorCode.REQUEST_TIMEOUT)
    assert ending(peer) is Ending.CLOSE
    assert peer.send(length_line(CREATE)[10:]) is SessionSignal.NO_MORE_REQUESTS


def test_a_dropped_slot_aborts_after_the_replies_before_it() -> None:
    peer = Peer()
    peer.send(length_line(CREATE) * 3)
    peer.drop(2)
    assert ending(peer) is Ending.OPEN
    peer.release(1)
    assert bytes(peer.sent) == answer(1)
    assert ending(peer) is Ending.ABORT
    assert not peer.session.taking_requests
    assert not peer.session.owes_replies
    peer.release(3)
    assert bytes(peer.sent) == answer(1)


def test_a_dropped_slot_at_the_front_aborts_at_once() -> None:
    peer = Peer()
    peer.send(length_line(CREATE) * 2)
    peer.release(2)
    peer.drop(1)
    assert peer.sent == b""
    assert ending(peer) is Ending.ABORT


# --- rendering --------------------------------------------------------------------


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every reply the session renders."""
    rendered: list[object] = []

    def render_results(results: Sequence[Result]) -> bytes:
        rendered.append(results)
        return render.render_results(results)

    def render_error(error: RequestError) -> bytes:
        rendered.append(error)
        return render.render_error(error)

    monkeypatch.setattr("bourse.protocol.session.render_results", render_results)
    monkeypatch.setattr("bourse.protocol.session.render_error", render_error)
    return rendered


def test_results_are_rendered_only_when_they_leave(renders: list[object]) -> None:
    peer = Peer()
    peer.send(length_line(CREATE) * 2 + length_line(b"<x>"))
    peer.release(2)
    assert renders == []
    peer.release(1)
    assert len(renders) == 3


def test_nothing_is_rendered_once_the_connection_is_closed(renders: list[object]) -> None:
    peer = Peer()
    peer.send(length_line(CREATE) * 2 + length_line(b"<x>"))
    peer.session.connection_closed()
    peer.release(1)
    peer.refuse(2, ErrorCode.UNAVAILABLE)
    peer.flush()
    assert renders == []
    assert peer.sent == b""
    assert not peer.session.owes_replies
    assert peer.send(length_line(CREATE)) is SessionSignal.NO_MORE_REQUESTS


def test_nothing_behind_a_drop_is_rendered(renders: list[object]) -> None:
    peer = Peer()
    peer.send(length_line(CREATE) * 3)
    peer.release(3)
    peer.release(2)
    peer.drop(1)
    assert renders == []


def test_nothing_is_rendered_after_a_close(renders: list[object]) -> None:
    peer = Peer()
    peer.send(b"-5\n<a/>")
    assert ending(peer) is Ending.CLOSE
    assert len(renders) == 1
    peer.session.request_timed_out()
    peer.flush()
    assert len(renders) == 1


# --- the policy -------------------------------------------------------------------


class Refusing:
    """A policy that refuses what it is told to, and records what it saw."""

    def __init__(
        self, before_parsing: ErrorCode | None = None, parsed: ErrorCode | None = None
    ) -> None:
        self.before_parsing = before_parsing
        self.parsed = parsed
        self.seen: list[Request] = []

    def refusal_before_parsing(self) -> ErrorCode | None:
        return self.before_parsing

    def refusal_of(self, request: Request) -> ErrorCode | None:
        self.seen.append(request)
        return self.parsed


def test_a_refusal_before_parsing_does_not_parse() -> None:
    policy = Refusing(before_parsing=ErrorCode.RATE_LIMITED)
    peer = Peer(policy=policy)
    peer.send(length_line(b"<not xml"))
    assert [error.code for error in peer.refusals] == [ErrorCode.RATE_LIMITED]
    assert policy.seen == []
    assert bytes(peer.sent) == refusal(ErrorCode.RATE_LIMITED)


def test_a_parsed_request_refused_by_the_policy_is_not_handed_out() -> None:
    policy = Refusing(parsed=ErrorCode.UNAUTHORIZED)
    peer = Peer(policy=policy)
    peer.send(length_line(ORDER))
    assert peer.requests == []
    assert [type(request) for request in policy.seen] == [TransactionsRequest]
    assert bytes(peer.sent) == refusal(ErrorCode.UNAUTHORIZED)
    assert peer.session.taking_requests
