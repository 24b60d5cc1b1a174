"""The framing rules and the child-level attribute rule, over real sockets.

Why this module exists: tests/unit/test_framing.py and test_reader.py prove
the decoder and the reader on their own; what a client sees is the server's
reply, or its silence. Here each rule of docs/protocol.md that once failed a
client is checked against a running server: a length line behind a space
was carried out, ``0\\n`` got no answer, a comment after a bare document's
root hung the connection for the body timeout, and a child without one of
its attributes turned the whole request into one ``<error>``, so a client
counting one result per child waited forever.
"""

from __future__ import annotations

import itertools
import socket
import time

import pytest
from lxml import etree

from tests.e2e.harness import (
    RESULTS_END,
    ServerProcess,
    exchange,
    frame_binary,
    frame_line,
    is_closed,
)

#: How long a prompt answer may take (the body timeout is 30 s).
PROMPTLY = 1.0
#: How long a connection the server means to close may take to close.
CLOSE_WITHIN = 5.0

Result = tuple[str, dict[str, str], str]

_ids = itertools.count(5_000_000)


def fresh_id() -> str:
    return str(next(_ids))


def results(reply: bytes) -> list[Result]:
    """(tag, attributes, text) of each child of ``<results>``."""
    root = etree.fromstring(reply)
    assert root.tag == "results"
    return [
        (str(child.tag), {str(k): str(v) for k, v in child.attrib.items()}, child.text or "")
        for child in root
    ]


