"""A parsed request tree → the ``Request`` it holds, or why it is refused.

Why apart from parsing: ``reader`` turns untrusted bytes into a tree, safely;
this module knows only the protocol's grammar, so a grammar rule changes
here and nowhere near the parser's hardening.

One pass over the (at most three levels deep) tree checks the grammar and
builds the commands directly. A broken grammar (an unknown element, stray
text, a root's attributes) refuses the whole request; a child whose own
attributes are wrong (one missing, one not in the grammar) or whose value is
bad (symbol, number, id) refuses only itself, travelling on as ``Rejected``
so that a client counting one result per child still gets them all and the
other children still run.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from bourse.core.commands import (
    AddShares,
    Attrs,
    CancelOrder,
    CreateAccount,
    CreateCommand,
    CreateRequest,
    PlaceOrder,
    QueryOrder,
    Rejected,
    Request,
    TransactionCommand,
    TransactionsRequest,
)
from bourse.core.errors import ErrorCode
from bourse.core.ids import is_account_id, is_symbol, parse_order_id
from bourse.core.money import parse_decimal
from bourse.protocol.events import RequestError


@dataclass(frozen=True, slots=True)
class ReaderLimits:
    """Bounds on one request beyond libxml2's own (depth 256, 10 MB text)."""

    #: Commands in one request, counting each ``<symbol>/<account>`` pair.
    max_children: int = 100_000
    #: Accept a ``token`` attribute on ``<transactions>`` (account tokens on).
    accept_token: bool = False


DEFAULT_LIMITS = ReaderLimits()

#: Longest client-supplied name quoted back in an error detail.
_MAX_QUOTED = 64

_XML_SPACE = " \t\r\n"
_ACCOUNT_ATTRIBUTES = ("id", "balance")
_ID_ATTRIBUTE = ("id",)
_ID_TOKEN_ATTRIBUTES = ("id", "token")
_SYMBOL_ATTRIBUTES = ("sym",)
_ORDER_ATTRIBUTES = ("sym", "amount", "limit")
_MISSING_ATTRIBUTE = {
    "id": ErrorCode.MISSING_ID,
    "balance": ErrorCode.MISSING_BALANCE,
    "sym": ErrorCode.MISSING_SYMBOL,
    "amount": ErrorCode.MISSING_AMOUNT,
    "limit": ErrorCode.MISSING_LIMIT,
}


def read_root(root: etree._Element, limits: ReaderLimits) -> Request | RequestError:
    """Dispatches on the root element: the two request kinds, or a refusal."""
    tag = root.tag
    if tag == "create":
        return _read_create(root, limits)
    if tag == "transactions":
        return _read_transactions(root, limits)
    return RequestError(ErrorCode.UNKNOWN_ROOT, f"<{quote(tag)}>")


def _read_create(root: etree._Element, limits: ReaderLimits) -> CreateRequest | RequestError:
    """``<create>``: accounts and symbol placements, in document order."""
    if len(root.attrib):
        return _attributes_error(root, ())
    if (problem := _text_problem(root)) is not None:
        return problem
    commands: list[CreateCommand] = []
    for child in root:
        tag = child.tag
        if tag == "account":
            account = _read_new_account(child)
            if isinstance(account, RequestError):
                return account
            commands.append(account)
        elif tag == "symbol":
            placements = _read_symbol(child)
            if isinstance(placements, RequestError):
                return placements
            commands.extend(placements)
        else:
            return _unknown_element(child, "create")
        if len(commands) > limits.max_children:
            return _too_many_commands(limits)
    return CreateRequest(tuple(commands))


def _read_transactions(
    root: etree._Element,
    limits: ReaderLimits,
) -> TransactionsRequest | RequestError:
    """``<transactions id>``: one or more orders, queries and cancels."""
    account_id = root.get("id")
    if account_id is None:
        return RequestError(ErrorCode.INVALID_REQUEST, "transactions needs an id")
    token = root.get("token") if limits.accept_token else None
    if len(root.attrib) != 1 + (token is not None):
        return _attributes_error(
            root, _ID_TOKEN_ATTRIBUTES if limits.accept_token else _ID_ATTRIBUTE
        )
    if (problem := _text_problem(root)) is not None:
        return problem
    if len(root) == 0:
        return RequestError(ErrorCode.EMPTY_TRANSACTIONS)
    if len(root) > limits.max_children:
        return _too_many_commands(limits)
    commands: list[TransactionCommand] = []
    for child in root:
        command = _read_transaction_child(child)
        if isinstance(command, RequestError):
            return command
        commands.append(command)
    return TransactionsRequest(account_id, tuple(commands), token)


