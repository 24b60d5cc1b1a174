"""The results renderer: exact bytes for every kind of result, escaping of
whatever the client sent, canonical numbers, and output that lxml reads back
as the intended structure."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from bourse.core.errors import ErrorCode
from bourse.core.results import (
    AccountCreated,
    Canceled,
    Error,
    Execution,
    Opened,
    OrderState,
    Result,
    SharesCreated,
    Status,
)
from bourse.protocol.events import RequestError
from bourse.protocol.render import render_error, render_results

HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<results>\n'
TAIL = b"</results>\n"
ECHO = (("sym", "SPY"), ("amount", "0100"), ("limit", "125.50"))


def line(result: Result) -> bytes:
    """The single line ``result`` renders to, checked to be framed right."""
    document = render_results([result])
    assert document.startswith(HEAD)
    assert document.endswith(TAIL)
    body = document[len(HEAD) : -len(TAIL)]
    assert body.count(b"\n") == 1
    assert body.endswith(b"\n")
    return body[:-1]


def state(
    open_shares: str = "0",
    canceled_shares: str = "0",
    canceled_at: int | None = None,
    executions: tuple[Execution, ...] = (),
) -> OrderState:
    return OrderState(7, Decimal(open_shares), Decimal(canceled_shares), canceled_at, executions)


def fill(shares: str, price: str, time: int) -> Execution:
    return Execution(Decimal(shares), Decimal(price), time)


# -- the document ------------------------------------------------------------


def test_no_results_still_give_an_opening_and_a_closing_tag() -> None:
    assert render_results([]) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<results>\n</results>\n'
    )


def test_results_come_one_per_line_in_order() -> None:
    document = render_results([AccountCreated("1"), AccountCreated("2"), AccountCreated("3")])
    assert document == HEAD + b'<created id="1"/>\n<created id="2"/>\n<created id="3"/>\n' + TAIL


def test_request_error_renders_its_message_alone() -> None:
    error = RequestError(ErrorCode.MALFORMED_XML, "Document is empty")
    assert render_error(error) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<results>\n'
        b"<error>Malformed XML: Document is empty</error>\n</results>\n"
    )


def test_request_error_without_detail_renders_the_code_message() -> None:
    error = RequestError(ErrorCode.EMPTY_TRANSACTIONS)
    assert render_error(error) == (
        HEAD + b"<error>Transactions request has no children</error>\n" + TAIL
    )


def test_request_error_detail_is_escaped() -> None:
    error = RequestError(ErrorCode.UNKNOWN_ROOT, '<a&b "c">')
    assert render_error(error) == (
        HEAD + b"<error>Unknown request type: &lt;a&amp;b &quot;c&quot;&gt;</error>\n" + TAIL
    )


# -- each kind of result -----------------------------------------------------


def test_account_created() -> None:
    assert line(AccountCreated("007")) == b'<created id="007"/>'


def test_shares_created() -> None:
    assert line(SharesCreated("SPY", "12")) == b'<created sym="SPY" id="12"/>'


def test_opened_echoes_attributes_in_order_then_the_id() -> None:
    assert line(Opened(ECHO, 42)) == (b'<opened sym="SPY" amount="0100" limit="125.50" id="42"/>')


def test_error_carries_its_echo_and_message() -> None:
    assert line(Error(ErrorCode.INSUFFICIENT_FUNDS, ECHO)) == (
        b'<error sym="SPY" amount="0100" limit="125.50">Insufficient funds</error>'
    )


def test_error_of_a_create_child() -> None:
    echo = (("sym", "SPY"), ("id", "9"))
    assert line(Error(ErrorCode.ACCOUNT_NOT_FOUND, echo)) == (
        b'<error sym="SPY" id="9">Account does not exist</error>'
    )


def test_error_without_echo() -> None:
    assert line(Error(ErrorCode.INVALID_REQUEST, ())) == b"<error>Invalid request</error>"


def test_status_of_an_open_partly_filled_order() -> None:
    result = Status(state("100", executions=(fill("200", "125", 1519348326),)))
    assert line(result) == (
        b'<status id="7"><open shares="100"/>'
        b'<executed shares="200" price="125" time="1519348326"/></status>'
    )


def test_status_of_a_canceled_order_lists_canceled_then_fills_oldest_first() -> None:
    fills = (fill("1", "10", 100), fill("2", "11", 101))
    result = Status(state(canceled_shares="3", canceled_at=102, executions=fills))
    assert line(result) == (
        b'<status id="7"><canceled shares="3" time="102"/>'
        b'<executed shares="1" price="10" time="100"/>'
        b'<executed shares="2" price="11" time="101"/></status>'
    )


def test_status_of_a_filled_order_has_no_open_element() -> None:
    result = Status(state(executions=(fill("5", "1", 1),)))
    assert line(result) == (b'<status id="7"><executed shares="5" price="1" time="1"/></status>')


def test_status_of_an_untouched_order_shows_only_open() -> None:
    assert line(Status(state("10"))) == b'<status id="7"><open shares="10"/></status>'


def test_canceled_lists_canceled_and_fills_and_never_open() -> None:
    result = Canceled(state("4", "6", 200, (fill("4", "3.5", 150),)))
    assert line(result) == (
        b'<canceled id="7"><canceled shares="6" time="200"/>'
        b'<executed shares="4" price="3.5" time="150"/></canceled>'
    )


def test_canceled_with_canceled_shares_but_no_time_omits_the_canceled_child() -> None:
    assert line(Canceled(state(canceled_shares="1"))) == b'<canceled id="7"></canceled>'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("125.500", b"125.5"),
        ("1E+2", b"100"),
        ("100", b"100"),
        ("0.50", b"0.5"),
        ("0.00000001", b"0.00000001"),
        ("123456789012345.12345678", b"123456789012345.12345678"),
    ],
)
def test_numbers_are_canonical(value: str, text: bytes) -> None:
    result = Status(state(value, executions=(fill(value, value, 1),)))
    expected = (
        b'<status id="7"><open shares="' + text + b'"/><executed shares="' + text + b'" price="'
    )
    assert line(result).startswith(expected + text + b'" time="1"/>')


# -- escaping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("a&b", b"a&amp;b"),
        ("<x>", b"&lt;x&gt;"),
        ('say "hi"', b"say &quot;hi&quot;"),
        ("it's", b"it's"),
        ("a\tb\nc\rd", b"a&#9;b&#10;c&#13;d"),
        ("&amp;", b"&amp;amp;"),
        ("\u00e9\u20ac", "\u00e9\u20ac".encode()),
        ("a\x01b\x1fc", "a\ufffdb\ufffdc".encode()),
        ("\ud800", "\ufffd".encode()),
        ("\ufffe\uffff", "\ufffd\ufffd".encode()),
    ],
)
def test_attribute_values_are_escaped(value: str, written: bytes) -> None:
    result = Error(ErrorCode.INVALID_SYMBOL, (("sym", value),))
    assert line(result) == b'<error sym="' + written + b'">Invalid symbol</error>'


def test_every_echoed_attribute_is_escaped() -> None:
    echo = (("sym", "<"), ("amount", "&"), ("limit", '"'))
    assert line(Opened(echo, 1)) == (b'<opened sym="&lt;" amount="&amp;" limit="&quot;" id="1"/>')


def test_created_ids_are_escaped_too() -> None:
    assert line(SharesCreated("<", "&")) == b'<created sym="&lt;" id="&amp;"/>'


@pytest.mark.parametrize(
    ("detail", "written"),
    [
        ("a\tb\nc", b"a\tb\nc"),
        ("a\rb", b"a&#13;b"),
        ("x\x00y", "x\ufffdy".encode()),
        ("<&>", b"&lt;&amp;&gt;"),
    ],
)
def test_text_is_escaped(detail: str, written: bytes) -> None:
    document = render_error(RequestError(ErrorCode.INVALID_REQUEST, detail))
    assert document == HEAD + b"<error>Invalid request: " + written + b"</error>\n" + TAIL


# -- round trip --------------------------------------------------------------


def test_output_parses_as_the_intended_structure() -> None:
    results: list[Result] = [
        AccountCreated("1"),
        SharesCreated("SPY", "1"),
        Opened(ECHO, 3),
        Error(ErrorCode.INSUFFICIENT_SHARES, ECHO),
        Status(state("1", executions=(fill("2", "3", 4),))),
        Canceled(state(canceled_shares="5", canceled_at=6)),
    ]
    root = etree.fromstring(render_results(results))
    assert root.tag == "results"
    assert [(child.tag, dict(child.items())) for child in root] == [
        ("created", {"id": "1"}),
        ("created", {"sym": "SPY", "id": "1"}),
        ("opened", {"sym": "SPY", "amount": "0100", "limit": "125.50", "id": "3"}),
        ("error", {"sym": "SPY", "amount": "0100", "limit": "125.50"}),
        ("status", {"id": "7"}),
        ("canceled", {"id": "7"}),
    ]
    assert root[3].text == "Insufficient shares"
    assert [(child.tag, dict(child.items())) for child in root[4]] == [
        ("open", {"shares": "1"}),
        ("executed", {"shares": "2", "price": "3", "time": "4"}),
    ]
    assert [(child.tag, dict(child.items())) for child in root[5]] == [
        ("canceled", {"shares": "5", "time": "6"}),
    ]


XML_CHARACTERS = st.characters(exclude_categories=["Cs"]).filter(
    lambda c: c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff")
)


@given(st.lists(st.text(XML_CHARACTERS, max_size=20), min_size=1, max_size=3))
def test_attribute_values_survive_a_parse_exactly(values: list[str]) -> None:
    echo = tuple((f"a{index}", value) for index, value in enumerate(values))
    root = etree.fromstring(render_results([Error(ErrorCode.INVALID_AMOUNT, echo)]))
    assert tuple(root[0].items()) == echo


@given(st.text(XML_CHARACTERS, max_size=40))
def test_error_text_survives_a_parse_exactly(detail: str) -> None:
    root = etree.fromstring(render_error(RequestError(ErrorCode.INVALID_REQUEST, detail)))
    assert root[0].text == RequestError(ErrorCode.INVALID_REQUEST, detail).message


@given(st.text(max_size=20))
def test_any_string_renders_to_a_document_that_parses(value: str) -> None:
    document = render_results([Error(ErrorCode.INVALID_SYMBOL, (("sym", value),))])
    assert etree.fromstring(document)[0].get("sym") is not None
