"""The fixed yardstick answers one well-formed ``<opened>`` per order."""

from __future__ import annotations

from lxml import etree

from bourse.bench.null_server import fixed_answer


def test_fixed_answer_has_one_opened_per_order() -> None:
    body = b'<transactions id="1">' + b'<order sym="A" amount="1" limit="2"/>' * 3
    reply = fixed_answer(body + b"</transactions>")
    root = etree.fromstring(reply)
    assert root.tag == "results"
    assert [child.tag for child in root] == ["opened"] * 3


def test_fixed_answer_to_no_order_is_an_empty_results() -> None:
    assert etree.fromstring(fixed_answer(b"<create/>")).tag == "results"
