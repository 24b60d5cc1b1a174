"""Identifiers: account ids, symbols and order ids, validated strictly.

Account ids are strings of ASCII digits compared exactly (``007`` is not
``7``); symbols are ASCII letters and digits, case-sensitive; order ids are
positive integers assigned by the exchange and written without leading zeros.
The bounds keep hostile input from turning into huge keys.
"""

from __future__ import annotations

import re

MAX_ACCOUNT_ID_LENGTH = 32
MAX_SYMBOL_LENGTH = 32
MAX_ORDER_ID_DIGITS = 18

_ACCOUNT_ID = re.compile(rf"[0-9]{{1,{MAX_ACCOUNT_ID_LENGTH}}}")
_SYMBOL = re.compile(rf"[A-Za-z0-9]{{1,{MAX_SYMBOL_LENGTH}}}")
_ORDER_ID = re.compile(rf"[1-9][0-9]{{0,{MAX_ORDER_ID_DIGITS - 1}}}")


def is_account_id(text: str) -> bool:
    """True when ``text`` is a well-formed account id."""
    return _ACCOUNT_ID.fullmatch(text) is not None


def is_symbol(text: str) -> bool:
    """True when ``text`` is a well-formed symbol."""
    return _SYMBOL.fullmatch(text) is not None


def parse_order_id(text: str) -> int | None:
    """The order id written as ``text``, or None when it is not one."""
    if _ORDER_ID.fullmatch(text) is None:
        return None
    return int(text)
