"""The values the sans-I/O protocol layer hands back to its caller.

The framing decoder yields ``Frame`` (one request's XML bytes), ``NEED_DATA``
(feed more bytes), ``END_OF_STREAM`` (the peer finished cleanly) or a
``RequestError``; the XML reader yields a ``Request`` or a ``RequestError``.
A fatal error means the byte stream cannot be trusted any more: the caller
answers it and then closes the connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bourse.core.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete request: the bytes of its XML document."""

    body: bytes


@dataclass(frozen=True, slots=True)
class RequestError:
    """A whole request refused: answered ``<results><error>…</error></results>``.

    ``fatal`` is True when the connection must be closed after the answer
    (the framing cannot resynchronise).
    """

    code: ErrorCode
    detail: str = ""
    fatal: bool = False

    @property
    def message(self) -> str:
        """The text of the ``<error>`` element."""
        if self.detail:
            return f"{self.code.message}: {self.detail}"
        return self.code.message


class Signal(enum.Enum):
    """Decoder states that carry no data."""

    NEED_DATA = "need data"
    END_OF_STREAM = "end of stream"


NEED_DATA = Signal.NEED_DATA
END_OF_STREAM = Signal.END_OF_STREAM

DecoderEvent = Frame | RequestError | Signal
