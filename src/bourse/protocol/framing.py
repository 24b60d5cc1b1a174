"""Split a TCP byte stream into requests, without touching a socket.

Why sans-I/O: this is the gateway's per-request hot path, and a decoder that
only takes bytes and hands back events (in the style of h11) can be tested
whole, byte by byte and fuzzed, with no network at all.

Why three framings: the spec's length line (``123\\n`` then the XML), plus the
4-byte little-endian binary length and the bare XML that existing clients
send. The framing is detected afresh for every request, so one
connection may mix them. The three overlap (a binary length can look like
digits and a newline, or start with ``<`` or whitespace), so every decision
waits until the bytes already received make it definitive: the events never
depend on how the stream was cut into chunks.

Why some readings win without waiting: a length of zero (``0\\n``) has no
body to wait for, so it is answered as soon as its newline arrives, even
though its bytes could begin a binary length. A length line must start a
line: a space, tab or carriage return right before its digits is a framing
error, not whitespace to skip. After a bare document, comments and processing
instructions still belong to it (XML allows them after the root), so they are
dropped rather than taken for the start of the next request.

Why no buffering past the limit: a declared length over the limit is answered
at once and its body discarded as it arrives, and a bare document is scanned
incrementally (``bare_xml.BareXmlScanner``), so memory stays bounded by one
request of at most ``max_request_size`` bytes.

Why the writer is here too: ``frame_request`` puts the length line before a
request, as bourse's own clients (the load generator, the health probe) send
it, so the framing rule is written down in one module.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from bourse.core.errors import ErrorCode
from bourse.protocol.bare_xml import BYTE_ORDER_MARK, NOT_WHITESPACE, BareXmlScanner
from bourse.protocol.events import END_OF_STREAM, NEED_DATA, DecoderEvent, Frame, RequestError

DEFAULT_MAX_REQUEST_SIZE: Final = 16 * 1024 * 1024

_BINARY_HEADER_SIZE: Final = 5
_BINARY_LENGTH_SIZE: Final = 4
_MAX_LENGTH_DIGITS: Final = 9
_LF: Final = ord("\n")
_DIGITS: Final = frozenset(b"0123456789")
_WHITESPACE: Final = frozenset(b" \t\r\n")
_XML_START: Final = frozenset(b"< \t\r\n" + BYTE_ORDER_MARK[:1])
_SMALLEST_WHITESPACE_LENGTH: Final = int.from_bytes(b"\t\t\t\t", "little")
_LINE_INDENT: Final = frozenset(b" \t\r")
_LESS_THAN: Final = ord("<")
_COMMENT_OPENER: Final = b"<!--"
_INSTRUCTION_OPENER: Final = b"<?"
_DECLARATION_OPENER: Final = b"<?xml"

_DIGIT_RUN: Final = re.compile(rb"[0-9]{1,10}")
_WHITESPACE_RUN: Final = re.compile(rb"[ \t\r\n]*")
#: A zero length line, alone or behind whitespace short enough that a binary
#: length starting in that whitespace would overlap it.
_ZERO_LENGTH_AHEAD: Final = re.compile(rb"[ \t\r\n]{0,4}0{1,9}\r?\n")
_XML_DECLARATION: Final = re.compile(rb"<\?xml[ \t\r\n]")


def frame_request(xml: bytes) -> bytes:
    """``xml`` framed by a length line: its size in decimal, a newline, the XML."""
    return b"%d\n%s" % (len(xml), xml)


def _mid_request() -> RequestError:
    return RequestError(ErrorCode.BAD_FRAMING, "connection closed mid-request", fatal=True)


@dataclass(frozen=True, slots=True)
class _LengthPrefix:
    """A recognised length line or binary length: its size and the body's."""

    header_size: int
    body_size: int


class _Verdict(enum.Enum):
    """What the bytes at the start of a request say, when not a length prefix."""

    NEED_MORE = "the bytes so far fit more than one framing"
    SKIP_WHITESPACE = "whitespace between requests"
    BARE_XML = "a bare XML document"
    TRAILING_COMMENT = "a comment after a bare document's root"
    TRAILING_INSTRUCTION = "a processing instruction after a bare document's root"


