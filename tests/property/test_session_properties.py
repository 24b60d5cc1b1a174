"""Any byte stream through a session: random bytes mixed with well-framed
requests, cut at random points, with requests settled in random order under
a small pipelining cap. The session must never raise, must hand out every
reply it owes in request order and nothing else, and must end the
connection: closed after the end of stream, or dropped where an outcome is
unknown. How the stream is cut must change nothing that is sent."""

from __future__ import annotations

import itertools
import random

from hypothesis import event, given, settings
from hypothesis import strategies as st

from bourse.protocol.session import Ending, SessionLimits, SessionSignal
from tests.unit.session_peer import Peer

BODIES = [
    b'<create><account id="7" balance="1000"/></create>',
    b'<transactions id="7"><order sym="SPY" amount="-3" limit="125.5"/></transactions>',
    b'<transactions id="7"><query id="1"/><cancel id="2"/></transactions>',
    b"<create/>",
]


def framed(body: bytes, framing: str) -> bytes:
    if framing == "length line":
        return str(len(body)).encode() + b"\r\n" + body
    if framing == "binary":
        return len(body).to_bytes(4, "little") + b"\n" + body
    return body + b"\n"


requests = st.builds(
    framed, st.sampled_from(BODIES), st.sampled_from(["length line", "binary", "bare"])
)
noise = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"\n", b"0\n", b"<!-- c -->", b"<?pi?>", b"99999\n", b"-1\n", b"8\n<create>"]),
)
#: Mostly well-framed requests, so that streams go on past their noise.
pieces = st.sampled_from([requests] * 8 + [noise]).flatmap(lambda piece: piece)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A stream and the same stream cut at random points."""
    stream = b"".join(draw(st.lists(pieces, max_size=16)))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(stream)), max_size=8))))
    bounds = [0, *cuts, len(stream)]
    return stream, [stream[start:end] for start, end in itertools.pairwise(bounds)]


class Exchange:
    """Settles a peer's requests in an order of its own, dropping one of
    them if told to."""

    def __init__(self, peer: Peer, rng: random.Random, drop: int | None) -> None:
        self.peer = peer
        self.rng = rng
        self.drop = drop
        #: Where the dropped request's reply would have been, once dropped.
        self.dropped_at: int | None = None

    def settle_one(self) -> None:
        number = self.rng.choice(sorted(self.peer.unsettled))
        if number == self.drop:
            self.dropped_at = self.peer.drop(number)
        else:
            self.peer.release(number)

    def run(self, signal: SessionSignal) -> SessionSignal:
        """Settle requests while the pipeline is full; the next signal."""
        while signal is SessionSignal.PIPELINE_FULL:
            self.settle_one()
            signal = self.peer.pump()
        return signal


def serve(chunks: list[bytes], max_pipelined: int, seed: int, drop: int | None) -> Exchange:
    peer = Peer(SessionLimits(max_request_size=256, max_pipelined=max_pipelined))
    exchange = Exchange(peer, random.Random(seed), drop)
    for chunk in chunks:
        exchange.run(peer.send(chunk))
        if peer.unsettled and exchange.rng.random() < 0.5:
            exchange.settle_one()
    assert exchange.run(peer.end()) is SessionSignal.NO_MORE_REQUESTS
    while peer.unsettled:
        exchange.settle_one()
    return exchange


@settings(max_examples=500, deadline=None)
@given(
    streams(),
    st.integers(1, 4),
    st.integers(0, 2**32),
    st.one_of(st.none(), st.integers(1, 6)),
)
def test_any_stream_gets_its_replies_in_order_then_a_close(
    stream_and_chunks: tuple[bytes, list[bytes]], max_pipelined: int, seed: int, drop: int | None
) -> None:
    stream, chunks = stream_and_chunks
    exchange = serve(chunks, max_pipelined, seed, drop)
    peer = exchange.peer
    event(f"{len(peer.requests)} applied, {len(peer.refusals)} refused")
    event("dropped" if exchange.dropped_at is not None else "closed")
    event("fatal" if any(error.fatal for error in peer.refusals) else "no fatal error")
    if exchange.dropped_at is None:
        assert peer.session.ending is Ending.CLOSE
        assert bytes(peer.sent) == b"".join(peer.owed)
    else:
        assert peer.session.ending is Ending.ABORT
        assert bytes(peer.sent) == b"".join(peer.owed[: exchange.dropped_at])
    assert not peer.session.owes_replies
    assert not peer.session.taking_requests
    whole = serve([stream], max_pipelined, seed, drop).peer
    assert whole.sent == peer.sent
    if exchange.dropped_at is None:  # else fewer requests may be read before the drop
        assert whole.owed == peer.owed
