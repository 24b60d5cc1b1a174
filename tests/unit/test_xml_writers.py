"""The one escaping and the one length line that every writer of the protocol
uses: the reply renderer, the load generator's request writer and the health
probe. Whatever a writer escapes must parse back to the value (non-XML
characters aside), and whatever it frames the decoder must read back whole."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from bourse.bench.xml import create_xml, frame, transactions_xml
from bourse.core.commands import (
    AddShares,
    CreateAccount,
    CreateRequest,
    PlaceOrder,
    Rejected,
    TransactionsRequest,
)
from bourse.core.errors import ErrorCode
from bourse.health import FRAMED_PROBE, PROBE
from bourse.protocol.bare_xml import BareXmlScanner
from bourse.protocol.events import NEED_DATA, Frame, RequestError
from bourse.protocol.framing import FrameDecoder, frame_request
from bourse.protocol.reader import read_request
from bourse.protocol.xmltext import attributes, escape_attribute, escape_text
from tests.builders import cancel, order, query

NOT_XML = {chr(code) for code in [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]} | {
    "\ufffe",
    "\uffff",
}


def readable(value: str) -> str:
    """``value`` as an XML parser gives it back once written: characters XML
    cannot carry become U+FFFD."""
    return "".join(
        "\ufffd" if char in NOT_XML or "\ud800" <= char <= "\udfff" else char for char in value
    )


# -- escaping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "attribute", "text"),
    [
        ("plain 1.5", "plain 1.5", "plain 1.5"),
        ("a&b<c>d", "a&amp;b&lt;c&gt;d", "a&amp;b&lt;c&gt;d"),
        ('say "hi"', "say &quot;hi&quot;", "say &quot;hi&quot;"),
        ("it's", "it's", "it's"),
        ("a\tb\nc", "a&#9;b&#10;c", "a\tb\nc"),
        ("a\rb", "a&#13;b", "a&#13;b"),
        ("x\x00y\ud800\ufffe", "x\ufffdy\ufffd\ufffd", "x\ufffdy\ufffd\ufffd"),
    ],
)
def test_escaping(value: str, attribute: str, text: str) -> None:
    assert escape_attribute(value) == attribute
    assert escape_text(value) == text


def test_a_value_needing_no_escape_is_returned_as_is() -> None:
    value = "".join(["SYM", "123"])
    assert escape_attribute(value) is value
    assert escape_text(value) is value


def test_attributes_are_written_in_order() -> None:
    assert attributes((("sym", "<"), ("id", "7"))) == ' sym="&lt;" id="7"'
    assert attributes(()) == ""


@given(st.text())
def test_escaped_values_parse_back(value: str) -> None:
    document = f'<a v="{escape_attribute(value)}">{escape_text(value)}</a>'.encode(
        "utf-8", "surrogatepass"
    )
    element = etree.fromstring(document)
    assert element.get("v") == readable(value)
    assert (element.text or "") == readable(value)


# -- the length line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml", [b"<create/>", b"<a>" + b"x" * 1000 + b"</a>", b'<?xml version="1.0"?><a>\xc3\xa9</a>']
)
def test_frame_request_is_read_back_whole(xml: bytes) -> None:
    framed = frame_request(xml)
    assert framed == str(len(xml)).encode() + b"\n" + xml
    decoder = FrameDecoder()
    decoder.feed(framed + framed)
    assert [decoder.next_event(), decoder.next_event()] == [Frame(xml), Frame(xml)]
    assert decoder.next_event() is NEED_DATA


def test_every_client_frames_the_same_way() -> None:
    assert frame is frame_request
    assert FRAMED_PROBE == frame_request(PROBE) == b"9\n<create/>"


# -- the load generator's requests ---------------------------------------------------------------


def test_requests_are_written_as_before() -> None:
    request = TransactionsRequest("7", (order("SPY", "-10", "1.5"), query(3), cancel(4)))
    assert transactions_xml(request) == (
        b'<transactions id="7"><order sym="SPY" amount="-10" limit="1.5"/>'
        b'<query id="3"/><cancel id="4"/></transactions>'
    )
    setup = CreateRequest(
        (CreateAccount("1", Decimal("100.50")), AddShares("SPY", "1", Decimal("20")))
    )
    assert list(create_xml(setup)) == [
        b'<create><account id="1" balance="100.5"/>'
        b'<symbol sym="SPY"><account id="1">20</account></symbol></create>'
    ]


def test_hostile_echo_values_read_back_as_sent() -> None:
    echo = (("sym", 'A"&<'), ("amount", "1\t"), ("limit", "'\n"))
    placed = PlaceOrder("A", Decimal(1), Decimal(1), echo)
    request = read_request(transactions_xml(TransactionsRequest('9"\r', (placed,))))
    assert isinstance(request, TransactionsRequest)
    assert request.account_id == '9"\r'
    [refused] = request.commands
    assert refused == Rejected(ErrorCode.INVALID_SYMBOL, echo)


def test_create_requests_are_split_and_read_back() -> None:
    commands = tuple(CreateAccount(str(index), Decimal(index)) for index in range(5))
    documents = list(create_xml(CreateRequest(commands), children_per_request=2))
    assert len(documents) == 3
    read_back = [read_request(document) for document in documents]
    assert all(isinstance(request, CreateRequest) for request in read_back)
    assert (
        tuple(
            command
            for request in read_back
            if isinstance(request, CreateRequest)
            for command in request.commands
        )
        == commands
    )


# -- the bare-XML scanner on its own --------------------------------------------------------------


def test_scanner_resumes_where_it_stopped() -> None:
    document = b'<a x=">"><!-- </a> --><b/></a>'
    buffer = bytearray()
    scanner = BareXmlScanner()
    outcomes = []
    for byte in document + b"<next/>":
        buffer.append(byte)
        outcomes.append(scanner.scan(buffer, len(buffer)))
    assert outcomes.index(len(document)) == len(document) - 1
    assert set(outcomes[: len(document) - 1]) == {None}


def test_scanner_refuses_a_doctype() -> None:
    outcome = BareXmlScanner().scan(bytearray(b"<!DOCTYPE a><a/>"), 16)
    assert isinstance(outcome, RequestError)
    assert outcome.code is ErrorCode.FORBIDDEN_XML
    assert outcome.fatal