def read_exactly(sock: socket.socket, count: int, within: float = 10.0) -> list[bytes]:
    """``count`` replies, arriving within ``within`` seconds, and not a byte more."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    data = b""
    while data.count(RESULTS_END) < count:
        assert time.monotonic() < deadline, f"only {data!r} within {within}s"
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    parts = data.split(RESULTS_END)
    assert parts[count:] == [b""], f"more than {count} replies: {data!r}"
    return [part + RESULTS_END for part in parts[:count]]


def create_account(account_id: str) -> bytes:
    return f'<create><account id="{account_id}" balance="1"/></create>'.encode()


def created(account_id: str) -> list[Result]:
    return [("created", {"id": account_id}, "")]


def request_error(text: str) -> list[Result]:
    return [("error", {}, text)]


def assert_still_answers(sock: socket.socket) -> None:
    """The next request on ``sock`` gets its own reply, with nothing before it."""
    account_id = fresh_id()
    sock.sendall(frame_line(create_account(account_id)))
    [reply] = read_exactly(sock, 1)
    assert results(reply) == created(account_id)


# -- a length line starts a line ----------------------------------------------------


@pytest.mark.parametrize("indent", [b" ", b"\t", b"\n "])
def test_a_length_line_behind_whitespace_is_a_framing_error_and_closes(
    server: ServerProcess, indent: bytes
) -> None:
    account_id = fresh_id()
    xml = create_account(account_id)
    xml += b" " * (72 - len(xml))
    assert frame_line(xml).startswith(b"72\n")
    with server.connect() as sock:
        sock.sendall(indent + frame_line(xml))
        [reply] = read_exactly(sock, 1)
        assert results(reply) == request_error(
            "Bad framing: whitespace before the length line's digits"
        )
        assert is_closed(sock, CLOSE_WITHIN)
    assert results(exchange(server, create_account(account_id))) == created(account_id)


@pytest.mark.parametrize("separator", [b"\n", b"\r\n", b" \n", b"\n\n"])
def test_a_length_line_after_a_line_feed_is_read(server: ServerProcess, separator: bytes) -> None:
    first, second = fresh_id(), fresh_id()
    with server.connect() as sock:
        sock.sendall(
            frame_line(create_account(first))
            + separator
            + frame_line(create_account(second))
            + separator
        )
        replies = read_exactly(sock, 2)
        assert [results(reply) for reply in replies] == [created(first), created(second)]
        assert_still_answers(sock)


# -- a zero length is answered at once -------------------------------------------


@pytest.mark.parametrize("zero", [b"0\n", b"0\r\n", b"00\n"])
@pytest.mark.parametrize("after_a_newline", [False, True], ids=["alone", "after-newline"])
def test_a_zero_length_is_answered_at_once_and_the_connection_stays(
    server: ServerProcess, zero: bytes, after_a_newline: bool
) -> None:
    with server.connect() as sock:
        if after_a_newline:
            account_id = fresh_id()
            sock.sendall(frame_line(create_account(account_id)) + b"\n")
            [reply] = read_exactly(sock, 1)
            assert results(reply) == created(account_id)
        sock.sendall(zero)
        [reply] = read_exactly(sock, 1, within=PROMPTLY)
        assert results(reply) == request_error("Bad framing: empty request")
        assert_still_answers(sock)


# -- after a bare document's root, its comments and instructions ------------------------

NEXT_FRAMINGS = {"bare": lambda xml: xml, "line": frame_line, "binary": frame_binary}


@pytest.mark.parametrize(
    "trailing",
    [b"<!-- sent by client 7 -->", b"<?client version 2?>", b"\n<!-- a -->\r\n<?b?>\n"],
    ids=["comment", "instruction", "both"],
)
@pytest.mark.parametrize("framing", list(NEXT_FRAMINGS))
def test_markup_after_a_bare_root_belongs_to_it(
    server: ServerProcess, trailing: bytes, framing: str
) -> None:
    first, second = fresh_id(), fresh_id()
    with server.connect() as sock:
        sock.sendall(create_account(first) + trailing)
        [reply] = read_exactly(sock, 1, within=PROMPTLY)
        assert results(reply) == created(first)
        sock.sendall(NEXT_FRAMINGS[framing](create_account(second)))
        [reply] = read_exactly(sock, 1, within=PROMPTLY)
        assert results(reply) == created(second)
        assert_still_answers(sock)


def test_markup_after_a_bare_root_sent_with_the_next_request(server: ServerProcess) -> None:
    first, second = fresh_id(), fresh_id()
    with server.connect() as sock:
        sock.sendall(
            create_account(first) + b"<!-- c --><?pi?>" + create_account(second) + b"<!-- d -->"
        )
        replies = read_exactly(sock, 2, within=PROMPTLY)
        assert [results(reply) for reply in replies] == [created(first), created(second)]
        assert_still_answers(sock)


# -- a child with wrong attributes is refused in its place ---------------------------------


def test_create_answers_each_child_when_some_lack_an_attribute(server: ServerProcess) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    symbol = f"S{a}"
    xml = (
        f'<create><account id="{a}" balance="10"/>'
        f'<account id="{b}"/>'
        f'<symbol><account id="{a}">5</account></symbol>'
        f'<symbol sym="{symbol}"><account>5</account><account id="{a}">5</account></symbol>'
        '<account balance="1"/>'
        f'<account id="{c}" balance="1" extra="x"/>'
        f'<account id="{c}" balance="3"/></create>'
    )
    assert results(exchange(server, xml.encode())) == [
        ("created", {"id": a}, ""),
        ("error", {"id": b}, "Missing attribute: balance"),
        ("error", {"id": a}, "Missing attribute: sym"),
        ("error", {"sym": symbol}, "Missing attribute: id"),
        ("created", {"sym": symbol, "id": a}, ""),
        ("error", {}, "Missing attribute: id"),
        ("error", {"id": c}, "Unexpected attribute"),
        ("created", {"id": c}, ""),
    ]
    assert results(exchange(server, create_account(b))) == created(b)


def test_transactions_answers_each_child_when_some_lack_an_attribute(
    server: ServerProcess,
) -> None:
    trader, symbol = fresh_id(), f"T{fresh_id()}"
    exchange(
        server,
        f'<create><account id="{trader}" balance="100"/>'
        f'<symbol sym="{symbol}"><account id="{trader}">10</account></symbol></create>'.encode(),
    )
    xml = (
        f'<transactions id="{trader}">'
        f'<order sym="{symbol}" amount="2" limit="3"/>'
        f'<order sym="{symbol}" amount="1"/>'
        '<order amount="1" limit="1"/>'
        "<query/>"
        '<cancel x="1"/>'
        f'<order sym="{symbol}" amount="-1" limit="50" note="x"/>'
        f'<order sym="{symbol}" amount="-1" limit="50"/>'
        "</transactions>"
    )
    answered = results(exchange(server, xml.encode()))
    assert [(tag, attrs) for tag, attrs, _ in answered] == [
        ("opened", {"sym": symbol, "amount": "2", "limit": "3", "id": answered[0][1]["id"]}),
        ("error", {"sym": symbol, "amount": "1"}),
        ("error", {"amount": "1", "limit": "1"}),
        ("error", {}),
        ("error", {}),
        ("error", {"sym": symbol, "amount": "-1", "limit": "50"}),
        ("opened", {"sym": symbol, "amount": "-1", "limit": "50", "id": answered[6][1]["id"]}),
    ]
    assert [text for tag, _, text in answered if tag == "error"] == [
        "Missing attribute: limit",
        "Missing attribute: sym",
        "Missing attribute: id",
        "Missing attribute: id",
        "Unexpected attribute",
    ]
    query = f'<transactions id="{trader}"><query id="{answered[0][1]["id"]}"/></transactions>'
    status = etree.fromstring(exchange(server, query.encode()))[0]
    assert [(child.tag, child.get("shares")) for child in status] == [("open", "2")]
