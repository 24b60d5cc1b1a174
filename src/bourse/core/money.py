"""Exact decimal numbers for cash, share counts and prices.

Money must never be rounded: every operation runs in a private decimal
context that traps inexact results, rounding and overflow, so an arithmetic
surprise is a loud bug instead of a lost cent. Input is accepted only in the
strict ASCII form ``[-]digits[.digits]`` within fixed bounds; output is
canonical (no exponent, no trailing zeros).
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

MAX_INTEGER_DIGITS = 15
MAX_FRACTION_DIGITS = 8

#: Arithmetic context: wide enough for any product and sum of bounded
#: inputs, and trapping every signal that would mean a changed value.
MONEY = decimal.Context(
    prec=80,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[
        decimal.InvalidOperation,
        decimal.DivisionByZero,
        decimal.Overflow,
        decimal.Underflow,
        decimal.Inexact,
        decimal.Rounded,
        decimal.Clamped,
    ],
)

ZERO = Decimal(0)

_NUMBER = re.compile(
    rf"-?[0-9]{{1,{MAX_INTEGER_DIGITS}}}(?:\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?",
)


def parse_decimal(text: str) -> Decimal | None:
    """The exact value of ``text``, or None when it is not a number we accept.

    Accepted: optional ``-``, 1 to 15 ASCII digits, optionally ``.`` and 1 to
    8 ASCII digits. Refused: whitespace, ``+``, exponents, NaN, infinities,
    underscores, non-ASCII digits, anything longer.
    """
    if _NUMBER.fullmatch(text) is None:
        return None
    return Decimal(text)


def format_decimal(value: Decimal) -> str:
    """Canonical text: ``125``, ``0.5``, ``-3.25``; never ``1E+2`` or ``-0``."""
    if not value:
        return "0"
    return f"{value.normalize(MONEY):f}"
