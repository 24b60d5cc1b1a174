"""Find where a bare XML document ends, in a stream, without parsing it.

Why a scanner of its own: a client may send a request with no length at all,
and then the request ends where its root element closes. Parsing the stream
to find that point would hand untrusted, unbounded bytes to a parser before
any size check, so this scanner only jumps between ``<``, ``>``, quotes and
the terminators of comments, CDATA and processing instructions (with
``find``, or one regular expression per start tag) and counts depth. It
keeps its place between feeds, so a document that arrives a byte at a time
is still scanned once, and it refuses a DOCTYPE before any parser sees one.
Everything else about the document is the XML reader's to judge.
"""

from __future__ import annotations

import enum
import re
from typing import Final

from bourse.core.errors import ErrorCode
from bourse.protocol.events import RequestError

BYTE_ORDER_MARK: Final = b"\xef\xbb\xbf"
NOT_WHITESPACE: Final = re.compile(rb"[^ \t\r\n]")

_SLASH: Final = ord("/")
_TAG_DELIMITER: Final = re.compile(rb"[>\"']")
_WHOLE_START_TAG: Final = re.compile(rb"[^>\"']*+(?:(?:\"[^\"]*+\"|'[^']*+')[^>\"']*+)*+>")

_DECLARATIONS: Final = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"))
_LONGEST_DECLARATION_OPENER: Final = max(len(opener) for opener, _ in _DECLARATIONS)


class _Scan(enum.Enum):
    """Where the bare-XML scanner stands."""

    BYTE_ORDER_MARK = "at the document's first byte"
    TEXT = "outside markup"
    MARKUP = "at a '<'"
    START_TAG = "inside a start tag"
    END_TAG = "inside an end tag"
    UNTIL_TERMINATOR = "inside a quoted value, comment, CDATA or processing instruction"