def _read_transaction_child(child: etree._Element) -> TransactionCommand | RequestError:
    tag = child.tag
    if tag == "order":
        return _read_order(child)
    if tag == "query":
        return _read_order_reference(child, QueryOrder)
    if tag == "cancel":
        return _read_order_reference(child, CancelOrder)
    return _unknown_element(child, "transactions")


# -- <create> children -------------------------------------------------------


def _read_new_account(element: etree._Element) -> CreateCommand | RequestError:
    """``<account id balance/>``: a new account and its opening balance."""
    if (problem := _leaf_problem(element)) is not None:
        return problem
    account_id = element.get("id")
    balance_text = element.get("balance")
    if account_id is None or balance_text is None or len(element.attrib) != 2:
        code = _attribute_refusal(element, _ACCOUNT_ATTRIBUTES)
        return Rejected(code, _present(element, _ID_ATTRIBUTE))
    echo = (("id", account_id),)
    if not is_account_id(account_id):
        return Rejected(ErrorCode.INVALID_ACCOUNT_ID, echo)
    balance = parse_decimal(balance_text)
    if balance is None or balance < 0:
        return Rejected(ErrorCode.INVALID_BALANCE, echo)
    return CreateAccount(account_id, balance)


def _read_symbol(element: etree._Element) -> list[CreateCommand] | RequestError:
    """``<symbol sym>`` with one command per ``<account id>NUM</account>``."""
    if (problem := _text_problem(element)) is not None:
        return problem
    if len(element) == 0:
        return RequestError(ErrorCode.INVALID_REQUEST, "<symbol> needs at least one <account>")
    symbol = element.get("sym")
    if symbol is None or len(element.attrib) != 1:
        code = _attribute_refusal(element, _SYMBOL_ATTRIBUTES)
        return _refuse_each_placement(element, code, _present(element, _SYMBOL_ATTRIBUTES))
    placements: list[CreateCommand] = []
    for child in element:
        placement = _read_placement(symbol, child)
        if isinstance(placement, RequestError):
            return placement
        placements.append(placement)
    return placements


def _refuse_each_placement(
    element: etree._Element, code: ErrorCode, symbol_echo: Attrs
) -> list[CreateCommand] | RequestError:
    """``code`` in the place of each ``<account>`` of a ``<symbol>`` whose own
    attributes are wrong, so that the results still count one per pair."""
    placements: list[CreateCommand] = []
    for child in element:
        if (problem := _placement_problem(child)) is not None:
            return problem
        placements.append(Rejected(code, symbol_echo + _present(child, _ID_ATTRIBUTE)))
    return placements


def _placement_problem(element: etree._Element) -> RequestError | None:
    """Why ``element``, inside ``<symbol>``, breaks the grammar, if it does."""
    if element.tag != "account":
        return _unknown_element(element, "symbol")
    if len(element):
        return _unexpected_child(element)
    return _tail_problem(element)


def _read_placement(symbol: str, element: etree._Element) -> CreateCommand | RequestError:
    """``<account id>NUM</account>`` inside ``<symbol>``: shares to place."""
    if (problem := _placement_problem(element)) is not None:
        return problem
    account_id = element.get("id")
    if account_id is None or len(element.attrib) != 1:
        code = _attribute_refusal(element, _ID_ATTRIBUTE)
        return Rejected(code, (("sym", symbol), *_present(element, _ID_ATTRIBUTE)))
    echo = (("sym", symbol), ("id", account_id))
    if not is_symbol(symbol):
        return Rejected(ErrorCode.INVALID_SYMBOL, echo)
    if not is_account_id(account_id):
        return Rejected(ErrorCode.INVALID_ACCOUNT_ID, echo)
    shares = parse_decimal((element.text or "").strip(_XML_SPACE))
    if shares is None or shares <= 0:
        return Rejected(ErrorCode.INVALID_SHARES, echo)
    return AddShares(symbol, account_id, shares)


# -- <transactions> children -------------------------------------------------


