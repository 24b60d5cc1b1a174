"""Hostile XML at the reader: each attack is answered with the right
``RequestError``, quickly, without touching files or the network, and no
input at all makes the reader raise."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from bourse.core.commands import Rejected, Request, TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.core.results import Error
from bourse.protocol.events import RequestError
from bourse.protocol.reader import _parse, _RefuseExternalResources, read_request
from bourse.protocol.render import render_error, render_results

#: Generous bound: each attack is refused in milliseconds; a blow-up takes
#: minutes or memory the machine does not have.
QUICKLY = 5.0


def refused_quickly(body: bytes, code: ErrorCode) -> RequestError:
    started = time.perf_counter()
    outcome = read_request(body)
    elapsed = time.perf_counter() - started
    assert isinstance(outcome, RequestError), outcome
    assert outcome.code is code, outcome
    assert elapsed < QUICKLY
    return outcome


# -- entity expansion --------------------------------------------------------


def billion_laughs() -> bytes:
    levels = ['<!ENTITY lol0 "lol">']
    levels += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    return f"<!DOCTYPE create [{''.join(levels)}]><create>&lol9;</create>".encode()


def quadratic_blowup() -> bytes:
    entity = "x" * 50_000
    return (f'<!DOCTYPE create [<!ENTITY a "{entity}">]><create>{"&a;" * 50_000}</create>').encode()


def nested_entity_declarations(count: int = 25_000) -> bytes:
    """The shape of CVE-2024-8176: a long chain of entities, each using the last."""
    declarations = ['<!ENTITY e0 "x">']
    declarations += [f'<!ENTITY e{n} "&e{n - 1};">' for n in range(1, count)]
    return f"<!DOCTYPE create [{''.join(declarations)}]><create>&e{count - 1};</create>".encode()


@pytest.mark.parametrize(
    "attack",
    [billion_laughs, quadratic_blowup, nested_entity_declarations],
    ids=["billion-laughs", "quadratic-blowup", "nested-entity-declarations"],
)
def test_entity_expansion_attacks_are_forbidden(attack: Callable[[], bytes]) -> None:
    refused_quickly(attack(), ErrorCode.FORBIDDEN_XML)


@pytest.mark.parametrize(
    "attack",
    [billion_laughs, quadratic_blowup, nested_entity_declarations],
    ids=["billion-laughs", "quadratic-blowup", "nested-entity-declarations"],
)
def test_the_parser_itself_expands_nothing_and_still_refuses(attack: Callable[[], bytes]) -> None:
    """Defence in depth: past the byte screen, libxml2's amplification limits
    or the DOCTYPE check on the parsed document still refuse, quickly."""
    started = time.perf_counter()
    outcome = _parse(attack())
    assert time.perf_counter() - started < QUICKLY
    assert isinstance(outcome, RequestError)
    assert outcome.code in {ErrorCode.FORBIDDEN_XML, ErrorCode.REQUEST_TOO_LARGE}


@pytest.mark.parametrize("spelling", [b"<!DOCTYPE create>", b"<!DOCTYPE create []>"])
def test_any_doctype_is_forbidden(spelling: bytes) -> None:
    refused_quickly(spelling + b"<create/>", ErrorCode.FORBIDDEN_XML)


@pytest.mark.parametrize("spelling", [b"<!DOCTYPE create>", b"<!DOCTYPE create []>"])
def test_a_doctype_past_the_byte_screen_is_caught_on_the_parsed_document(spelling: bytes) -> None:
    outcome = _parse(spelling + b"<create/>")
    assert isinstance(outcome, RequestError)
    assert outcome.code is ErrorCode.FORBIDDEN_XML


# -- external resources ------------------------------------------------------


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-CONTENTS")
    return path


def external_entity(target: str) -> bytes:
    return (
        f'<!DOCTYPE create [<!ENTITY leak SYSTEM "{target}">]>'
        '<create><account id="1" balance="1"/><symbol sym="A">'
        "<account id='1'>&leak;</account></symbol></create>"
    ).encode()


def test_external_entity_on_a_local_file_is_refused_without_its_contents(
    secret_file: Path,
) -> None:
    body = external_entity(secret_file.as_uri())
    outcome = refused_quickly(body, ErrorCode.FORBIDDEN_XML)
    assert "TOP-SECRET" not in repr(outcome)
    parsed = _parse(body)
    assert isinstance(parsed, RequestError)
    assert "TOP-SECRET" not in repr(parsed)


def test_external_dtd_over_http_is_refused() -> None:
    body = b'<!DOCTYPE create SYSTEM "http://127.0.0.1:9/x.dtd"><create/>'
    refused_quickly(body, ErrorCode.FORBIDDEN_XML)
    parsed = _parse(body)
    assert isinstance(parsed, RequestError)
    assert parsed.code is ErrorCode.FORBIDDEN_XML


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local TCP port that records any connection attempt in its backlog."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server


def assert_no_connection_attempted(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


def test_no_network_access_is_attempted_for_external_dtds(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    dtd = f'<!DOCTYPE create SYSTEM "http://127.0.0.1:{port}/x.dtd"><create/>'.encode()
    entity = external_entity(f"http://127.0.0.1:{port}/leak")
    for body in (dtd, entity):
        assert isinstance(read_request(body), RequestError)
        assert isinstance(_parse(body), RequestError)
    assert_no_connection_attempted(listener)


def opened_while(path: Path, action: Callable[[], object]) -> bool:
    """Whether anything opened the FIFO at ``path`` for reading during ``action``.

    Opening a FIFO for writing without blocking succeeds only while a reader
    has it open, and a reader's open blocks until a writer comes: a watcher
    that keeps trying both detects and releases any reader.
    """
    finished = threading.Event()
    opened: list[bool] = []
    failures: list[int | None] = []

    def watch() -> None:
        while not finished.is_set():
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO:
                    failures.append(error.errno)
                time.sleep(0.002)
                continue
            opened.append(True)
            os.close(descriptor)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        action()
    finally:
        finished.set()
        watcher.join()
    assert not failures
    return bool(opened)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE create SYSTEM "{uri}"><create/>',
        '<!DOCTYPE create PUBLIC "-//x//y" "{uri}"><create/>',
        '<!DOCTYPE create [<!ENTITY % p SYSTEM "{uri}"> %p;]><create/>',
        '<!DOCTYPE create [<!ENTITY e SYSTEM "{uri}">]><create>&e;</create>',
    ],
    ids=["system-dtd", "public-dtd", "parameter-entity", "external-entity"],
)
def test_the_parser_never_opens_a_local_file(tmp_path: Path, template: str) -> None:
    fifo = tmp_path / "resource.dtd"
    os.mkfifo(fifo)
    body = template.format(uri=fifo.as_uri()).encode()
    assert not opened_while(fifo, lambda: _parse(body))
    assert not opened_while(fifo, lambda: read_request(body))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_the_resolver_answers_external_loads_without_opening_files(tmp_path: Path) -> None:
    """Even a parser told to load DTDs opens nothing once the resolver is in."""
    fifo = tmp_path / "resource.dtd"
    os.mkfifo(fifo)
    parser = etree.XMLParser(load_dtd=True, resolve_entities=False, no_network=True)
    parser.resolvers.add(_RefuseExternalResources())
    body = f'<!DOCTYPE create SYSTEM "{fifo.as_uri()}"><create/>'.encode()
    assert not opened_while(fifo, lambda: etree.fromstring(body, parser))


# -- size and shape ----------------------------------------------------------


def test_deep_nesting_is_invalid() -> None:
    body = b"<create>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</create>"
    outcome = refused_quickly(body, ErrorCode.INVALID_REQUEST)
    assert "deep" in outcome.detail


def test_a_50_megabyte_attribute_value_is_too_large() -> None:
    body = b'<create><account id="1" balance="' + b"9" * 50_000_000 + b'"/></create>'
    refused_quickly(body, ErrorCode.REQUEST_TOO_LARGE)


def test_a_50_megabyte_text_is_too_large() -> None:
    body = b'<create><symbol sym="A"><account id="1">' + b"9" * 50_000_000 + b"</account>"
    refused_quickly(body + b"</symbol></create>", ErrorCode.REQUEST_TOO_LARGE)


def test_an_overlong_element_name_is_too_large() -> None:
    refused_quickly(b"<create><" + b"a" * 60_000 + b"/></create>", ErrorCode.REQUEST_TOO_LARGE)


def test_many_attributes_on_one_element_refuse_it_quickly() -> None:
    attributes = " ".join(f'a{n}="{n}"' for n in range(50_000))
    body = f'<transactions id="1"><query id="1" {attributes}/></transactions>'.encode()
    started = time.perf_counter()
    outcome = read_request(body)
    assert time.perf_counter() - started < QUICKLY
    assert isinstance(outcome, TransactionsRequest), outcome
    assert outcome.commands == (Rejected(ErrorCode.UNEXPECTED_ATTRIBUTE, (("id", "1"),)),)


def test_more_commands_than_the_limit_are_too_large() -> None:
    body = b'<transactions id="1">' + b'<query id="1"/>' * 100_001 + b"</transactions>"
    refused_quickly(body, ErrorCode.REQUEST_TOO_LARGE)


def test_a_huge_symbol_fan_out_is_cut_at_the_limit() -> None:
    accounts = b'<account id="1">1</account>' * 100_001
    body = b'<create><symbol sym="A">' + accounts + b"</symbol></create>"
    refused_quickly(body, ErrorCode.REQUEST_TOO_LARGE)


# -- encodings and bytes -----------------------------------------------------

CREATE = '<create><account id="1" balance="1"/></create>'


@pytest.mark.parametrize(
    "body",
    [
        "\ufeff<create/>".encode("utf-16-le"),
        "\ufeff<create/>".encode("utf-16-be"),
        "<create/>".encode("utf-16"),
        ('<?xml version="1.0" encoding="UTF-16"?>' + CREATE).encode("utf-16"),
        ('<?xml version="1.0" encoding="UTF-16"?>' + CREATE).encode("utf-16-le"),
        ('<?xml version="1.0" encoding="UTF-16"?>' + CREATE).encode("utf-16-be"),
        ('<?xml version="1.0" encoding="UTF-16"?>' + CREATE).encode(),
        "<create/>".encode("utf-32"),
        ('<?xml version="1.0" encoding="UTF-32"?>' + CREATE).encode("utf-32-le"),
        b'<?xml version="1.0" encoding="UTF-7"?><create>+ADw-account id="1"/+AD4-</create>',
        b"<?xml version='1.0' encoding='utf-7'?>+ADw-!DOCTYPE x+AD4-<create/>",
        b'\xef\xbb\xbf<?xml version="1.0" encoding="ISO-8859-1"?><create/>',
    ],
    ids=[
        "utf16le-bom",
        "utf16be-bom",
        "utf16-native-bom",
        "utf16-bom-declared",
        "utf16le-declared",
        "utf16be-declared",
        "utf8-bytes-declared-utf16",
        "utf32-bom",
        "utf32le-declared",
        "utf7-declared",
        "utf7-hidden-doctype",
        "latin1-after-utf8-bom",
    ],
)
def test_encodings_other_than_utf8_are_unsupported(body: bytes) -> None:
    refused_quickly(body, ErrorCode.UNSUPPORTED_ENCODING)


def test_ebcdic_is_never_decoded() -> None:
    body = ("<?xml version='1.0'?>" + CREATE).encode("cp500")
    refused_quickly(body, ErrorCode.MALFORMED_XML)


@pytest.mark.parametrize(
    "body",
    [
        b"<create>\x00</create>",
        b'<create><account id="1\x00" balance="1"/></create>',
        b"<create/>\x00",
        b"\x00",
    ],
)
def test_nul_bytes_are_malformed(body: bytes) -> None:
    assert "NUL" in refused_quickly(body, ErrorCode.MALFORMED_XML).detail


@pytest.mark.parametrize(
    "sequence",
    [
        b"\xff",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\x80",
        b"\xe2\x82",
    ],
    ids=["ff", "overlong-slash", "overlong-3", "surrogate", "above-max", "continuation", "cut"],
)
def test_invalid_utf8_is_malformed(sequence: bytes) -> None:
    body = b'<transactions id="1"><order sym="A' + sequence + b'" amount="1" limit="1"/>'
    refused_quickly(body + b"</transactions>", ErrorCode.MALFORMED_XML)


def test_an_undefined_entity_is_malformed() -> None:
    refused_quickly(b"<create>&xxe;</create>", ErrorCode.MALFORMED_XML)


# -- fuzzing -----------------------------------------------------------------


def assert_answerable(outcome: Request | RequestError) -> None:
    """Whatever the reader answered renders to a document lxml can read."""
    if isinstance(outcome, RequestError):
        response = render_error(outcome)
    else:
        rejected = [c for c in outcome.commands if isinstance(c, Rejected)]
        response = render_results([Error(command.code, command.echo) for command in rejected])
    assert etree.fromstring(response).tag == "results"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2_000))
def test_any_bytes_give_a_request_or_a_request_error(body: bytes) -> None:
    outcome = read_request(body)
    assert_answerable(outcome)


TAGS = ["create", "transactions", "account", "symbol", "order", "query", "cancel", "results"]
NAMES = ["id", "balance", "sym", "amount", "limit", "x"]
VALUES = st.one_of(
    st.sampled_from(["1", "007", "-5", "0", "0100", "1.5", "+1", "1e3", "SPY", "", "-0"]),
    st.text(max_size=12),
)


def xml_text(value: str) -> str:
    """``value`` with the characters XML 1.0 cannot carry dropped."""
    return "".join(c for c in value if c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or c > "\ue000")


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(TAGS))
    attributes = draw(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4))
    written = "".join(f" {name}={quoteattr(xml_text(value))}" for name, value in attributes.items())
    text = escape(xml_text(draw(st.sampled_from(["", " ", "\n  ", "5", "x"]))))
    children = draw(st.lists(elements(depth + 1), max_size=4)) if depth < 3 else []
    return f"<{tag}{written}>{text}{''.join(children)}</{tag}>"


@settings(max_examples=200, deadline=None)
@given(elements())
def test_grammar_shaped_documents_never_raise(document: str) -> None:
    outcome = read_request(document.encode())
    assert_answerable(outcome)


VALID = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<transactions id="1">\n'
    b'  <order sym="SPY" amount="100" limit="125.5"/>\n  <query id="1"/>\n'
    b'  <cancel id="2"/>\n</transactions>\n'
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_documents_never_raise(data: st.DataObject) -> None:
    body = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(body)))
        replacement = data.draw(st.binary(max_size=4))
        cut = data.draw(st.integers(0, 4))
        body[position : position + cut] = replacement
    outcome = read_request(bytes(body))
    assert_answerable(outcome)
