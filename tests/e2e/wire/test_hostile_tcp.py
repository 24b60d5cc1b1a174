"""Hostile input over real TCP, against a real ``bourse serve`` process.

Why this module exists: tests/unit/test_hostile_xml.py and test_framing.py
prove that the XML reader and the frame decoder each refuse every attack.
This module proves that the assembled server does, through a socket and in
each framing where the attack makes sense, and that an attack costs nothing
beyond its own connection:

- the hostile client gets exactly the refusal the design promises, and then
  either the close (a framing the server cannot resynchronise from) or a
  connection that still answers;
- other clients are answered meanwhile, including while a slow or large
  hostile upload is still arriving (a client thread runs alongside it);
- an oversized upload is refused, not buffered: the server's resident memory
  stays far below the upload's size;
- the server neither dies nor logs a traceback, and the exchange ends
  exactly as it began.

"Exactly as it began" is checked through the protocol against a sentinel
account planted before the attacks: its resting orders still rest with the
same open shares and no executions, and its free cash and free shares are
proven to the cent by the largest orders they pay for being accepted while
one cent (one thousandth of a share) more is refused. Every attack document
that would change the exchange if it were obeyed also creates a canary
account, which must never come to exist.
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import itertools
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest
from lxml import etree

from tests.e2e.harness import (
    ServerProcess,
    frame_binary,
    frame_line,
    is_closed,
    read_replies,
    read_reply,
    running_server,
)

#: The default ``--max-request-size`` (16 MiB).
LIMIT = 16 * 1024 * 1024
#: Created by every attack document that would change the exchange if obeyed.
CANARY = "66600666"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
XINCLUDE = "http://www.w3.org/2001/XInclude"
SECRET_MARKER = "S3CRET-MARKER-d41d8cd9"

#: How long a connection the server means to close may take to close.
CLOSE_WITHIN = 5.0
#: How long a connection that must stay open is watched for a close.
STAYS_OPEN_FOR = 0.2
#: How long the normal client may take to be answered a few more times.
ANSWERS_WITHIN = 10.0
#: Answers the normal client must get while a hostile upload is unfinished.
ANSWERS_DURING_UPLOAD = 3
#: Upper bound on the normal client's requests (its loop is bounded).
MAX_NORMAL_REQUESTS = 1_000_000

#: The sentinel: deposited cash and shares, and the two orders left resting.
SENTINEL_BALANCE = "1000"
SENTINEL_SHARES = "50"
RESTING_BUY = ("10", "5")  # amount, limit: holds 50 of the cash
RESTING_SELL = ("-7", "100")  # holds 7 of the shares
FREE_CASH_IN_CENTS = 95_000  # 1000 - 10 x 5 = 950.00
FREE_SHARES = "43"  # 50 - 7
ONE_MORE_SHARE_FRACTION = "-43.001"

_ids = itertools.count(7_000_000)


def fresh_id() -> str:
    return str(next(_ids))


# -- reading replies -----------------------------------------------------------


Result = tuple[str, dict[str, str], str]


def attributes(element: etree._Element) -> dict[str, str]:
    return {str(name): str(value) for name, value in element.attrib.items()}


def results(reply: bytes) -> list[Result]:
    """(tag, attributes, text) of each child of ``<results>``."""
    assert reply.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<results>'), reply[:200]
    assert reply.endswith(b"</results>\n"), reply[-200:]
    root = etree.fromstring(reply)
    assert root.tag == "results"
    return [(str(child.tag), attributes(child), child.text or "") for child in root]


def request_error(reply: bytes) -> str:
    """The text of a whole-request ``<error>``; fails on any other reply."""
    [(tag, attrs, text)] = results(reply)
    assert (tag, attrs) == ("error", {}), reply
    return text


def history(reply: bytes) -> list[tuple[str, dict[str, str]]]:
    """The children of the single ``<status>`` or ``<canceled>`` in ``reply``."""
    [element] = etree.fromstring(reply)
    return [(str(child.tag), attributes(child)) for child in element]


# -- what a refusal looks like -------------------------------------------------


class After(enum.Enum):
    """What becomes of the hostile connection once its refusal is answered."""

    CLOSED = "the server closes it"
    USABLE = "it answers the next request"
    DISCARDING = "it stays open while the declared body is discarded"


@dataclass(frozen=True, slots=True)
class Refusal:
    """The ``<error>`` a hostile request must get, and what follows it."""

    message: str
    after: After

    def check(self, reply: bytes) -> None:
        assert request_error(reply) == self.message


DOCTYPE_REFUSED = Refusal("Forbidden XML construct: DOCTYPE is not allowed", After.USABLE)
DECLARATION_REFUSED_BARE = Refusal(
    "Forbidden XML construct: <!DOCTYPE> and other declarations", After.CLOSED
)
UNRECOGNISED_START = Refusal("Bad framing: unrecognised start of request", After.CLOSED)
WIDE_ENCODING = Refusal(
    "Unsupported encoding: only UTF-8 is accepted: UTF-16 or UTF-32 input", After.USABLE
)
NUL_BYTE = Refusal("Malformed XML: NUL byte in input", After.USABLE)
TOO_DEEP = Refusal("Invalid request: elements nested too deep", After.USABLE)
TEN_DIGIT_LENGTH = Refusal("Request too large: length of 10 digits or more", After.CLOSED)


def binary_length_too_large(length: int) -> Refusal:
    return Refusal(
        f"Request too large: binary length of {length} bytes, the limit is {LIMIT}", After.CLOSED
    )


def declared_length_too_large(length: int, after: After) -> Refusal:
    return Refusal(f"Request too large: {length} bytes declared, the limit is {LIMIT}", after)


def declared_encoding(name: str) -> Refusal:
    return Refusal(f"Unsupported encoding: only UTF-8 is accepted: declared {name}", After.USABLE)


def bare(xml: bytes) -> bytes:
    """The third framing: the document alone, ended by its root's end tag."""
    return xml


