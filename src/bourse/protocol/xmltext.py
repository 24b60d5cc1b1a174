"""Escaping for the XML bourse writes: replies, and its own clients' requests.

Why one module: attribute values and text echo whatever a client sent, so
every writer must escape them the same way, and the reply renderer and the
load generator's request writer once each had their own rules. Here ``& <
> "`` are always escaped, and tab, newline and carriage return in an
attribute become character references so that they survive attribute-value
normalisation (carriage return in text too). Characters XML 1.0 cannot carry
at all (C0 controls, lone surrogates, U+FFFE, U+FFFF) become U+FFFD, so what
is written always parses. Most values need none of this: a single
regular-expression search finds them and returns the value untouched, which
keeps the reply hot path cheap (docs/xml-parsing.md).
"""

from __future__ import annotations

import re

from bourse.core.commands import Attrs

_NOT_XML_CHARACTER = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_ATTRIBUTE_SPECIAL = re.compile(f'[&<>"\t\n\r{_NOT_XML_CHARACTER}]')
_TEXT_SPECIAL = re.compile(f'[&<>"\r{_NOT_XML_CHARACTER}]')
_REPLACEMENTS = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "\t": "&#9;",
    "\n": "&#10;",
    "\r": "&#13;",
}
_REPLACEMENT_CHARACTER = "\ufffd"


def escape_attribute(value: str) -> str:
    """``value`` safe inside a double-quoted attribute."""
    if _ATTRIBUTE_SPECIAL.search(value) is None:
        return value
    return _ATTRIBUTE_SPECIAL.sub(_replacement, value)


def escape_text(value: str) -> str:
    """``value`` safe as element content."""
    if _TEXT_SPECIAL.search(value) is None:
        return value
    return _TEXT_SPECIAL.sub(_replacement, value)


def attributes(attrs: Attrs) -> str:
    """`` name="value"`` for each pair, in order, each value escaped."""
    text = ""
    for name, value in attrs:
        text += f' {name}="{escape_attribute(value)}"'
    return text


def _replacement(match: re.Match[str]) -> str:
    return _REPLACEMENTS.get(match.group(), _REPLACEMENT_CHARACTER)