class BareXmlScanner:
    """Finds where a bare XML document's root element closes.

    It keeps its position between calls, so a document fed one byte at a time
    is scanned once in all. It checks only what it needs to find the end; the
    XML reader judges the rest.
    """

    __slots__ = ("_depth", "_position", "_resume_state", "_state", "_terminator", "outcome")

    def __init__(self) -> None:
        self._state = _Scan.BYTE_ORDER_MARK
        self._position = 0
        self._depth = 0
        self._terminator = b""
        self._resume_state = _Scan.TEXT
        self.outcome: int | RequestError | None = None

    def scan(self, buf: bytearray, limit: int) -> int | RequestError | None:
        """Scan ``buf[:limit]``: the document's size, an error, or None to await more."""
        while self.outcome is None:
            if not self._step(buf, limit):
                return None
        return self.outcome

    def _step(self, buf: bytearray, limit: int) -> bool:
        """Advance past one construct; False when it needs bytes beyond ``limit``."""
        state = self._state
        if state is _Scan.TEXT:
            return self._scan_text(buf, limit)
        if state is _Scan.MARKUP:
            return self._scan_markup(buf, limit)
        if state is _Scan.START_TAG:
            return self._scan_start_tag(buf, limit)
        if state is _Scan.UNTIL_TERMINATOR:
            return self._scan_until_terminator(buf, limit)
        if state is _Scan.END_TAG:
            return self._scan_end_tag(buf, limit)
        return self._scan_byte_order_mark(buf, limit)

    def _finish(self, outcome: int | RequestError) -> bool:
        self.outcome = outcome
        return True

    def _skip_until(self, terminator: bytes, position: int, resume_state: _Scan) -> None:
        self._terminator = terminator
        self._position = position
        self._resume_state = resume_state
        self._state = _Scan.UNTIL_TERMINATOR

    def _scan_byte_order_mark(self, buf: bytearray, limit: int) -> bool:
        if buf[0] != BYTE_ORDER_MARK[0]:
            self._state = _Scan.TEXT
            return True
        seen = bytes(buf[: min(limit, len(BYTE_ORDER_MARK))])
        if seen == BYTE_ORDER_MARK:
            self._position = len(BYTE_ORDER_MARK)
            self._state = _Scan.TEXT
            return True
        if BYTE_ORDER_MARK.startswith(seen):
            return False
        return self._finish(
            RequestError(ErrorCode.BAD_FRAMING, "invalid byte order mark", fatal=True)
        )

    def _scan_text(self, buf: bytearray, limit: int) -> bool:
        start = self._position
        opening = buf.find(b"<", start, limit)
        end = limit if opening < 0 else opening
        if self._depth == 0 and NOT_WHITESPACE.search(buf, start, end):
            return self._finish(
                RequestError(ErrorCode.BAD_FRAMING, "text outside the root element", fatal=True)
            )
        self._position = end
        if opening < 0:
            return False
        self._state = _Scan.MARKUP
        return self._scan_markup(buf, limit)

    def _scan_markup(self, buf: bytearray, limit: int) -> bool:
        start = self._position
        if start + 1 >= limit:
            return False
        kind = buf[start + 1]
        if kind == ord("!"):
            return self._scan_declaration(buf, limit)
        if kind == ord("?"):
            self._skip_until(b"?>", start + 2, _Scan.TEXT)
        elif kind != _SLASH:
            return self._enter_start_tag(buf, start + 1, limit)
        elif self._depth == 0:
            return self._finish(
                RequestError(ErrorCode.BAD_FRAMING, "end tag before the root element", fatal=True)
            )
        else:
            self._position = start + 2
            self._state = _Scan.END_TAG
        return True

    def _scan_declaration(self, buf: bytearray, limit: int) -> bool:
        start = self._position
        seen = bytes(buf[start : min(limit, start + _LONGEST_DECLARATION_OPENER)])
        for opener, terminator in _DECLARATIONS:
            if seen.startswith(opener):
                self._skip_until(terminator, start + len(opener), _Scan.TEXT)
                return True
        if any(opener.startswith(seen) for opener, _ in _DECLARATIONS):
            return False
        return self._finish(
            RequestError(ErrorCode.FORBIDDEN_XML, "<!DOCTYPE> and other declarations", fatal=True)
        )

    def _scan_until_terminator(self, buf: bytearray, limit: int) -> bool:
        terminator = self._terminator
        found = buf.find(terminator, self._position, limit)
        if found < 0:
            self._position = max(self._position, limit - len(terminator) + 1)
            return False
        self._position = found + len(terminator)
        self._state = self._resume_state
        return True

    def _scan_start_tag(self, buf: bytearray, limit: int) -> bool:
        delimiter = _TAG_DELIMITER.search(buf, self._position, limit)
        if delimiter is None:
            self._position = limit
            return False
        at = delimiter.start()
        if buf[at] != ord(">"):
            self._skip_until(delimiter.group(), at + 1, _Scan.START_TAG)
            return True
        return self._start_tag_closed(buf, at)

    def _enter_start_tag(self, buf: bytearray, position: int, limit: int) -> bool:
        """Match a start tag whole when it is all buffered; else scan it piece by piece.

        The whole match is tried once per tag, so a tag fed byte by byte is
        not rescanned from its start on every feed.
        """
        whole = _WHOLE_START_TAG.match(buf, position, limit)
        if whole is None:
            self._position = position
            self._state = _Scan.START_TAG
            return True
        return self._start_tag_closed(buf, whole.end() - 1)

    def _start_tag_closed(self, buf: bytearray, at: int) -> bool:
        """The start tag ends with the ``>`` at ``at``: one level deeper, or self-closed."""
        self._position = at + 1
        if buf[at - 1] == _SLASH:
            return self._element_closed()
        self._depth += 1
        self._state = _Scan.TEXT
        return True

    def _scan_end_tag(self, buf: bytearray, limit: int) -> bool:
        closing = buf.find(b">", self._position, limit)
        if closing < 0:
            self._position = limit
            return False
        self._position = closing + 1
        self._depth -= 1
        return self._element_closed()

    def _element_closed(self) -> bool:
        if self._depth == 0:
            return self._finish(self._position)
        self._state = _Scan.TEXT
        return True