FRAMINGS: dict[str, Callable[[bytes], bytes]] = {
    "line": frame_line,
    "binary": frame_binary,
    "bare": bare,
}


def framed(framing: str, length_framed: Refusal, bare: Refusal) -> Refusal:
    """The refusal in ``framing``: one for both length framings, another when bare."""
    assert framing in FRAMINGS
    return bare if framing == "bare" else length_framed


# -- the sentinel and the checks that nothing changed ------------------------


@dataclass(frozen=True, slots=True)
class Sentinel:
    """An account with known cash, shares and resting orders."""

    account: str
    symbol: str
    buy_id: str
    sell_id: str


def ask(sock: socket.socket, xml: str) -> bytes:
    sock.sendall(frame_line(xml.encode()))
    return read_reply(sock)


def plant_sentinel(server: ServerProcess) -> Sentinel:
    account = fresh_id()
    symbol = f"SENTINEL{account}"
    with server.connect() as sock:
        created = ask(
            sock,
            f'<create><account id="{account}" balance="{SENTINEL_BALANCE}"/>'
            f'<symbol sym="{symbol}"><account id="{account}">{SENTINEL_SHARES}</account>'
            "</symbol></create>",
        )
        assert results(created) == [
            ("created", {"id": account}, ""),
            ("created", {"sym": symbol, "id": account}, ""),
        ]
        opened = results(
            ask(
                sock,
                f'<transactions id="{account}">'
                f'<order sym="{symbol}" amount="{RESTING_BUY[0]}" limit="{RESTING_BUY[1]}"/>'
                f'<order sym="{symbol}" amount="{RESTING_SELL[0]}" limit="{RESTING_SELL[1]}"/>'
                "</transactions>",
            )
        )
    assert [tag for tag, _, _ in opened] == ["opened", "opened"]
    return Sentinel(account, symbol, opened[0][1]["id"], opened[1][1]["id"])


def query_resting_buy(sentinel: Sentinel) -> str:
    return f'<transactions id="{sentinel.account}"><query id="{sentinel.buy_id}"/></transactions>'


def assert_resting_buy_untouched(reply: bytes, sentinel: Sentinel) -> None:
    [(tag, attrs, _)] = results(reply)
    assert (tag, attrs) == ("status", {"id": sentinel.buy_id})
    assert history(reply) == [("open", {"shares": RESTING_BUY[0]})]


def assert_answers_normally(sock: socket.socket, sentinel: Sentinel) -> bytes:
    """A normal request on ``sock`` gets its correct answer; the reply."""
    reply = ask(sock, query_resting_buy(sentinel))
    assert_resting_buy_untouched(reply, sentinel)
    return reply


def assert_server_healthy(server: ServerProcess) -> None:
    assert server.process.poll() is None, "".join(server.log)
    assert not any("Traceback" in line for line in server.log), "".join(server.log)


def shape(reply: bytes) -> list[tuple[str, str, list[tuple[str, dict[str, str]]]]]:
    """Each result's tag and text, and the tag and attributes of its children."""
    return [
        (str(child.tag), child.text or "", [(str(g.tag), attributes(g)) for g in child])
        for child in etree.fromstring(reply)
    ]


