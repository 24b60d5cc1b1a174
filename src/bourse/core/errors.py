"""Every way a request or one of its commands can be refused, as one enum.

Expected failures are values, not exceptions: the exchange and the protocol
layer return an ``ErrorCode`` and the renderer turns it into the human
sentence of the ``<error>`` element. One code per cause keeps the wire text,
the tests and (later) the metrics in step.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """A refusal, valued by the sentence the client reads."""

    # <create> children
    ACCOUNT_EXISTS = "Account already exists"
    INVALID_ACCOUNT_ID = "Invalid account id"
    INVALID_BALANCE = "Invalid balance"
    INVALID_SYMBOL = "Invalid symbol"
    INVALID_SHARES = "Invalid number of shares"
    # <transactions> children
    ACCOUNT_NOT_FOUND = "Account does not exist"
    UNKNOWN_SYMBOL = "Symbol does not exist"
    INVALID_AMOUNT = "Invalid amount"
    INVALID_LIMIT = "Invalid limit price"
    INSUFFICIENT_FUNDS = "Insufficient funds"
    INSUFFICIENT_SHARES = "Insufficient shares"
    INVALID_ORDER_ID = "Invalid order id"
    ORDER_NOT_FOUND = "Order does not exist"
    NOTHING_TO_CANCEL = "Order has no open shares to cancel"
    TOO_MANY_OPEN_ORDERS = "Too many open orders for this account"
    REPLY_TOO_LARGE = (
        "Reply too large: this request already reports its limit of fills; "
        "ask for this order in another request"
    )
    # whole requests
    MALFORMED_XML = "Malformed XML"
    FORBIDDEN_XML = "Forbidden XML construct"
    UNSUPPORTED_ENCODING = "Unsupported encoding: only UTF-8 is accepted"
    UNKNOWN_ROOT = "Unknown request type"
    INVALID_REQUEST = "Invalid request"
    MISSING_ID = "Missing attribute: id"
    MISSING_BALANCE = "Missing attribute: balance"
    MISSING_SYMBOL = "Missing attribute: sym"
    MISSING_AMOUNT = "Missing attribute: amount"
    MISSING_LIMIT = "Missing attribute: limit"
    UNEXPECTED_ATTRIBUTE = "Unexpected attribute"
    EMPTY_TRANSACTIONS = "Transactions request has no children"
    REQUEST_TOO_LARGE = "Request too large"
    BAD_FRAMING = "Bad framing"
    REQUEST_TIMEOUT = "Request not received in time"
    RATE_LIMITED = "Rate limit exceeded"
    CREATE_FORBIDDEN = "Create is not allowed from this connection"
    UNAUTHORIZED = "Not authorized for this account"
    UNAVAILABLE = "Exchange unavailable: its database cannot be reached; nothing was changed"

    @property
    def message(self) -> str:
        """The sentence shown to the client."""
        return self.value
