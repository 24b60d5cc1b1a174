"""The XML reader: every grammar rule, every child-level refusal, and the
echo of order attributes exactly as the client wrote them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bourse.core.commands import (
    AddShares,
    CancelOrder,
    CreateAccount,
    CreateRequest,
    PlaceOrder,
    QueryOrder,
    Rejected,
    Request,
    TransactionsRequest,
)
from bourse.core.errors import ErrorCode
from bourse.protocol.events import RequestError
from bourse.protocol.reader import DEFAULT_LIMITS, ReaderLimits, read_request


def read(xml: str | bytes, limits: ReaderLimits = DEFAULT_LIMITS) -> Request | RequestError:
    body = xml.encode() if isinstance(xml, str) else xml
    return read_request(body, limits)


def create(xml: str) -> CreateRequest:
    request = read(xml)
    assert isinstance(request, CreateRequest), request
    return request


def transactions(xml: str) -> TransactionsRequest:
    request = read(xml)
    assert isinstance(request, TransactionsRequest), request
    return request


def refused(xml: str | bytes, code: ErrorCode, limits: ReaderLimits = DEFAULT_LIMITS) -> str:
    """Asserts the request is refused with ``code``; returns the detail."""
    request = read(xml, limits)
    assert isinstance(request, RequestError), request
    assert request.code is code, request
    assert not request.fatal
    return request.detail


def one_order(attributes: str) -> object:
    """The single command read from ``<order {attributes}/>``."""
    (command,) = transactions(f'<transactions id="1"><order {attributes}/></transactions>').commands
    return command


def order_echo(sym: str, amount: str, limit: str) -> tuple[tuple[str, str], ...]:
    return (("sym", sym), ("amount", amount), ("limit", limit))


# -- <create> ----------------------------------------------------------------


@pytest.mark.parametrize("xml", ["<create/>", "<create></create>", "<create>\n  \t\r\n</create>"])
def test_create_without_children_is_an_empty_request(xml: str) -> None:
    assert create(xml) == CreateRequest(())


def test_create_account_reads_id_and_balance() -> None:
    request = create('<create><account id="007" balance="100.50"/></create>')
    assert request.commands == (CreateAccount("007", Decimal("100.50")),)


def test_create_account_accepts_a_zero_balance() -> None:
    request = create('<create><account id="1" balance="0"/></create>')
    assert request.commands == (CreateAccount("1", Decimal(0)),)


@pytest.mark.parametrize("account_id", ["", "abc", "1a", "-1", " 1", "1.0", "1" * 33, "١"])
def test_create_account_with_a_bad_id_is_rejected_in_place(account_id: str) -> None:
    request = create(f'<create><account id="{account_id}" balance="1"/></create>')
    assert request.commands == (Rejected(ErrorCode.INVALID_ACCOUNT_ID, (("id", account_id),)),)


@pytest.mark.parametrize(
    "balance",
    ["", "-1", "-0.01", "+1", "1e3", "NaN", "Infinity", " 1", "1.", ".5", "1.123456789", "1_0"],
)
def test_create_account_with_a_bad_balance_is_rejected_in_place(balance: str) -> None:
    request = create(f'<create><account id="1" balance="{balance}"/></create>')
    assert request.commands == (Rejected(ErrorCode.INVALID_BALANCE, (("id", "1"),)),)


def test_create_account_id_is_checked_before_balance() -> None:
    request = create('<create><account id="x" balance="-1"/></create>')
    assert request.commands == (Rejected(ErrorCode.INVALID_ACCOUNT_ID, (("id", "x"),)),)


def test_symbol_gives_one_command_per_account_in_order() -> None:
    request = create(
        '<create><symbol sym="SPY">'
        '<account id="1">100</account><account id="2">\n 0.5\t</account>'
        "</symbol></create>",
    )
    assert request.commands == (
        AddShares("SPY", "1", Decimal(100)),
        AddShares("SPY", "2", Decimal("0.5")),
    )


@pytest.mark.parametrize("symbol", ["", "S-P", "SP Y", "SPY!", "É", "S" * 33])
def test_symbol_with_a_bad_name_rejects_each_account_child(symbol: str) -> None:
    request = create(
        f'<create><symbol sym="{symbol}"><account id="1">1</account>'
        '<account id="2">2</account></symbol></create>',
    )
    assert request.commands == (
        Rejected(ErrorCode.INVALID_SYMBOL, (("sym", symbol), ("id", "1"))),
        Rejected(ErrorCode.INVALID_SYMBOL, (("sym", symbol), ("id", "2"))),
    )


def test_symbol_account_with_a_bad_id_is_rejected_in_place() -> None:
    request = create(
        '<create><symbol sym="SPY"><account id="x1">1</account>'
        '<account id="2">2</account></symbol></create>',
    )
    assert request.commands == (
        Rejected(ErrorCode.INVALID_ACCOUNT_ID, (("sym", "SPY"), ("id", "x1"))),
        AddShares("SPY", "2", Decimal(2)),
    )


@pytest.mark.parametrize(
    "shares",
    ["", "  ", "0", "0.0", "-1", "+1", "1e2", "abc", "1 2", "1.5.5", "\u00a05", "5\u2003"],
)
def test_symbol_account_with_bad_shares_is_rejected_in_place(shares: str) -> None:
    request = create(
        f'<create><symbol sym="SPY"><account id="1">{shares}</account></symbol></create>'
    )
    assert request.commands == (Rejected(ErrorCode.INVALID_SHARES, (("sym", "SPY"), ("id", "1"))),)


def test_symbol_account_text_may_be_cdata_or_split_by_a_comment() -> None:
    request = create(
        '<create><symbol sym="SPY"><account id="1"><![CDATA[12]]></account>'
        '<account id="2">1<!-- note -->5</account></symbol></create>',
    )
    assert request.commands == (
        AddShares("SPY", "1", Decimal(12)),
        AddShares("SPY", "2", Decimal(15)),
    )


def test_symbol_checks_symbol_then_account_then_shares() -> None:
    request = create(
        '<create><symbol sym="!"><account id="x">0</account></symbol>'
        '<symbol sym="A"><account id="x">0</account></symbol></create>',
    )
    assert [command.code for command in request.commands if isinstance(command, Rejected)] == [
        ErrorCode.INVALID_SYMBOL,
        ErrorCode.INVALID_ACCOUNT_ID,
    ]


def test_create_keeps_document_order_across_valid_and_rejected_children() -> None:
    request = create(
        "<create>\n"
        '  <account id="1" balance="10"/>\n'
        '  <account id="bad" balance="10"/>\n'
        '  <symbol sym="SPY"><account id="1">5</account></symbol>\n'
        '  <account id="2" balance="-3"/>\n'
        "</create>\n",
    )
    assert request.commands == (
        CreateAccount("1", Decimal(10)),
        Rejected(ErrorCode.INVALID_ACCOUNT_ID, (("id", "bad"),)),
        AddShares("SPY", "1", Decimal(5)),
        Rejected(ErrorCode.INVALID_BALANCE, (("id", "2"),)),
    )


@pytest.mark.parametrize(
    ("xml", "detail"),
    [
        ('<create id="1"/>', "unexpected attribute 'id' on <create>"),
        ("<create><foo/></create>", "unknown element <foo> in <create>"),
        ('<create><order sym="A" amount="1" limit="1"/></create>', "unknown element <order>"),
        ("<create>hello</create>", "unexpected text in <create>"),
        ('<create><account id="1" balance="1"/>x</create>', "unexpected text in <create>"),
        ('<create><account balance="1">5</account></create>', "unexpected text in <account>"),
        (
            '<create><account id="1" balance="1"><a/></account></create>',
            "unknown element <a> in <account>",
        ),
        (
            '<create><account id="1" balance="1">5</account></create>',
            "unexpected text in <account>",
        ),
        ("<create><symbol sym='A'/></create>", "<symbol> needs at least one <account>"),
        ("<create><symbol/></create>", "<symbol> needs at least one <account>"),
        ("<create><symbol sym='A'>  </symbol></create>", "<symbol> needs at least one <account>"),
        (
            "<create><symbol sym='A'><account id='1'>1</account><foo/></symbol></create>",
            "unknown element <foo> in <symbol>",
        ),
        (
            "<create><symbol sym='A'>x<account id='1'>1</account></symbol></create>",
            "unexpected text in <symbol>",
        ),
        (
            "<create><symbol sym='A'><account id='1'>1</account>x</symbol></create>",
            "unexpected text in <symbol>",
        ),
        (
            "<create><symbol sym='A'><account id='1'>1<b/></account></symbol></create>",
            "unknown element <b> in <account>",
        ),
        (
            "<create><symbol><account id='1'>1</account><foo/></symbol></create>",
            "unknown element <foo> in <symbol>",
        ),
        (
            "<create><symbol x='1'><account>1<b/></account></symbol></create>",
            "unknown element <b> in <account>",
        ),
    ],
)
def test_create_grammar_violations_refuse_the_whole_request(xml: str, detail: str) -> None:
    assert detail in refused(xml, ErrorCode.INVALID_REQUEST)


def test_a_grammar_violation_after_valid_children_still_refuses_everything() -> None:
    refused(
        '<create><account id="1" balance="1"/><account balance="1"/><foo/></create>',
        ErrorCode.INVALID_REQUEST,
    )


@pytest.mark.parametrize(
    ("child", "expected"),
    [
        ('<account balance="1"/>', Rejected(ErrorCode.MISSING_ID, ())),
        ("<account/>", Rejected(ErrorCode.MISSING_ID, ())),
        ('<account id="1"/>', Rejected(ErrorCode.MISSING_BALANCE, (("id", "1"),))),
        ('<account id="x" x="2"/>', Rejected(ErrorCode.MISSING_BALANCE, (("id", "x"),))),
        (
            '<account id="1" balance="1" x="2"/>',
            Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, (("id", "1"),)),
        ),
        (
            '<account id="x" balance="-1" xmlns:n="urn:x" n:id="1"/>',
            Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, (("id", "x"),)),
        ),
        (
            "<symbol sym='A'><account>1</account></symbol>",
            Rejected(ErrorCode.MISSING_ID, (("sym", "A"),)),
        ),
        (
            "<symbol sym='!'><account>0</account></symbol>",
            Rejected(ErrorCode.MISSING_ID, (("sym", "!"),)),
        ),
        (
            "<symbol sym='A'><account id='1' balance='1'>1</account></symbol>",
            Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, (("sym", "A"), ("id", "1"))),
        ),
    ],
)
def test_create_child_with_wrong_attributes_is_rejected_in_place(
    child: str, expected: Rejected
) -> None:
    request = create(
        f'<create><account id="1" balance="1"/>{child}<account id="2" balance="2"/></create>'
    )
    assert request.commands == (
        CreateAccount("1", Decimal(1)),
        expected,
        CreateAccount("2", Decimal(2)),
    )


def test_symbol_without_sym_rejects_each_of_its_accounts_in_place() -> None:
    request = create(
        "<create><symbol><account id='1'>1</account><account>2</account>"
        "<account id='3' x='y'>x</account></symbol>"
        "<symbol sym='A'><account id='4'>4</account></symbol></create>"
    )
    assert request.commands == (
        Rejected(ErrorCode.MISSING_SYMBOL, (("id", "1"),)),
        Rejected(ErrorCode.MISSING_SYMBOL, ()),
        Rejected(ErrorCode.MISSING_SYMBOL, (("id", "3"),)),
        AddShares("A", "4", Decimal(4)),
    )


def test_symbol_with_an_unexpected_attribute_rejects_each_of_its_accounts_in_place() -> None:
    request = create(
        "<create><symbol sym='A' x='1'><account id='1'>1</account>"
        "<account id='2'>2</account></symbol></create>"
    )
    assert request.commands == (
        Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, (("sym", "A"), ("id", "1"))),
        Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, (("sym", "A"), ("id", "2"))),
    )


def test_nesting_deeper_than_the_grammar_is_invalid() -> None:
    detail = refused(
        "<create><symbol sym='A'><account id='1'><a><b/></a></account></symbol></create>",
        ErrorCode.INVALID_REQUEST,
    )
    assert "unknown element <a> in <account>" in detail


# -- <transactions> ----------------------------------------------------------


def test_transactions_reads_each_kind_of_child_in_order() -> None:
    request = transactions(
        '<transactions id="123">\n'
        '  <order sym="SPY" amount="100" limit="125.5"/>\n'
        '  <order sym="BTC" amount="-0.5" limit="30000"/>\n'
        '  <query id="7"/>\n'
        '  <cancel id="8"/>\n'
        "</transactions>",
    )
    assert request == TransactionsRequest(
        "123",
        (
            PlaceOrder("SPY", Decimal(100), Decimal("125.5"), order_echo("SPY", "100", "125.5")),
            PlaceOrder("BTC", Decimal("-0.5"), Decimal(30000), order_echo("BTC", "-0.5", "30000")),
            QueryOrder(7, (("id", "7"),)),
            CancelOrder(8, (("id", "8"),)),
        ),
    )


@pytest.mark.parametrize("account_id", ["abc", "", "007", "-1"])
def test_transactions_account_id_is_passed_through_unchecked(account_id: str) -> None:
    request = transactions(f'<transactions id="{account_id}"><query id="1"/></transactions>')
    assert request.account_id == account_id


def test_order_attributes_may_come_in_any_order() -> None:
    assert one_order('limit="2" sym="A" amount="1"') == PlaceOrder(
        "A", Decimal(1), Decimal(2), order_echo("A", "1", "2")
    )


@pytest.mark.parametrize(
    ("amount", "limit", "value_amount", "value_limit"),
    [
        ("0100", "125.50", Decimal(100), Decimal("125.5")),
        ("-007", "0.00000001", Decimal(-7), Decimal("0.00000001")),
        ("1.00000000", "999999999999999.99999999", Decimal(1), Decimal("999999999999999.99999999")),
    ],
)
def test_order_echo_keeps_the_attribute_text_exactly(
    amount: str, limit: str, value_amount: Decimal, value_limit: Decimal
) -> None:
    command = one_order(f'sym="SPY" amount="{amount}" limit="{limit}"')
    assert command == PlaceOrder("SPY", value_amount, value_limit, order_echo("SPY", amount, limit))


def test_order_attribute_values_are_read_after_xml_escapes() -> None:
    command = one_order('sym="&#83;PY" amount="1" limit="2"')
    assert isinstance(command, PlaceOrder)
    assert command.symbol == "SPY"
    assert command.echo[0] == ("sym", "SPY")


@pytest.mark.parametrize("symbol", ["", "S&amp;P", "SP Y", "S-P", "S" * 33, "Ä"])
def test_order_with_a_bad_symbol_is_rejected(symbol: str) -> None:
    command = one_order(f'sym="{symbol}" amount="1" limit="1"')
    assert isinstance(command, Rejected)
    assert command.code is ErrorCode.INVALID_SYMBOL
    assert command.echo == order_echo(symbol.replace("&amp;", "&"), "1", "1")


@pytest.mark.parametrize(
    "amount", ["+5", "0", "-0", "0.0", "-0.000", "", " 5", "5 ", "1e2", "abc", "1.123456789"]
)
def test_order_with_a_bad_amount_is_rejected_with_its_echo(amount: str) -> None:
    command = one_order(f'sym="SPY" amount="{amount}" limit="1"')
    assert command == Rejected(ErrorCode.INVALID_AMOUNT, order_echo("SPY", amount, "1"))


@pytest.mark.parametrize("limit", ["0", "-1", "-0.5", "", "+1", "x", "1e1", "NaN"])
def test_order_with_a_bad_limit_is_rejected_with_its_echo(limit: str) -> None:
    command = one_order(f'sym="SPY" amount="1" limit="{limit}"')
    assert command == Rejected(ErrorCode.INVALID_LIMIT, order_echo("SPY", "1", limit))


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ('sym="!" amount="0" limit="0"', ErrorCode.INVALID_SYMBOL),
        ('sym="A" amount="0" limit="0"', ErrorCode.INVALID_AMOUNT),
        ('sym="A" amount="1" limit="0"', ErrorCode.INVALID_LIMIT),
    ],
)
def test_order_checks_symbol_then_amount_then_limit(attributes: str, code: ErrorCode) -> None:
    command = one_order(attributes)
    assert isinstance(command, Rejected)
    assert command.code is code


@pytest.mark.parametrize(("tag", "command_type"), [("query", QueryOrder), ("cancel", CancelOrder)])
def test_query_and_cancel_read_the_order_id(
    tag: str, command_type: type[QueryOrder] | type[CancelOrder]
) -> None:
    request = transactions(f'<transactions id="1"><{tag} id="123456789"/></transactions>')
    assert request.commands == (command_type(123456789, (("id", "123456789"),)),)


@pytest.mark.parametrize("tag", ["query", "cancel"])
@pytest.mark.parametrize("order_id", ["0", "-1", "abc", "05", "", " 5", "1" * 19, "1.0"])
def test_query_and_cancel_with_a_bad_order_id_are_rejected(tag: str, order_id: str) -> None:
    request = transactions(f'<transactions id="1"><{tag} id="{order_id}"/></transactions>')
    assert request.commands == (Rejected(ErrorCode.INVALID_ORDER_ID, (("id", order_id),)),)


def test_rejected_children_keep_their_place_among_the_others() -> None:
    request = transactions(
        '<transactions id="1">'
        '<order sym="A" amount="1" limit="1"/>'
        '<order sym="A" amount="0" limit="1"/>'
        '<query id="x"/>'
        '<cancel id="3"/>'
        "</transactions>",
    )
    assert [type(command) for command in request.commands] == [
        PlaceOrder,
        Rejected,
        Rejected,
        CancelOrder,
    ]


def test_transactions_without_id_is_invalid() -> None:
    detail = refused("<transactions><query id='1'/></transactions>", ErrorCode.INVALID_REQUEST)
    assert detail == "transactions needs an id"


@pytest.mark.parametrize(
    "xml",
    [
        '<transactions id="1"/>',
        '<transactions id="1">\n  </transactions>',
        '<transactions id="1"><!-- nothing --><?pi x?></transactions>',
    ],
)
def test_transactions_without_children_is_empty(xml: str) -> None:
    refused(xml, ErrorCode.EMPTY_TRANSACTIONS)


@pytest.mark.parametrize(
    ("xml", "detail"),
    [
        ('<transactions id="1" x="2"><query id="1"/></transactions>', "unexpected attribute 'x'"),
        ('<transactions id="1"><foo/></transactions>', "unknown element <foo> in <transactions>"),
        (
            '<transactions id="1"><account id="1" balance="1"/></transactions>',
            "unknown element <account> in <transactions>",
        ),
        ('<transactions id="1">x<query id="1"/></transactions>', "unexpected text"),
        ('<transactions id="1"><query id="1"/>x</transactions>', "unexpected text"),
        (
            '<transactions id="1" xmlns:n="urn:x" n:id="2"><query id="1"/></transactions>',
            "unexpected attribute '{urn:x}id' on <transactions>",
        ),
        (
            '<transactions id="1"><order sym="A" amount="1" limit="1">5</order></transactions>',
            "unexpected text in <order>",
        ),
        (
            '<transactions id="1"><order sym="A" amount="1" limit="1"><q/></order></transactions>',
            "unknown element <q> in <order>",
        ),
        ('<transactions id="1"><order sym="A">5</order></transactions>', "text in <order>"),
        ('<transactions id="1"><query>1</query></transactions>', "text in <query>"),
        ('<transactions id="1"><cancel id="1">1</cancel></transactions>', "text in <cancel>"),
        ('<transactions id="1"><query id="1"><a/></query></transactions>', "<a> in <query>"),
    ],
)
def test_transactions_grammar_violations_refuse_the_whole_request(xml: str, detail: str) -> None:
    assert detail in refused(xml, ErrorCode.INVALID_REQUEST)


@pytest.mark.parametrize(
    ("child", "expected"),
    [
        (
            '<order amount="1" limit="1"/>',
            Rejected(ErrorCode.MISSING_SYMBOL, (("amount", "1"), ("limit", "1"))),
        ),
        (
            '<order limit="2" sym="A"/>',
            Rejected(ErrorCode.MISSING_AMOUNT, (("sym", "A"), ("limit", "2"))),
        ),
        (
            '<order sym="A" amount="1"/>',
            Rejected(ErrorCode.MISSING_LIMIT, (("sym", "A"), ("amount", "1"))),
        ),
        (
            '<order sym="!" amount="0" x="1"/>',
            Rejected(ErrorCode.MISSING_LIMIT, (("sym", "!"), ("amount", "0"))),
        ),
        ("<order/>", Rejected(ErrorCode.MISSING_SYMBOL, ())),
        (
            '<order sym="A" amount="1" limit="1" x="1"/>',
            Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, order_echo("A", "1", "1")),
        ),
        ("<query/>", Rejected(ErrorCode.MISSING_ID, ())),
        ('<cancel x="1"/>', Rejected(ErrorCode.MISSING_ID, ())),
        ('<cancel id="x" y="1"/>', Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, (("id", "x"),))),
        (
            '<query id="1" xmlns:n="urn:x" n:id="2"/>',
            Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, (("id", "1"),)),
        ),
    ],
)
def test_transactions_child_with_wrong_attributes_is_rejected_in_place(
    child: str, expected: Rejected
) -> None:
    request = transactions(
        f'<transactions id="1"><query id="1"/>{child}<cancel id="2"/></transactions>'
    )
    assert request.commands == (
        QueryOrder(1, (("id", "1"),)),
        expected,
        CancelOrder(2, (("id", "2"),)),
    )


# -- document level ----------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "named"),
    [
        ("<results/>", "<results>"),
        ("<Create/>", "<Create>"),
        ('<create xmlns="urn:x"/>', "<{urn:x}create>"),
    ],
)
def test_unknown_root_is_refused_by_name(xml: str, named: str) -> None:
    assert refused(xml, ErrorCode.UNKNOWN_ROOT) == named


def test_unknown_root_name_is_truncated_in_the_detail() -> None:
    detail = refused(f"<{'r' * 40_000}/>", ErrorCode.UNKNOWN_ROOT)
    assert len(detail) < 100


def test_comments_processing_instructions_and_whitespace_are_ignored() -> None:
    request = transactions(
        '<?xml version="1.0"?>\n<!-- header -->\n<?app hint?>\n'
        '<transactions id="1">\n  <!-- c --> <?pi?>\n  <query id="1"/>\n</transactions>\n'
        "<!-- end -->\n",
    )
    assert request.commands == (QueryOrder(1, (("id", "1"),)),)


@pytest.mark.parametrize(
    "declaration",
    [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<?xml version='1.0' encoding='utf-8'?>",
        '<?xml version="1.0" encoding="US-ASCII"?>',
        '<?xml version="1.0" encoding="ascii" standalone="yes"?>',
        '<?xml version="1.0"?>',
        "",
    ],
)
def test_utf8_and_ascii_declarations_are_accepted(declaration: str) -> None:
    assert create(f"{declaration}<create/>") == CreateRequest(())


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    assert read(b"\xef\xbb\xbf<create/>") == CreateRequest(())


def test_non_ascii_text_in_utf8_is_read() -> None:
    command = one_order('sym="\u00c9" amount="1" limit="1"')
    assert command == Rejected(ErrorCode.INVALID_SYMBOL, order_echo("\u00c9", "1", "1"))


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "latin1", "UTF-16", "windows-1252", "UTF8"])
def test_other_declared_encodings_are_unsupported(encoding: str) -> None:
    detail = refused(
        f'<?xml version="1.0" encoding="{encoding}"?><create/>', ErrorCode.UNSUPPORTED_ENCODING
    )
    assert encoding in detail


@pytest.mark.parametrize(
    "xml",
    [
        b"",
        b"   ",
        b"hello",
        b"<create>",
        b"<create></transactions>",
        b"<create/><create/>",
        b"<create/>trailing",
        b'<create><account id="1" balance="1"></create>',
        b"<create>&undefined;</create>",
        b'<create><account id="1" id="2" balance="1"/></create>',
        b"<n:create/>",
        b"<create>\x01</create>",
        b"\xff<create/>",
    ],
)
def test_malformed_xml_is_refused(xml: bytes) -> None:
    detail = refused(xml, ErrorCode.MALFORMED_XML)
    assert 0 < len(detail) <= 210
    assert "\n" not in detail


# -- limits ------------------------------------------------------------------


def test_max_children_counts_transactions_commands() -> None:
    limits = ReaderLimits(max_children=3)
    three = '<transactions id="1">' + '<query id="1"/>' * 3 + "</transactions>"
    four = '<transactions id="1">' + '<query id="1"/>' * 4 + "</transactions>"
    assert isinstance(read(three, limits), TransactionsRequest)
    assert "3" in refused(four, ErrorCode.REQUEST_TOO_LARGE, limits)


def test_max_children_counts_each_symbol_account_pair() -> None:
    limits = ReaderLimits(max_children=3)
    pair = '<symbol sym="A"><account id="1">1</account><account id="2">1</account></symbol>'
    account = '<account id="3" balance="1"/>'
    assert isinstance(read(f"<create>{account}{pair}</create>", limits), CreateRequest)
    refused(f"<create>{account}{pair}{account}</create>", ErrorCode.REQUEST_TOO_LARGE, limits)
    refused(f"<create>{pair}{pair}</create>", ErrorCode.REQUEST_TOO_LARGE, limits)


def test_default_limit_allows_a_hundred_thousand_commands() -> None:
    assert DEFAULT_LIMITS.max_children == 100_000
    body = '<transactions id="1">' + '<cancel id="1"/>' * 100_000 + "</transactions>"
    request = read(body)
    assert isinstance(request, TransactionsRequest)
    assert len(request.commands) == 100_000