def assert_exchange_unchanged(server: ServerProcess, sentinel: Sentinel) -> list[bytes]:
    """The sentinel's orders, cash and shares are as planted; the canary does not exist.

    Free cash and shares are proven exactly: the largest buy the cash pays for
    and the largest sell the shares cover both open, while one cent (one
    thousandth of a share) more is refused. The probe orders are canceled
    before anything is asserted, so a failure here does not spill over.
    """
    assert_server_healthy(server)
    cents, symbol = FREE_CASH_IN_CENTS, sentinel.symbol
    with server.connect() as sock:
        probe = ask(
            sock,
            f'<transactions id="{sentinel.account}">'
            f'<query id="{sentinel.buy_id}"/><query id="{sentinel.sell_id}"/>'
            f'<order sym="{symbol}" amount="{cents + 1}" limit="0.01"/>'
            f'<order sym="{symbol}" amount="{cents}" limit="0.01"/>'
            f'<order sym="{symbol}" amount="{ONE_MORE_SHARE_FRACTION}" limit="1000"/>'
            f'<order sym="{symbol}" amount="-{FREE_SHARES}" limit="1000"/>'
            "</transactions>",
        )
        opened = [attrs["id"] for tag, attrs, _ in results(probe) if tag == "opened"]
        cancels = "".join(f'<cancel id="{order}"/>' for order in opened)
        canceled = (
            ask(sock, f'<transactions id="{sentinel.account}">{cancels}</transactions>')
            if opened
            else b""
        )
        canary = ask(
            sock, f'<transactions id="{CANARY}"><query id="{sentinel.buy_id}"/></transactions>'
        )
    resting_sell_shares = RESTING_SELL[0].removeprefix("-")
    assert shape(probe) == [
        ("status", "", [("open", {"shares": RESTING_BUY[0]})]),
        ("status", "", [("open", {"shares": resting_sell_shares})]),
        ("error", "Insufficient funds", []),
        ("opened", "", []),
        ("error", "Insufficient shares", []),
        ("opened", "", []),
    ], probe
    assert [result[1].get("id") for result in results(probe)[:2]] == [
        sentinel.buy_id,
        sentinel.sell_id,
    ]
    assert [(tag, [(g, a["shares"]) for g, a in parts]) for tag, _, parts in shape(canceled)] == [
        ("canceled", [("canceled", str(cents))]),
        ("canceled", [("canceled", FREE_SHARES)]),
    ], canceled
    assert results(canary) == [("error", {"id": sentinel.buy_id}, "Account does not exist")], canary
    return [probe, canceled, canary]


@pytest.fixture(scope="module")
def sentinel(server: ServerProcess) -> Sentinel:
    return plant_sentinel(server)


@pytest.fixture
def own_server(database_url: str) -> Iterator[ServerProcess]:
    """A server of its own, for a test that measures the process."""
    with running_server(database_url) as process:
        yield process
        assert process.stop() == 0, "".join(process.log)


# -- sending attacks -----------------------------------------------------------


