"""The protocol end to end: a real server process over real TCP."""

from __future__ import annotations

import itertools

from lxml import etree

from tests.e2e.harness import (
    ServerProcess,
    exchange,
    frame_binary,
    frame_line,
    read_replies,
    read_reply,
)

SPEC_CREATE = b"""<?xml version="1.0" encoding="UTF-8"?>
<create>
  <account id="123456" balance="1000"/>
  <symbol sym="SPY">
    <account id="123456">100000</account>
  </symbol>
</create>
"""

_ids = itertools.count(1000)


def fresh_id() -> str:
    return str(next(_ids))


def results(reply: bytes) -> list[tuple[str, dict[str, str], str]]:
    """(tag, attributes, text) of each child of ``<results>``."""
    assert reply.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<results>')
    assert reply.endswith(b"</results>\n")
    root = etree.fromstring(reply)
    assert root.tag == "results"
    return [
        (str(child.tag), {str(k): str(v) for k, v in child.attrib.items()}, child.text or "")
        for child in root
    ]


def test_spec_create_example(server: ServerProcess) -> None:
    assert results(exchange(server, SPEC_CREATE)) == [
        ("created", {"id": "123456"}, ""),
        ("created", {"sym": "SPY", "id": "123456"}, ""),
    ]


def test_empty_create_is_not_self_closing(server: ServerProcess) -> None:
    reply = exchange(server, b"<create/>")
    assert b"<results>" in reply
    assert b"<results/>" not in reply
    assert results(reply) == []


def test_worked_example_over_tcp(server: ServerProcess) -> None:
    buyer, seller, sym = fresh_id(), fresh_id(), "WORKED"
    exchange(
        server,
        f'<create><account id="{buyer}" balance="1000000"/><account id="{seller}" balance="0"/>'
        f'<symbol sym="{sym}"><account id="{seller}">10000</account></symbol></create>'.encode(),
    )
    orders = [(buyer, 300, 125), (seller, -100, 130), (buyer, 200, 127), (seller, -500, 128),
              (seller, -200, 140), (buyer, 400, 125), (seller, -400, 124)]  # fmt: skip
    ids = []
    for who, amount, limit in orders:
        xml = f'<transactions id="{who}"><order sym="{sym}" amount="{amount}" limit="{limit}"/>'
        [(tag, attrs, _)] = results(exchange(server, (xml + "</transactions>").encode()))
        assert tag == "opened"
        assert (attrs["amount"], attrs["limit"]) == (str(amount), str(limit))
        ids.append(int(attrs["id"]))
    first, seventh = ids[0], ids[6]
    reply = exchange(
        server,
        f'<transactions id="{buyer}"><query id="{first}"/></transactions>'.encode(),
    )
    [(tag, attrs, _)] = results(reply)
    status = etree.fromstring(reply)[0]
    assert (tag, attrs) == ("status", {"id": str(first)})
    assert [(c.tag, c.get("shares"), c.get("price")) for c in status] == [
        ("open", "100", None),
        ("executed", "200", "125"),
    ]
    reply = exchange(
        server, f'<transactions id="{seller}"><query id="{seventh}"/></transactions>'.encode()
    )
    status = etree.fromstring(reply)[0]
    assert [(c.tag, c.get("shares"), c.get("price")) for c in status] == [
        ("executed", "200", "127"),
        ("executed", "200", "125"),
    ]
    assert all(int(c.get("time", "0")) > 1_500_000_000 for c in status)


def test_transactions_for_unknown_account(server: ServerProcess) -> None:
    reply = exchange(
        server,
        b'<transactions id="99999999"><order sym="SPY" amount="1" limit="1"/>'
        b'<query id="1"/><cancel id="1"/></transactions>',
    )
    assert results(reply) == [
        ("error", {"sym": "SPY", "amount": "1", "limit": "1"}, "Account does not exist"),
        ("error", {"id": "1"}, "Account does not exist"),
        ("error", {"id": "1"}, "Account does not exist"),
    ]


def test_order_echo_and_cancel_refund(server: ServerProcess) -> None:
    who = fresh_id()
    exchange(server, f'<create><account id="{who}" balance="100"/></create>'.encode())
    exchange(
        server,
        f'<create><symbol sym="ECHO"><account id="{who}">1</account></symbol></create>'.encode(),
    )
    reply = exchange(
        server,
        f'<transactions id="{who}"><order sym="ECHO" amount="0010.50" limit="9.50"/>'
        f'<order sym="ECHO" amount="1" limit="1"/></transactions>'.encode(),
    )
    [opened, refused] = results(reply)
    assert opened[0] == "opened"
    assert (opened[1]["amount"], opened[1]["limit"]) == ("0010.50", "9.50")
    assert refused == ("error", {"sym": "ECHO", "amount": "1", "limit": "1"}, "Insufficient funds")
    order_id = opened[1]["id"]
    reply = exchange(
        server,
        f'<transactions id="{who}"><cancel id="{order_id}"/>'
        f'<order sym="ECHO" amount="1" limit="100"/></transactions>'.encode(),
    )
    [canceled, reopened] = results(reply)
    assert canceled[0] == "canceled"
    assert etree.fromstring(reply)[0][0].get("shares") == "10.5"
    assert reopened[0] == "opened"


def test_pipelined_requests_answered_in_order(server: ServerProcess) -> None:
    ids = [fresh_id() for _ in range(20)]
    with server.connect() as sock:
        sock.sendall(
            b"".join(
                frame_line(f'<create><account id="{i}" balance="1"/></create>'.encode())
                for i in ids
            )
        )
        replies = read_replies(sock, len(ids))
    assert [results(r)[0][1]["id"] for r in replies] == ids


def test_all_three_framings_on_one_connection(server: ServerProcess) -> None:
    a, b, c = fresh_id(), fresh_id(), fresh_id()
    with server.connect() as sock:
        sock.sendall(frame_line(f'<create><account id="{a}" balance="1"/></create>'.encode()))
        assert results(read_reply(sock))[0][1] == {"id": a}
        sock.sendall(frame_binary(f'<create><account id="{b}" balance="1"/></create>'.encode()))
        assert results(read_reply(sock))[0][1] == {"id": b}
        sock.sendall(f'<create><account id="{c}" balance="1"/></create>'.encode())
        assert results(read_reply(sock))[0][1] == {"id": c}


def test_request_errors_leave_connection_usable(server: ServerProcess) -> None:
    who = fresh_id()
    with server.connect() as sock:
        for bad in (b"<create><account", b"<nonsense/>", b"<transactions/>",
                    b'<transactions id="1"></transactions>'):  # fmt: skip
            sock.sendall(frame_line(bad))
            [(tag, attrs, text)] = results(read_reply(sock))
            assert (tag, attrs) == ("error", {})
            assert text
        sock.sendall(frame_line(f'<create><account id="{who}" balance="1"/></create>'.encode()))
        assert results(read_reply(sock)) == [("created", {"id": who}, "")]
