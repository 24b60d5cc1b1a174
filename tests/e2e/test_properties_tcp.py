"""Random request streams over TCP: a real server (one process, or engine
and gateways) answers exactly like the naive reference exchange.

The engine-level property tests cover many more streams in process; this
one checks that the whole path (XML out, framing, parsing, the gateway
link, group commit, rendering) changes nothing about the answers. Each
example gets a fresh database and server, so order ids start at 1 as in
the reference. Refused children are left out: hostile and invalid input
has tests of its own.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bourse.bench.xml import create_xml, transactions_xml
from bourse.core.commands import CreateRequest, Rejected, Request, TransactionsRequest
from bourse.protocol.render import render_results
from tests.databases import fresh_database
from tests.e2e.harness import frame_line, read_replies, running_server
from tests.property.reference import NaiveExchange
from tests.property.test_engine_properties import SEED, requests

TIME = re.compile(rb'time="\d+"')


def without_refused(request: Request) -> Request | None:
    """The request minus its pre-refused children; None if nothing is left
    of a ``<transactions>`` (an empty one is a request-level error)."""
    if isinstance(request, CreateRequest):
        return CreateRequest(tuple(c for c in request.commands if not isinstance(c, Rejected)))
    commands = tuple(c for c in request.commands if not isinstance(c, Rejected))
    return TransactionsRequest(request.account_id, commands) if commands else None


def to_xml(request: Request) -> bytes:
    if isinstance(request, CreateRequest):
        return b"".join(create_xml(request)) or b"<create></create>"
    return transactions_xml(request)


def untimed(reply: bytes) -> bytes:
    return TIME.sub(b'time="T"', reply)


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(requests, min_size=1, max_size=40))
def test_server_answers_like_the_reference(
    workers: int, cluster_url: str, stream: list[Request]
) -> None:
    kept = [without_refused(request) for request in stream]
    sent: list[Request] = [SEED, *(request for request in kept if request is not None)]
    reference = NaiveExchange()
    expected = [untimed(render_results(reference.apply(r, 0))) for r in sent]
    with fresh_database(cluster_url) as url, running_server(url) as server:
        with server.connect() as sock:
            sock.sendall(b"".join(frame_line(to_xml(request)) for request in sent))
            replies = read_replies(sock, len(sent))
        assert server.stop() == 0
    assert [untimed(reply) for reply in replies] == expected