def send_regardless(sock: socket.socket, data: bytes) -> bool:
    """Send ``data``; False when the server closed the connection first."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def check_aftermath(sock: socket.socket, refusal: Refusal, sentinel: Sentinel) -> list[bytes]:
    """The hostile connection after its refusal is as ``refusal`` says; replies seen."""
    if refusal.after is After.CLOSED:
        assert is_closed(sock, CLOSE_WITHIN)
        return []
    if refusal.after is After.USABLE:
        return [assert_answers_normally(sock, sentinel)]
    assert not is_closed(sock, STAYS_OPEN_FOR)
    return []


def assert_refused(
    server: ServerProcess,
    sentinel: Sentinel,
    payload: bytes,
    refusal: Refusal,
    *,
    half_close: bool = False,
) -> list[bytes]:
    """Send ``payload`` on a fresh connection; check the whole outcome; every reply seen.

    A bystander connected before the attack must be answered after it, and
    the exchange must be unchanged.
    """
    seen: list[bytes] = []
    with server.connect() as bystander, server.connect() as hostile:
        send_regardless(hostile, payload)
        if half_close:
            hostile.shutdown(socket.SHUT_WR)
        reply = read_reply(hostile)
        seen.append(reply)
        refusal.check(reply)
        seen += check_aftermath(hostile, refusal, sentinel)
        seen.append(assert_answers_normally(bystander, sentinel))
    seen += assert_exchange_unchanged(server, sentinel)
    return seen


# -- a normal client running alongside a slow attack ------------------------------


class NormalClient:
    """A well-behaved client in its own thread, on its own connection.

    It asks for the sentinel's resting buy over and over and checks every
    answer; the attack's test waits on ``wait_for_answers`` in the middle of
    its upload, so answers provably arrive while the upload is unfinished.
    """

    def __init__(self, server: ServerProcess, sentinel: Sentinel) -> None:
        self._server = server
        self._sentinel = sentinel
        self._stop = threading.Event()
        self._answered = 0
        self._progress = threading.Condition()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="normal-client", daemon=True)

    def __enter__(self) -> NormalClient:
        self._thread.start()
        assert self.wait_for_answers(1), self.errors
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(ANSWERS_WITHIN)
        assert not self._thread.is_alive()

    @property
    def answered(self) -> int:
        with self._progress:
            return self._answered

    def wait_for_answers(self, more: int) -> bool:
        """Whether ``more`` further correct answers arrive within ANSWERS_WITHIN."""
        with self._progress:
            target = self._answered + more
            return (
                self._progress.wait_for(
                    lambda: self._answered >= target or bool(self.errors), ANSWERS_WITHIN
                )
                and not self.errors
            )

    def _run(self) -> None:
        try:
            with self._server.connect() as sock:
                for _ in range(MAX_NORMAL_REQUESTS):
                    if self._stop.is_set():
                        return
                    assert_answers_normally(sock, self._sentinel)
                    with self._progress:
                        self._answered += 1
                        self._progress.notify_all()
        except BaseException as error:  # reported by the test through self.errors
            with self._progress:
                self.errors.append(error)
                self._progress.notify_all()


def upload(sock: socket.socket, chunks: Iterable[bytes], after_chunk: Callable[[int], None]) -> int:
    """Send ``chunks`` in turn, calling ``after_chunk(index)`` after each one sent.

    The bytes sent before the server closed the connection (all, if it did not).
    """
    sent = 0
    for index, chunk in enumerate(chunks):
        if not send_regardless(sock, chunk):
            break
        sent += len(chunk)
        after_chunk(index)
    return sent


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# -- entity expansion ----------------------------------------------------------


def create_canary(extra: str = "") -> str:
    return f'<create><account id="{CANARY}" balance="1"/>{extra}</create>'


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        references = f"&lol{level - 1};" * 10
        entities.append(f'<!ENTITY lol{level} "{references}">')
    shares = f'<symbol sym="LOL"><account id="{CANARY}">&lol9;</account></symbol>'
    doctype = f"<!DOCTYPE create [{''.join(entities)}]>"
    return (XML_DECLARATION + doctype + create_canary(shares)).encode()


def quadratic_blowup() -> bytes:
    """One 50 kB entity referenced 50,000 times: 2.5 GB if expanded."""
    entity = "1" * 50_000
    shares = f'<symbol sym="QUAD"><account id="{CANARY}">{"&a;" * 50_000}</account></symbol>'
    doctype = f'<!DOCTYPE create [<!ENTITY a "{entity}">]>'
    return (XML_DECLARATION + doctype + create_canary(shares)).encode()


def nested_entity_declarations(count: int = 25_000) -> bytes:
    """A chain of entities, each the previous one (the shape of CVE-2024-8176)."""
    declarations = ['<!ENTITY e0 "1">']
    declarations += [f'<!ENTITY e{n} "&e{n - 1};">' for n in range(1, count)]
    doctype = f"<!DOCTYPE create [{''.join(declarations)}]>"
    account = f'<create><account id="{CANARY}" balance="&e{count - 1};"/></create>'
    return (XML_DECLARATION + doctype + account).encode()


ENTITY_ATTACKS: dict[str, Callable[[], bytes]] = {
    "billion-laughs": billion_laughs,
    "quadratic-blowup": quadratic_blowup,
    "nested-entity-declarations": nested_entity_declarations,
}


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("attack", ENTITY_ATTACKS)
def test_entity_expansion_is_refused(
    server: ServerProcess, sentinel: Sentinel, attack: str, framing: str
) -> None:
    document = ENTITY_ATTACKS[attack]()
    refusal = framed(framing, DOCTYPE_REFUSED, DECLARATION_REFUSED_BARE)
    assert_refused(server, sentinel, FRAMINGS[framing](document), refusal)


# -- external resources --------------------------------------------------------


def general_entity(url: str) -> bytes:
    shares = f'<symbol sym="XXE"><account id="{CANARY}">&xxe;</account></symbol>'
    doctype = f'<!DOCTYPE create [<!ENTITY xxe SYSTEM "{url}">]>'
    return (XML_DECLARATION + doctype + create_canary(shares)).encode()


def parameter_entity(url: str) -> bytes:
    doctype = f'<!DOCTYPE create [<!ENTITY % xxe SYSTEM "{url}"> %xxe;]>'
    return (XML_DECLARATION + doctype + create_canary("<symbol sym='X'>&leak;</symbol>")).encode()


def system_dtd(url: str) -> bytes:
    doctype = f'<!DOCTYPE create SYSTEM "{url}">'
    return (XML_DECLARATION + doctype + create_canary("<symbol sym='X'>&leak;</symbol>")).encode()


def public_dtd(url: str) -> bytes:
    doctype = f'<!DOCTYPE create PUBLIC "-//bourse//hostile//EN" "{url}">'
    return (XML_DECLARATION + doctype + create_canary()).encode()


def xinclude(url: str) -> bytes:
    """No DOCTYPE at all: an XInclude, which only an explicit ``xinclude()`` would follow."""
    include = f'<xi:include xmlns:xi="{XINCLUDE}" href="{url}" parse="text"/>'
    return (XML_DECLARATION + create_canary(include)).encode()


XINCLUDE_REFUSED = Refusal(
    f"Invalid request: unknown element <{{{XINCLUDE}}}include> in <create>", After.USABLE
)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize(
    ("build", "target"),
    [
        (general_entity, "secret"),
        (parameter_entity, "dtd"),
        (system_dtd, "dtd"),
        (public_dtd, "dtd"),
        (xinclude, "secret"),
    ],
    ids=["general-entity", "parameter-entity", "system-dtd", "public-dtd", "xinclude"],
)
def test_external_entities_never_read_local_files(
    server: ServerProcess,
    sentinel: Sentinel,
    tmp_path: Path,
    build: Callable[[str], bytes],
    target: str,
    framing: str,
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_MARKER)
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak "{SECRET_MARKER}">')
    document = build((secret if target == "secret" else dtd).as_uri())
    if build is xinclude:
        refusal = XINCLUDE_REFUSED
    else:
        refusal = framed(framing, DOCTYPE_REFUSED, DECLARATION_REFUSED_BARE)
    seen = assert_refused(server, sentinel, FRAMINGS[framing](document), refusal)
    assert all(SECRET_MARKER.encode() not in reply for reply in seen)
    assert not any(SECRET_MARKER in line for line in server.log)


@pytest.fixture
def http_listener() -> Iterator[socket.socket]:
    """A loopback port whose backlog would hold any attempt to fetch a DTD."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize(
    ("build", "port"),
    [
        (system_dtd, 9),
        (system_dtd, None),
        (public_dtd, None),
        (parameter_entity, None),
        (general_entity, None),
    ],
    ids=["system-dtd-port-9", "system-dtd", "public-dtd", "parameter-entity", "general-entity"],
)
def test_external_dtds_are_never_fetched(
    server: ServerProcess,
    sentinel: Sentinel,
    http_listener: socket.socket,
    build: Callable[[str], bytes],
    port: int | None,
    framing: str,
) -> None:
    listening_port: int = http_listener.getsockname()[1]
    document = build(f"http://127.0.0.1:{port or listening_port}/x.dtd")
    refusal = framed(framing, DOCTYPE_REFUSED, DECLARATION_REFUSED_BARE)
    assert_refused(server, sentinel, FRAMINGS[framing](document), refusal)
    # A fetch would have connected before the refusal was sent.
    with pytest.raises(BlockingIOError):
        http_listener.accept()


