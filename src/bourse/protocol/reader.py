"""XML request bytes → ``Request`` or ``RequestError``, without I/O.

Every byte here comes from an untrusted client, so the parse is hardened in
layers. Python's bundled expat (2.5.0) crashes the whole process on nested
entity declarations (CVE-2024-8176), so ``xml.etree`` never sees client
input; libxml2 through lxml does, with entity substitution, DTD loading and
network access switched off (docs/xml-parsing.md has the measurements behind
the choice). A DOCTYPE is refused on the raw bytes before parsing and again
on the parsed document. A resolver answers every external load with an empty
document, because ``load_dtd=False`` alone does not stop lxml from reading a
local external DTD (with lxml 6.1 and libxml2 2.14, ``collect_ids=False``
makes it do so). Only UTF-8 is accepted: the encoding is screened on the raw
bytes and the parser is pinned to UTF-8 so that no declaration can switch
its decoder.

This module owns those layers; what the parsed tree may contain is the
grammar's (``grammar.read_root``), kept apart so that neither changes the
other.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from bourse.core.commands import Request
from bourse.core.errors import ErrorCode
from bourse.protocol.events import RequestError
from bourse.protocol.grammar import DEFAULT_LIMITS, ReaderLimits, quote, read_root

__all__ = ["DEFAULT_LIMITS", "ReaderLimits", "read_request"]

_MAX_PARSER_MESSAGE = 200

_ACCEPTED_ENCODINGS = frozenset({"utf-8", "us-ascii", "ascii"})
#: Byte-order marks, and the first bytes of ``<`` in UTF-16/32 without one.
_WIDE_ENCODING_PREFIXES = (
    b"\x00\x00\xfe\xff",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\x00\x00\x00<",
    b"<\x00\x00\x00",
    b"\x00<",
    b"<\x00",
)
_DECLARED_ENCODING = re.compile(
    rb"(?:\xef\xbb\xbf)?<\?xml[ \t\r\n][^>]*?encoding[ \t\r\n]*=[ \t\r\n]*"
    rb"(?:\"([^\"]*)\"|'([^']*)')",
)
_DOCTYPE = b"<!DOCTYPE"

#: libxml2 error numbers for a hit limit (lxml's ``etree.ErrorTypes``, which
#: lxml-stubs does not declare).
_XML_ERR_RESOURCE_LIMIT = 114
_XML_ERR_NAME_TOO_LONG = 110
_LIMIT_ERROR_CODES = frozenset({_XML_ERR_RESOURCE_LIMIT, _XML_ERR_NAME_TOO_LONG})
#: How libxml2 words its element-depth limit, the one limit that is a grammar
#: violation (ours allows depth 3) rather than a size.
_EXCESSIVE_DEPTH = "depth in document"


class _RefuseExternalResources(etree.Resolver):
    """Answers every external DTD or entity load with an empty document."""

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        return self.resolve_string(b"", context, base_url=None)


def _hardened_parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=True,
    )
    parser.resolvers.add(_RefuseExternalResources())
    return parser


_PARSER = _hardened_parser()


def read_request(body: bytes, limits: ReaderLimits = DEFAULT_LIMITS) -> Request | RequestError:
    """The request ``body`` holds, or why it is refused. Never raises."""
    refusal = _screen_bytes(body)
    if refusal is not None:
        return refusal
    root = _parse(body)
    if isinstance(root, RequestError):
        return root
    return read_root(root, limits)


# -- before parsing ----------------------------------------------------------


def _screen_bytes(body: bytes) -> RequestError | None:
    """Refusals decided on the raw bytes: encodings, NUL bytes, DOCTYPE."""
    if body.startswith(_WIDE_ENCODING_PREFIXES):
        return RequestError(ErrorCode.UNSUPPORTED_ENCODING, "UTF-16 or UTF-32 input")
    declared = _declared_encoding(body)
    if declared is not None and declared.lower() not in _ACCEPTED_ENCODINGS:
        return RequestError(ErrorCode.UNSUPPORTED_ENCODING, f"declared {quote(declared)}")
    if b"\x00" in body:
        return RequestError(ErrorCode.MALFORMED_XML, "NUL byte in input")
    if _DOCTYPE in body:
        return RequestError(ErrorCode.FORBIDDEN_XML, "DOCTYPE is not allowed")
    return None


def _declared_encoding(body: bytes) -> str | None:
    """The encoding named by the XML declaration, if there is one."""
    match = _DECLARED_ENCODING.match(body)
    if match is None:
        return None
    name = match.group(1) if match.group(1) is not None else match.group(2)
    return name.decode("ascii", errors="replace")


# -- parsing -----------------------------------------------------------------


def _parse(body: bytes) -> etree._Element | RequestError:
    """The root element of ``body``, parsed by the hardened parser."""
    try:
        root: etree._Element = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as error:
        return _parser_refusal(error)
    if root.getroottree().docinfo.internalDTD is not None:
        return RequestError(ErrorCode.FORBIDDEN_XML, "DOCTYPE is not allowed")
    return root


def _parser_refusal(error: etree.XMLSyntaxError) -> RequestError:
    """Classifies a libxml2 error: a hit limit, or plain malformed XML."""
    message = _parser_message(error)
    code: int = getattr(error, "code", 0)
    if code in _LIMIT_ERROR_CODES:
        if _EXCESSIVE_DEPTH in message:
            return RequestError(ErrorCode.INVALID_REQUEST, "elements nested too deep")
        return RequestError(ErrorCode.REQUEST_TOO_LARGE, message)
    return RequestError(ErrorCode.MALFORMED_XML, message)


def _parser_message(error: etree.XMLSyntaxError) -> str:
    """libxml2's message on one line, cut to a safe length."""
    text = " ".join(str(error.msg or error).split())
    if len(text) > _MAX_PARSER_MESSAGE:
        return text[:_MAX_PARSER_MESSAGE] + "..."
    return text
