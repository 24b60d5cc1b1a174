"""Speed of the XML codec: what each request costs a gateway in parsing and
rendering, and the measurements behind two choices (docs/xml-parsing.md).

- lxml (hardened) against defusedxml (``forbid_dtd=True``) for parsing, each
  followed by the same walk over every element, attribute and text, since a
  parse is only useful with the walk after it;
- string building against an lxml element tree for rendering.

The suite runs with ``--benchmark-disable``, so each benchmark runs once as
a test and asserts its output; for figures run
``.venv/bin/pytest tests/benchmarks/test_codec_speed.py --benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Protocol

import pytest
from defusedxml.ElementTree import fromstring as defused_fromstring
from lxml import etree
from pytest_benchmark.fixture import BenchmarkFixture

from bourse.core.commands import CreateRequest, TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.core.money import format_decimal
from bourse.core.results import (
    Error,
    Execution,
    Opened,
    OrderState,
    Result,
    Status,
)
from bourse.protocol.reader import _PARSER, read_request
from bourse.protocol.render import render_results

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def transactions_body(order_count: int) -> bytes:
    orders = "".join(
        f'  <order sym="SYM{index % 7}" amount="{index % 50 - 25 or 1}"'
        f' limit="{100 + index}.25"/>\n'
        for index in range(order_count)
    )
    return f'{HEAD}<transactions id="12345">\n{orders}</transactions>\n'.encode()


def create_body(account_count: int) -> bytes:
    accounts = "".join(
        f'  <account id="{index}" balance="{index * 10}.5"/>\n' for index in range(account_count)
    )
    return f"{HEAD}<create>\n{accounts}</create>\n".encode()


ONE_ORDER = transactions_body(1)
HUNDRED_ORDERS = transactions_body(100)
THOUSAND_ACCOUNTS = create_body(1000)
DOCUMENTS = {
    "1-order": (ONE_ORDER, 1),
    "100-order": (HUNDRED_ORDERS, 100),
    "1000-account": (THOUSAND_ACCOUNTS, 1000),
}


def opened_results(body: bytes) -> list[Result]:
    """What the engine would answer if every order of ``body`` opened."""
    request = read_request(body)
    assert isinstance(request, TransactionsRequest)
    return [
        Opened(command.echo, order_id) for order_id, command in enumerate(request.commands, start=1)
    ]


def mixed_results(count: int) -> list[Result]:
    """Opened, refused and queried orders in turn, as a busy response holds."""
    fills = (
        Execution(Decimal("200"), Decimal("125.5"), 1519348326),
        Execution(Decimal("0.25"), Decimal("127"), 1519348327),
    )
    echo = (("sym", "SPY"), ("amount", "-300"), ("limit", "125.50"))
    kinds: tuple[Result, ...] = (
        Opened(echo, 42),
        Error(ErrorCode.INSUFFICIENT_FUNDS, echo),
        Status(OrderState(42, Decimal("100"), Decimal(0), None, fills)),
    )
    return [kinds[index % 3] for index in range(count)]


class ReadableElement(Protocol):
    """What both lxml and ElementTree elements offer the walk."""

    @property
    def tag(self) -> object: ...

    @property
    def text(self) -> str | None: ...

    @property
    def tail(self) -> str | None: ...

    def get(self, key: str) -> str | None: ...

    def __iter__(self) -> Iterator[ReadableElement]: ...


ATTRIBUTE_NAMES = ("id", "balance", "sym", "amount", "limit")


def walk(root: ReadableElement) -> int:
    """Reads every tag, text, tail and grammar attribute, as the reader does;
    returns a count that any two parsers must agree on."""
    seen = 0
    for child in root:
        blank = not (child.text or "").strip() and not (child.tail or "").strip()
        seen += bool(child.tag) + blank
        seen += sum(child.get(name) is not None for name in ATTRIBUTE_NAMES)
        seen += walk(child)
    return seen


def parse_with_lxml(body: bytes) -> ReadableElement:
    root: ReadableElement = etree.fromstring(body, _PARSER)
    return root


def parse_with_defusedxml(body: bytes) -> ReadableElement:
    root: ReadableElement = defused_fromstring(body, forbid_dtd=True)
    return root


PARSERS: dict[str, Callable[[bytes], ReadableElement]] = {
    "lxml": parse_with_lxml,
    "defusedxml": parse_with_defusedxml,
}


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("parser", PARSERS)
def test_parse_only(benchmark: BenchmarkFixture, parser: str, document: str) -> None:
    body, children = DOCUMENTS[document]
    root = benchmark(PARSERS[parser], body)
    assert sum(1 for _ in root) == children


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("parser", PARSERS)
def test_parse_and_walk(benchmark: BenchmarkFixture, parser: str, document: str) -> None:
    body, children = DOCUMENTS[document]
    parse = PARSERS[parser]

    def parse_and_walk() -> int:
        return walk(parse(body))

    touched = benchmark(parse_and_walk)
    assert touched == walk(parse_with_lxml(body))
    assert touched > children


@pytest.mark.parametrize("document", DOCUMENTS)
def test_read_request(benchmark: BenchmarkFixture, document: str) -> None:
    body, children = DOCUMENTS[document]
    request = benchmark(read_request, body)
    assert isinstance(request, CreateRequest | TransactionsRequest)
    assert len(request.commands) == children


@pytest.mark.parametrize("document", ["1-order", "100-order"])
def test_parse_and_render(benchmark: BenchmarkFixture, document: str) -> None:
    body, children = DOCUMENTS[document]
    results = opened_results(body)

    def parse_and_render() -> bytes:
        read_request(body)
        return render_results(results)

    response = benchmark(parse_and_render)
    assert response.count(b"<opened ") == children
    assert response.endswith(b"</results>\n")


def render_with_tree(results: Sequence[Result]) -> bytes:
    """The same document as ``render_results``, built as an lxml tree."""
    root = etree.Element("results")
    root.text = "\n"
    for result in results:
        append_result(root, result).tail = "\n"
    body: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    return body + b"\n"


def append_result(parent: etree._Element, result: Result) -> etree._Element:
    if isinstance(result, Opened):
        element = etree.SubElement(parent, "opened", dict(result.echo))
        element.set("id", str(result.order_id))
        return element
    if isinstance(result, Error):
        element = etree.SubElement(parent, "error", dict(result.echo))
        element.text = result.code.message
        return element
    assert isinstance(result, Status)
    element = etree.SubElement(parent, "status", id=str(result.state.order_id))
    if result.state.open_shares:
        etree.SubElement(element, "open", shares=format_decimal(result.state.open_shares))
    for fill in result.state.executions:
        etree.SubElement(
            element,
            "executed",
            shares=format_decimal(fill.shares),
            price=format_decimal(fill.price),
            time=str(fill.time),
        )
    return element


RENDERERS: dict[str, Callable[[Sequence[Result]], bytes]] = {
    "string": render_results,
    "tree": render_with_tree,
}


@pytest.mark.parametrize("count", [1, 100])
@pytest.mark.parametrize("renderer", RENDERERS)
def test_render(benchmark: BenchmarkFixture, renderer: str, count: int) -> None:
    results = mixed_results(count)
    response = benchmark(RENDERERS[renderer], results)
    assert parsed_shape(response) == parsed_shape(render_results(results))
    assert len(etree.fromstring(response)) == count


def parsed_shape(document: bytes) -> list[tuple[object, object, object]]:
    """Every element below the root with its attributes and text."""
    root = etree.fromstring(document)
    return [
        (element.tag, dict(element.items()), element.text) for element in root.iterdescendants()
    ]
