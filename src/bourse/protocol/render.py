"""Results → the ``<results>`` response bytes, without I/O.

Every response passes through here, so it is built as one string rather
than as an element tree (several times faster: docs/xml-parsing.md). The
shape is fixed: the XML declaration, ``<results>`` on its own line, one line
per result, ``</results>`` and a newline; never a self-closing
``<results/>``, because clients read until the closing tag.

Correctness rests on escaping: attribute values and text echo whatever the
client sent. The rules live in ``xmltext``, shared with every other writer
of the protocol's XML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from bourse.core.money import format_decimal
from bourse.core.results import (
    AccountCreated,
    Canceled,
    Error,
    Opened,
    OrderState,
    Result,
    SharesCreated,
    Status,
)
from bourse.protocol.events import RequestError
from bourse.protocol.xmltext import attributes, escape_text

_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<results>\n'
_TAIL = "</results>\n"


def render_results(results: Sequence[Result]) -> bytes:
    """The response document answering ``results``, in their order."""
    lines = [_HEAD]
    lines.extend(map(_render_result, results))
    lines.append(_TAIL)
    return "".join(lines).encode("utf-8")


def render_error(error: RequestError) -> bytes:
    """The response document refusing a whole request."""
    return f"{_HEAD}<error>{escape_text(error.message)}</error>\n{_TAIL}".encode()


def _render_result(result: Result) -> str:
    """One result as one line; the commonest kinds are tested first."""
    if isinstance(result, Opened):
        return f'<opened{attributes(result.echo)} id="{result.order_id}"/>\n'
    if isinstance(result, Error):
        return f"<error{attributes(result.echo)}>{escape_text(result.code.message)}</error>\n"
    if isinstance(result, Status):
        state = result.state
        return f'<status id="{state.order_id}">{_open_part(state)}{_history(state)}</status>\n'
    if isinstance(result, Canceled):
        state = result.state
        return f'<canceled id="{state.order_id}">{_history(state)}</canceled>\n'
    if isinstance(result, AccountCreated):
        return f"<created{attributes((('id', result.account_id),))}/>\n"
    if isinstance(result, SharesCreated):
        return f"<created{attributes((('sym', result.symbol), ('id', result.account_id)))}/>\n"
    assert_never(result)


def _open_part(state: OrderState) -> str:
    """``<open>`` when shares are still open (status only)."""
    if state.open_shares > 0:
        return f'<open shares="{format_decimal(state.open_shares)}"/>'
    return ""


def _history(state: OrderState) -> str:
    """``<canceled>`` if the order was canceled, then one ``<executed>`` per fill."""
    parts = []
    if state.canceled_at is not None:
        parts.append(
            f'<canceled shares="{format_decimal(state.canceled_shares)}"'
            f' time="{state.canceled_at}"/>',
        )
    parts.extend(
        f'<executed shares="{format_decimal(execution.shares)}"'
        f' price="{format_decimal(execution.price)}" time="{execution.time}"/>'
        for execution in state.executions
    )
    return "".join(parts)