# -- size and depth, with a normal client running alongside ----------------------


DEPTH = 100_000
DEEP_CHUNK = 16 * 1024


def deeply_nested() -> bytes:
    """100,000 nested elements inside an otherwise valid ``<create>``."""
    nest = "<a>" * DEPTH + "</a>" * DEPTH
    return (XML_DECLARATION + create_canary(nest)).encode()


@pytest.mark.parametrize("framing", FRAMINGS)
def test_deep_nesting_is_refused_while_others_are_served(
    server: ServerProcess, sentinel: Sentinel, framing: str
) -> None:
    payload = FRAMINGS[framing](deeply_nested())
    chunks = list(pieces(payload, DEEP_CHUNK))
    halfway = len(chunks) // 2
    with NormalClient(server, sentinel) as client, server.connect() as hostile:
        before = client.answered

        def after_chunk(index: int) -> None:
            if index == halfway:
                assert client.wait_for_answers(ANSWERS_DURING_UPLOAD), client.errors

        assert upload(hostile, chunks, after_chunk) == len(payload)
        answered_during_upload = client.answered - before
        TOO_DEEP.check(read_reply(hostile))
        check_aftermath(hostile, TOO_DEEP, sentinel)
    assert client.errors == []
    assert answered_during_upload >= ANSWERS_DURING_UPLOAD
    assert_exchange_unchanged(server, sentinel)


HUGE_VALUE = 50 * 1024 * 1024
HUGE_CHUNK = 1024 * 1024
#: Chunk after which the upload waits for the normal client: below the limit,
#: so the server is still receiving the hostile request.
HUGE_RENDEZVOUS = 8
HUGE_HEAD = f'{XML_DECLARATION}<create><account id="{CANARY}" balance="'.encode()
HUGE_TAIL = b'"/></create>'
HUGE_DOCUMENT_SIZE = len(HUGE_HEAD) + HUGE_VALUE + len(HUGE_TAIL)

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads memory from /proc/<pid>/status"
)