#: Opener and terminator of each kind of markup that may follow a bare root.
_TRAILING_MARKUP: Final = {
    _Verdict.TRAILING_COMMENT: (_COMMENT_OPENER, b"-->"),
    _Verdict.TRAILING_INSTRUCTION: (_INSTRUCTION_OPENER, b"?>"),
}


class FrameDecoder:
    """Turns the bytes a client sends into one event per request.

    Feed it with ``feed`` and ``feed_eof``, then call ``next_event`` until it
    returns ``NEED_DATA`` or ``END_OF_STREAM``. After a fatal ``RequestError``
    it returns ``END_OF_STREAM`` forever and ignores whatever is fed.
    """

    __slots__ = (
        "_after_bare_document",
        "_bare",
        "_body_size",
        "_buf",
        "_closed",
        "_eof",
        "_line_indented",
        "_max",
        "_skip_remaining",
        "_trailing_terminator",
    )

    def __init__(self, max_request_size: int = DEFAULT_MAX_REQUEST_SIZE) -> None:
        if max_request_size < 1:
            raise ValueError(f"max_request_size must be positive, not {max_request_size}")
        self._max = max_request_size
        self._buf = bytearray()
        self._eof = False
        self._closed = False
        self._body_size: int | None = None
        self._skip_remaining = 0
        self._bare: BareXmlScanner | None = None
        #: The last request was bare XML: comments and PIs still belong to it.
        self._after_bare_document = False
        #: The end of the trailing comment or PI being dropped, if any.
        self._trailing_terminator = b""
        #: The byte before the buffer is a skipped space, tab or carriage return.
        self._line_indented = False

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer (bytes of an oversized body are dropped)."""
        if self._eof:
            raise RuntimeError("feed() called after feed_eof()")
        if self._closed:
            return
        skipped = min(self._skip_remaining, len(data))
        self._skip_remaining -= skipped
        self._buf += memoryview(data)[skipped:]

    def feed_eof(self) -> None:
        """Record that the peer closed its write side: no more bytes will come."""
        self._eof = True

    @property
    def in_request(self) -> bool:
        """True while bytes of an unfinished request are buffered or being skipped."""
        if self._closed:
            return False
        if self._skip_remaining or self._body_size is not None or self._bare is not None:
            return True
        if self._trailing_terminator:
            return True
        return NOT_WHITESPACE.search(self._buf) is not None

    def next_event(self) -> DecoderEvent:
        """The next request, error or signal; call until NEED_DATA or END_OF_STREAM."""
        if self._closed:
            return END_OF_STREAM
        if self._skip_remaining:
            return self._await_more()
        if self._body_size is not None:
            return self._next_body(self._body_size)
        if self._bare is not None:
            return self._next_bare_document(self._bare)
        if self._trailing_terminator and not self._drop_trailing_markup():
            return self._await_more()
        return self._next_request_start()

    def _next_request_start(self) -> DecoderEvent:
        while self._buf:
            verdict = self._decide()
            if verdict is _Verdict.SKIP_WHITESPACE:
                self._skip_whitespace()
            elif verdict is _Verdict.TRAILING_COMMENT or verdict is _Verdict.TRAILING_INSTRUCTION:
                if not self._enter_trailing_markup(*_TRAILING_MARKUP[verdict]):
                    return self._await_more()
            elif verdict is _Verdict.NEED_MORE:
                return self._await_more()
            elif verdict is _Verdict.BARE_XML:
                self._start_request()
                self._bare = BareXmlScanner()
                return self._next_bare_document(self._bare)
            elif isinstance(verdict, RequestError):
                return self._fail(verdict)
            else:
                return self._start_length_prefixed(verdict)
        if self._eof:
            self._closed = True
            return END_OF_STREAM
        return NEED_DATA

    def _decide(self) -> _LengthPrefix | RequestError | _Verdict:
        """Which framing the buffered bytes start, once they are enough to be sure."""
        buf = self._buf
        first = buf[0]
        zero_length = _ZERO_LENGTH_AHEAD.match(buf)
        if zero_length:
            if first in _WHITESPACE:
                return _Verdict.SKIP_WHITESPACE
            return self._starting_a_line(_LengthPrefix(zero_length.end(), 0))
        line = self._parse_length_line() if first in _DIGITS else None
        if line is _Verdict.NEED_MORE or isinstance(line, RequestError):
            return line
        if isinstance(line, _LengthPrefix):
            if line.header_size == len(buf):
                return self._starting_a_line(line) if self._eof else _Verdict.NEED_MORE
            if buf[line.header_size] in _XML_START:
                return self._starting_a_line(line)
        binary = self._parse_binary_header()
        if binary is _Verdict.NEED_MORE or isinstance(binary, _LengthPrefix):
            return binary
        if isinstance(line, _LengthPrefix):
            return self._starting_a_line(line)
        if isinstance(binary, RequestError) and first not in _XML_START:
            return binary
        if first in _WHITESPACE:
            return _Verdict.SKIP_WHITESPACE
        if first == _LESS_THAN and self._after_bare_document:
            return self._trailing_markup()
        if first in _XML_START:
            return _Verdict.BARE_XML
        if self._eof and len(buf) < _BINARY_HEADER_SIZE:
            return _mid_request()
        return RequestError(ErrorCode.BAD_FRAMING, "unrecognised start of request", fatal=True)

    def _starting_a_line(self, line: _LengthPrefix) -> _LengthPrefix | RequestError:
        """``line``, unless a space, tab or carriage return came right before its digits."""
        if self._line_indented:
            detail = "whitespace before the length line's digits"
            return RequestError(ErrorCode.BAD_FRAMING, detail, fatal=True)
        return line

    def _trailing_markup(self) -> _Verdict:
        """After a bare document, whether the ``<`` here still belongs to it.

        A comment or processing instruction does; an XML declaration (``<?xml``
        and whitespace) or any other markup starts the next document.
        """
        head = bytes(self._buf[: len(_DECLARATION_OPENER) + 1])
        if head.startswith(_COMMENT_OPENER):
            return _Verdict.TRAILING_COMMENT
        if _COMMENT_OPENER.startswith(head):
            return _Verdict.NEED_MORE
        if not head.startswith(_INSTRUCTION_OPENER) or _XML_DECLARATION.match(head):
            return _Verdict.BARE_XML
        if _DECLARATION_OPENER.startswith(head):
            return _Verdict.NEED_MORE
        return _Verdict.TRAILING_INSTRUCTION

    def _parse_length_line(self) -> _LengthPrefix | RequestError | _Verdict | None:
        """A ``[0-9]{1,9}\\r?\\n`` line at the start of the buffer, or None if there is none."""
        buf = self._buf
        digits = _DIGIT_RUN.match(buf)
        count = digits.end() if digits else 0
        if count > _MAX_LENGTH_DIGITS:
            return RequestError(
                ErrorCode.REQUEST_TOO_LARGE, "length of 10 digits or more", fatal=True
            )
        terminator = bytes(buf[count : count + 2])
        if terminator[:1] == b"\n":
            return _LengthPrefix(count + 1, int(buf[:count]))
        if terminator == b"\r\n":
            return _LengthPrefix(count + 2, int(buf[:count]))
        if terminator in (b"", b"\r"):
            return _Verdict.NEED_MORE
        return None

    def _parse_binary_header(self) -> _LengthPrefix | RequestError | _Verdict | None:
        """A 4-byte little-endian length and a newline, or None if there is none."""
        buf = self._buf
        length = int.from_bytes(buf[:_BINARY_LENGTH_SIZE], "little")
        if len(buf) < _BINARY_HEADER_SIZE:
            cannot_matter = buf[0] in _XML_START and length > self._max
            return None if self._eof or cannot_matter else _Verdict.NEED_MORE
        if buf[_BINARY_LENGTH_SIZE] != _LF:
            return None
        if length > self._max:
            detail = f"binary length of {length} bytes, the limit is {self._max}"
            return RequestError(ErrorCode.REQUEST_TOO_LARGE, detail, fatal=True)
        return _LengthPrefix(_BINARY_HEADER_SIZE, length)

    def _skip_whitespace(self) -> None:
        """Drop whitespace between requests, noting whether a length line may follow."""
        count = self._skippable_whitespace()
        self._line_indented = self._buf[count - 1] in _LINE_INDENT
        del self._buf[:count]

    def _enter_trailing_markup(self, opener: bytes, terminator: bytes) -> bool:
        """Start dropping a trailing comment or PI; False while its end has not arrived."""
        del self._buf[: len(opener)]
        self._trailing_terminator = terminator
        self._line_indented = False
        return self._drop_trailing_markup()

    def _drop_trailing_markup(self) -> bool:
        """Drop the trailing comment or PI through its end; False while that has not arrived.

        Only its last bytes, which may begin the terminator, are kept meanwhile,
        so a long one costs no memory.
        """
        terminator = self._trailing_terminator
        end = self._buf.find(terminator)
        if end < 0:
            del self._buf[: max(0, len(self._buf) - len(terminator) + 1)]
            return False
        del self._buf[: end + len(terminator)]
        self._trailing_terminator = b""
        return True

    def _start_request(self) -> None:
        """The bytes at the buffer's start begin a request, not the previous one's tail."""
        self._after_bare_document = False
        self._line_indented = False

    def _skippable_whitespace(self) -> int:
        """How many leading whitespace bytes can be dropped at once.

        One at least (the caller has decided so). More when the limit is below
        any binary length spelt with whitespace bytes: then no binary length can
        start in the run except within its last four bytes.
        """
        if self._max >= _SMALLEST_WHITESPACE_LENGTH:
            return 1
        run = _WHITESPACE_RUN.match(self._buf)
        run_length = run.end() if run else 0
        return max(1, run_length - _BINARY_LENGTH_SIZE)

    def _start_length_prefixed(self, prefix: _LengthPrefix) -> DecoderEvent:
        self._start_request()
        del self._buf[: prefix.header_size]
        size = prefix.body_size
        if size == 0:
            return RequestError(ErrorCode.BAD_FRAMING, "empty request")
        if size > self._max:
            self._skip(size)
            detail = f"{size} bytes declared, the limit is {self._max}"
            return RequestError(ErrorCode.REQUEST_TOO_LARGE, detail)
        self._body_size = size
        return self._next_body(size)

    def _skip(self, size: int) -> None:
        """Discard the next ``size`` bytes: those buffered now, the rest as they are fed."""
        buffered = min(size, len(self._buf))
        del self._buf[:buffered]
        self._skip_remaining = size - buffered

    def _next_body(self, size: int) -> DecoderEvent:
        if len(self._buf) < size:
            return self._await_more()
        self._body_size = None
        return Frame(self._take(size))

    def _next_bare_document(self, scanner: BareXmlScanner) -> DecoderEvent:
        limit = min(len(self._buf), self._max)
        outcome = scanner.scan(self._buf, limit)
        if isinstance(outcome, RequestError):
            return self._fail(outcome)
        if isinstance(outcome, int):
            self._bare = None
            self._after_bare_document = True
            return Frame(self._take(outcome))
        if limit == self._max:
            detail = f"XML document not closed within {self._max} bytes"
            return self._fail(RequestError(ErrorCode.REQUEST_TOO_LARGE, detail, fatal=True))
        return self._await_more()

    def _take(self, size: int) -> bytes:
        # CPython drops a bytearray's head by moving its start pointer, so
        # consuming with ``del`` stays linear even when fed byte by byte.
        body = bytes(self._buf[:size])
        del self._buf[:size]
        return body

    def _await_more(self) -> DecoderEvent:
        return self._fail(_mid_request()) if self._eof else NEED_DATA

    def _fail(self, error: RequestError) -> RequestError:
        """Report a fatal error and stop: the stream cannot be resynchronised."""
        self._closed = True
        self._buf = bytearray()
        self._body_size = None
        self._skip_remaining = 0
        self._bare = None
        self._trailing_terminator = b""
        return error