def _read_order(element: etree._Element) -> TransactionCommand | RequestError:
    """``<order sym amount limit/>``, echoing the three texts as sent."""
    if (problem := _leaf_problem(element)) is not None:
        return problem
    symbol = element.get("sym")
    amount_text = element.get("amount")
    limit_text = element.get("limit")
    if symbol is None or amount_text is None or limit_text is None or len(element.attrib) != 3:
        code = _attribute_refusal(element, _ORDER_ATTRIBUTES)
        return Rejected(code, _present(element, _ORDER_ATTRIBUTES))
    echo = (("sym", symbol), ("amount", amount_text), ("limit", limit_text))
    if not is_symbol(symbol):
        return Rejected(ErrorCode.INVALID_SYMBOL, echo)
    amount = parse_decimal(amount_text)
    if amount is None or not amount:
        return Rejected(ErrorCode.INVALID_AMOUNT, echo)
    limit = parse_decimal(limit_text)
    if limit is None or limit <= 0:
        return Rejected(ErrorCode.INVALID_LIMIT, echo)
    return PlaceOrder(symbol, amount, limit, echo)


def _read_order_reference(
    element: etree._Element,
    command: type[QueryOrder] | type[CancelOrder],
) -> TransactionCommand | RequestError:
    """``<query id/>`` or ``<cancel id/>``."""
    if (problem := _leaf_problem(element)) is not None:
        return problem
    order_text = element.get("id")
    if order_text is None or len(element.attrib) != 1:
        code = _attribute_refusal(element, _ID_ATTRIBUTE)
        return Rejected(code, _present(element, _ID_ATTRIBUTE))
    echo = (("id", order_text),)
    order_id = parse_order_id(order_text)
    if order_id is None:
        return Rejected(ErrorCode.INVALID_ORDER_ID, echo)
    return command(order_id, echo)


# -- grammar checks and their errors -----------------------------------------


def _attribute_refusal(element: etree._Element, expected: tuple[str, ...]) -> ErrorCode:
    """Why a child's attributes, known to differ from ``expected``, are wrong:
    the first one missing, else one that is not in the grammar."""
    missing = next((name for name in expected if element.get(name) is None), None)
    return ErrorCode.UNEXPECTED_ATTRIBUTE if missing is None else _MISSING_ATTRIBUTE[missing]


def _present(element: etree._Element, names: tuple[str, ...]) -> Attrs:
    """The attributes among ``names`` that ``element`` has, in that order, as sent:
    the echo of a child refused for its attributes."""
    return tuple((name, value) for name in names if (value := element.get(name)) is not None)


def _attributes_error(element: etree._Element, expected: tuple[str, ...]) -> RequestError:
    """Why a root element's attributes, known to differ from ``expected``, are wrong."""
    tag = quote(element.tag)
    for name in expected:
        if element.get(name) is None:
            return _invalid(f"missing attribute '{name}' on <{tag}>")
    unexpected = next((name for name in element.attrib if name not in expected), "")
    return _invalid(f"unexpected attribute '{quote(unexpected)}' on <{tag}>")


def _leaf_problem(element: etree._Element) -> RequestError | None:
    """Why ``element`` is not empty (children or text), if it is not."""
    if element.text is None and element.tail is None and not len(element):
        return None
    if len(element):
        return _unexpected_child(element)
    if not _is_blank(element.text):
        return _invalid(f"unexpected text in <{quote(element.tag)}>")
    return _tail_problem(element)


def _text_problem(element: etree._Element) -> RequestError | None:
    """Why the text around ``element`` is not blank, if it is not."""
    if not _is_blank(element.text):
        return _invalid(f"unexpected text in <{quote(element.tag)}>")
    return _tail_problem(element)


def _tail_problem(element: etree._Element) -> RequestError | None:
    if _is_blank(element.tail):
        return None
    parent = element.getparent()
    where = "document" if parent is None else f"<{quote(parent.tag)}>"
    return _invalid(f"unexpected text in {where}")


def _is_blank(text: str | None) -> bool:
    return text is None or not text.strip(_XML_SPACE)


def _unexpected_child(element: etree._Element) -> RequestError:
    return _unknown_element(element[0], quote(element.tag))


def _unknown_element(element: etree._Element, parent_tag: str) -> RequestError:
    return _invalid(f"unknown element <{quote(element.tag)}> in <{parent_tag}>")


def _too_many_commands(limits: ReaderLimits) -> RequestError:
    return RequestError(ErrorCode.REQUEST_TOO_LARGE, f"more than {limits.max_children} commands")


def _invalid(detail: str) -> RequestError:
    return RequestError(ErrorCode.INVALID_REQUEST, detail)


def quote(name: object) -> str:
    """A client-supplied name, cut short enough to quote back safely."""
    text = str(name)
    if len(text) > _MAX_QUOTED:
        return text[:_MAX_QUOTED] + "..."
    return text