def memory_kib(server: ServerProcess, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (resident at peak) of the server, in KiB."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise AssertionError(f"no {field} in /proc/{server.process.pid}/status")


def huge_value_chunks() -> Iterator[bytes]:
    chunk = b"9" * HUGE_CHUNK
    for _ in range(HUGE_VALUE // HUGE_CHUNK):
        yield chunk
    yield HUGE_TAIL


@dataclass
class UploadRecord:
    """What was measured while a huge upload was in progress."""

    resident_kib: list[int]
    answered_during_upload: int = 0


def upload_huge_value(
    server: ServerProcess, hostile: socket.socket, client: NormalClient
) -> tuple[int, UploadRecord]:
    """Stream the 50 MB value, sampling VmRSS; bytes sent and the measurements."""
    record = UploadRecord(resident_kib=[])
    before = client.answered

    def after_chunk(index: int) -> None:
        record.resident_kib.append(memory_kib(server, "VmRSS"))
        if index == HUGE_RENDEZVOUS:
            assert client.wait_for_answers(ANSWERS_DURING_UPLOAD), client.errors

    sent = upload(hostile, huge_value_chunks(), after_chunk)
    record.answered_during_upload = client.answered - before
    return sent, record


@needs_proc
def test_a_50_megabyte_attribute_is_refused_at_once_and_never_buffered(
    own_server: ServerProcess,
) -> None:
    """Length-line framing: refused on the length alone, the body then discarded
    as it streams in, and the connection answers again after it."""
    sentinel = plant_sentinel(own_server)
    with NormalClient(own_server, sentinel) as client, own_server.connect() as hostile:
        baseline = memory_kib(own_server, "VmRSS")
        hostile.sendall(str(HUGE_DOCUMENT_SIZE).encode() + b"\n" + HUGE_HEAD)
        # Answered before a single byte of the value has been sent.
        declared_length_too_large(HUGE_DOCUMENT_SIZE, After.USABLE).check(read_reply(hostile))
        sent, record = upload_huge_value(own_server, hostile, client)
        assert sent == HUGE_VALUE + len(HUGE_TAIL)
        assert_answers_normally(hostile, sentinel)
        peak = max([*record.resident_kib, memory_kib(own_server, "VmHWM")])
    assert client.errors == []
    assert record.answered_during_upload >= ANSWERS_DURING_UPLOAD
    # The body is never held: growth stays a small fraction of its 50 MiB.
    assert peak - baseline < 8 * 1024, (baseline, peak)
    assert_exchange_unchanged(own_server, sentinel)


@needs_proc
def test_a_50_megabyte_bare_document_is_cut_off_at_the_limit(own_server: ServerProcess) -> None:
    """Bare framing has no length to refuse early: the server holds at most the
    limit (16 MiB) of the document, then refuses it and closes."""
    sentinel = plant_sentinel(own_server)
    with NormalClient(own_server, sentinel) as client, own_server.connect() as hostile:
        baseline = memory_kib(own_server, "VmRSS")
        hostile.sendall(HUGE_HEAD)
        sent, record = upload_huge_value(own_server, hostile, client)
        # Refused once the limit was reached (give or take the chunk in
        # flight), long before the end.
        assert LIMIT - HUGE_CHUNK <= sent < HUGE_VALUE
        refusal = Refusal(
            f"Request too large: XML document not closed within {LIMIT} bytes", After.CLOSED
        )
        refusal.check(read_reply(hostile))
        assert is_closed(hostile, CLOSE_WITHIN)
        peak = max([*record.resident_kib, memory_kib(own_server, "VmHWM")])
    assert client.errors == []
    assert record.answered_during_upload >= ANSWERS_DURING_UPLOAD
    # One request's worth (the limit) plus slack, far below the 50 MiB sent.
    assert peak - baseline < 28 * 1024, (baseline, peak)
    assert_exchange_unchanged(own_server, sentinel)


def test_a_50_megabyte_binary_length_is_refused_at_once(
    server: ServerProcess, sentinel: Sentinel
) -> None:
    payload = struct.pack("<I", HUGE_DOCUMENT_SIZE) + b"\n" + HUGE_HEAD
    assert_refused(server, sentinel, payload, binary_length_too_large(HUGE_DOCUMENT_SIZE))


# -- encodings other than UTF-8 ----------------------------------------------------


def in_encoding(name: str, *, bom: bytes = b"", codec: str = "", extra: str = "") -> bytes:
    text = f'<?xml version="1.0" encoding="{name}"?>' + create_canary(extra)
    return bom + text.encode(codec or name)


UTF7_DOCUMENT = (
    "<?xml version='1.0' encoding = 'utf-7' ?>"
    f"<create>+ADw-account id=+ACI-{CANARY}+ACI- balance=+ACI-1+ACI-/+AD4-</create>"
).encode()
CLOSED_MID_REQUEST = Refusal("Bad framing: connection closed mid-request", After.CLOSED)

ENCODING_ATTACKS: dict[str, tuple[bytes, Refusal, Refusal]] = {
    # name: (document, refusal when length-framed, refusal when bare)
    "utf16-le-bom": (
        in_encoding("UTF-16", bom=codecs.BOM_UTF16_LE, codec="utf-16-le"),
        WIDE_ENCODING,
        UNRECOGNISED_START,
    ),
    "utf16-be-bom": (
        in_encoding("UTF-16", bom=codecs.BOM_UTF16_BE, codec="utf-16-be"),
        WIDE_ENCODING,
        UNRECOGNISED_START,
    ),
    "utf16-be-declared": (in_encoding("UTF-16BE"), WIDE_ENCODING, UNRECOGNISED_START),
    # Bare, its end tags are invisible ("<" then NUL): it only ends with the stream.
    "utf16-le-declared": (in_encoding("UTF-16LE"), WIDE_ENCODING, CLOSED_MID_REQUEST),
    "utf32-le-bom": (
        in_encoding("UTF-32", bom=codecs.BOM_UTF32_LE, codec="utf-32-le"),
        WIDE_ENCODING,
        UNRECOGNISED_START,
    ),
    "utf16-declared-over-utf8-bytes": (
        in_encoding("UTF-16", codec="utf-8"),
        declared_encoding("UTF-16"),
        declared_encoding("UTF-16"),
    ),
    "utf7-declared": (UTF7_DOCUMENT, declared_encoding("utf-7"), declared_encoding("utf-7")),
}


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("attack", ENCODING_ATTACKS)
def test_encodings_other_than_utf8_are_refused(
    server: ServerProcess, sentinel: Sentinel, attack: str, framing: str
) -> None:
    document, length_framed, bare_refusal = ENCODING_ATTACKS[attack]
    # Short of 1000 bytes: see test_a_four_digit_length_line_is_not_read_as_a_binary_length.
    assert len(document) < 1000
    refusal = framed(framing, length_framed, bare_refusal)
    payload = FRAMINGS[framing](document)
    half_close = refusal is CLOSED_MID_REQUEST
    assert_refused(server, sentinel, payload, refusal, half_close=half_close)


# -- NUL bytes -------------------------------------------------------------------


TEXT_OUTSIDE_ROOT = Refusal("Bad framing: text outside the root element", After.CLOSED)

NUL_ATTACKS: dict[str, tuple[bytes, Refusal]] = {
    # where: (document, refusal when bare; length-framed, it is always NUL_BYTE)
    "between-elements": (
        f'<create><account id="{CANARY}" balance="1"/>\0</create>'.encode(),
        NUL_BYTE,
    ),
    "in-attribute": (
        f'<create><account id="{CANARY}" balance="1\0"/></create>'.encode(),
        NUL_BYTE,
    ),
    "in-tag-name": (
        f'<create><acc\0ount id="{CANARY}" balance="1"/></create>'.encode(),
        NUL_BYTE,
    ),
    # Bare, a NUL before the root is text where only whitespace may be.
    "before-root": ((XML_DECLARATION + "\0" + create_canary()).encode(), TEXT_OUTSIDE_ROOT),
}


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("where", NUL_ATTACKS)
def test_nul_bytes_in_xml_are_refused(
    server: ServerProcess, sentinel: Sentinel, where: str, framing: str
) -> None:
    document, bare_refusal = NUL_ATTACKS[where]
    refusal = framed(framing, NUL_BYTE, bare_refusal)
    assert_refused(server, sentinel, FRAMINGS[framing](document), refusal)


# -- hostile length prefixes -----------------------------------------------------

#: Follows every hostile prefix: were the prefix misread, it would run.
CANARY_DOCUMENT = create_canary().encode()


@pytest.mark.parametrize(
    ("prefix", "refusal"),
    [
        pytest.param(b"1000000000000\n", TEN_DIGIT_LENGTH, id="10^12"),
        pytest.param(b"1000000000000\r\n", TEN_DIGIT_LENGTH, id="10^12-crlf"),
        pytest.param(b"9999999999\n", TEN_DIGIT_LENGTH, id="ten-digits"),
        pytest.param(
            b"\xff\xff\xff\xff\n", binary_length_too_large(0xFFFF_FFFF), id="binary-2^32-1"
        ),
        pytest.param(
            b"999999999\n",
            declared_length_too_large(999_999_999, After.DISCARDING),
            id="nine-digits-over-limit",
        ),
        pytest.param(b"-5\n", UNRECOGNISED_START, id="negative"),
        pytest.param(b"-5\r\n", UNRECOGNISED_START, id="negative-crlf"),
        # Four bytes then a newline read as a binary length: "-123" is 858927405.
        pytest.param(b"-123\n", binary_length_too_large(858_927_405), id="negative-4-bytes"),
        pytest.param(b"abc\n", UNRECOGNISED_START, id="letters"),
        pytest.param(b"12a\n", UNRECOGNISED_START, id="digits-then-letter"),
        pytest.param(b"1e3\n", UNRECOGNISED_START, id="exponent"),
        pytest.param(b"5.0\n", UNRECOGNISED_START, id="decimal-point"),
        pytest.param(b"+5\n", UNRECOGNISED_START, id="plus-sign"),
        pytest.param(b"1 2\n", UNRECOGNISED_START, id="inner-space"),
        pytest.param("٥\n".encode(), UNRECOGNISED_START, id="arabic-indic-digit"),
        pytest.param(b"\0", UNRECOGNISED_START, id="leading-nul"),
        pytest.param(b"4\x002\n", UNRECOGNISED_START, id="nul-in-length"),
    ],
)
def test_hostile_length_prefixes_are_refused(
    server: ServerProcess, sentinel: Sentinel, prefix: bytes, refusal: Refusal
) -> None:
    assert_refused(server, sentinel, prefix + CANARY_DOCUMENT, refusal)


# -- a fatal error stays on its own connection -------------------------------------


def test_a_fatal_framing_error_closes_only_its_own_connection(
    server: ServerProcess, sentinel: Sentinel
) -> None:
    """Idle, half-sent and fresh connections all carry on; the hostile one's
    valid request before the error is answered and its bytes after it never run."""
    query = frame_line(query_resting_buy(sentinel).encode())
    newcomer = fresh_id()
    with (
        server.connect() as idle,
        server.connect() as halfway,
        server.connect() as hostile,
    ):
        assert_answers_normally(idle, sentinel)
        halfway.sendall(query[: len(query) // 2])
        hostile.sendall(
            frame_line(f'<create><account id="{newcomer}" balance="1"/></create>'.encode())
            + b"-5\n"
            + frame_line(CANARY_DOCUMENT)
        )
        created, refused = read_replies(hostile, 2)
        assert results(created) == [("created", {"id": newcomer}, "")]
        UNRECOGNISED_START.check(refused)
        assert is_closed(hostile, CLOSE_WITHIN)
        halfway.sendall(query[len(query) // 2 :])
        assert_resting_buy_untouched(read_reply(halfway), sentinel)
        assert_answers_normally(idle, sentinel)
        with server.connect() as fresh:
            assert_answers_normally(fresh, sentinel)
    assert_exchange_unchanged(server, sentinel)


def test_many_fatal_errors_at_once_leave_the_server_serving(
    server: ServerProcess, sentinel: Sentinel
) -> None:
    attacks = [
        (b"-5\n", UNRECOGNISED_START),
        (b"1000000000000\n", TEN_DIGIT_LENGTH),
        (b"\xff\xff\xff\xff\n", binary_length_too_large(0xFFFF_FFFF)),
        (b"<!DOCTYPE x>", DECLARATION_REFUSED_BARE),
    ] * 8
    with NormalClient(server, sentinel) as client, contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(server.connect()) for _ in attacks]
        for sock, (prefix, _) in zip(sockets, attacks, strict=True):
            sock.sendall(prefix + CANARY_DOCUMENT)
        for sock, (_, refusal) in zip(sockets, attacks, strict=True):
            refusal.check(read_reply(sock))
            assert is_closed(sock, CLOSE_WITHIN)
        assert client.wait_for_answers(ANSWERS_DURING_UPLOAD), client.errors
    assert client.errors == []
    assert_exchange_unchanged(server, sentinel)


# -- misreadings found while writing this module, now fixed --


def test_a_four_digit_length_line_is_not_read_as_a_binary_length(
    server: ServerProcess, sentinel: Sentinel
) -> None:
    """A spec-framed UTF-16 document of 1000 bytes or more: its length line
    also spells a binary length, but one over the limit and so impossible;
    the length line must win."""
    comment = "<!--" + "-" * 600 + "-->"
    document = in_encoding("UTF-16", bom=codecs.BOM_UTF16_LE, codec="utf-16-le", extra=comment)
    assert 1000 <= len(document) < 10_000
    assert_refused(server, sentinel, frame_line(document), WIDE_ENCODING)


def test_an_encoding_declared_past_long_whitespace_is_refused(server: ServerProcess) -> None:
    """The XML declaration may hold any amount of whitespace; UTF-16 declared
    after 1100 spaces of it is refused like any other."""
    account = fresh_id()
    document = (
        '<?xml version="1.0"' + " " * 1100 + 'encoding="UTF-16"?>'
        f'<create><account id="{account}" balance="1"/></create>'
    ).encode()
    with server.connect() as sock:
        sock.sendall(frame_line(document))
        declared_encoding("UTF-16").check(read_reply(sock))
