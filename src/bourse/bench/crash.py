"""Crash cycles: load the exchange, kill something, restart, check nothing
acknowledged was lost.

Each cycle starts ``bourse serve`` (embedded PostgreSQL in a data directory
that survives the cycles), drives it with pipelined clients and
one-request-per-connection clients, and in the middle of the load applies
one fault, in rotation: ``kill -9`` of the server, ``kill -9`` of its
PostgreSQL, a ``SIGSTOP`` of PostgreSQL long enough for commits to time
out, a ``SIGSTOP`` then ``kill -9`` of the server. Then it restarts what is
down and checks, through the protocol and in SQL, that every order, fill
and cancel a client saw acknowledged is still there and answered the same,
and that cash and shares are conserved.

``python -m bourse.bench.crash --cycles 50`` runs the long version; the
test suite runs a few cycles of the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from lxml import etree

from bourse.bench.server_process import Server
from bourse.bench.xml import frame
from bourse.store.embedded import libpq_url, read_postmaster_info
from bourse.store.store import Store

REPLY_END = b"</results>\n"
SYMBOLS = ("AAA", "BBB")
FAULTS = ("kill-server", "kill-postgres", "stop-postgres", "stop-then-kill-server")


@dataclass(slots=True)
class Fill:
    """One execution as a client saw it."""

    shares: str
    price: str
    time: str


@dataclass(slots=True)
class SeenOrder:
    """What clients were told about one order."""

    account_id: str
    amount: Decimal
    fills: list[Fill] = field(default_factory=list)
    canceled: str | None = None


@dataclass(slots=True)
class Acknowledged:
    """Everything the exchange acknowledged to the clients, across cycles."""

    orders: dict[int, SeenOrder] = field(default_factory=dict)
    requests: int = 0


# the clients


async def _exchange(host: str, port: int, xml: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(frame(xml))
        return await reader.readuntil(REPLY_END)
    finally:
        writer.close()


def _parse(reply: bytes) -> list[etree._Element]:
    return list(etree.fromstring(reply))


class Client:
    """One account trading on its own: orders, queries and cancels of its
    own acknowledged orders; every acknowledgement is recorded."""

    def __init__(self, account_id: str, seen: Acknowledged, rng: random.Random) -> None:
        self.account_id = account_id
        self.seen = seen
        self.rng = rng

    def next_request(self) -> bytes:
        rng = self.rng
        own = [oid for oid, o in self.seen.orders.items() if o.account_id == self.account_id]
        children = []
        for _ in range(rng.randint(1, 3)):
            roll = rng.random()
            if own and roll < 0.15:
                children.append(f'<query id="{rng.choice(own)}"/>')
            elif own and roll < 0.3:
                children.append(f'<cancel id="{rng.choice(own)}"/>')
            else:
                amount = rng.randint(1, 20) * rng.choice((1, -1))
                limit = f"{rng.randint(95, 105)}.{rng.randint(0, 99):02d}"
                children.append(
                    f'<order sym="{rng.choice(SYMBOLS)}" amount="{amount}" limit="{limit}"/>'
                )
        return f'<transactions id="{self.account_id}">{"".join(children)}</transactions>'.encode()

    def record(self, reply: bytes) -> None:
        """Note what an acknowledged reply says (an "unavailable" refusal
        acknowledges nothing)."""
        if b"Exchange unavailable" in reply:
            return
        self.seen.requests += 1
        for element in _parse(reply):
            if element.tag == "opened":
                self.seen.orders[int(element.get("id", "0"))] = SeenOrder(
                    self.account_id, Decimal(element.get("amount", "0"))
                )
            elif element.tag in ("status", "canceled"):
                self._record_history(element)

    def _record_history(self, element: etree._Element) -> None:
        order = self.seen.orders[int(element.get("id", "0"))]
        fills = [
            Fill(e.get("shares", ""), e.get("price", ""), e.get("time", ""))
            for e in element
            if e.tag == "executed"
        ]
        if len(fills) > len(order.fills):
            order.fills = fills
        for part in element:
            if part.tag == "canceled":
                order.canceled = part.get("shares")

    async def run_pipelined(self, host: str, port: int, stop: asyncio.Event) -> None:
        """Send requests in bursts of several before reading their replies."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            reader, writer = await asyncio.open_connection(host, port)
            while not stop.is_set():
                burst = [self.next_request() for _ in range(self.rng.randint(2, 5))]
                writer.write(b"".join(frame(xml) for xml in burst))
                for _ in burst:
                    self.record(await reader.readuntil(REPLY_END))
            writer.close()

    async def run_one_per_connection(self, host: str, port: int, stop: asyncio.Event) -> None:
        """Send each request on a connection of its own."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while not stop.is_set():
                self.record(await _exchange(host, port, self.next_request()))


# one cycle


async def _load_until_fault(
    server: Server, clients: list[Client], fault: str, rng: random.Random
) -> None:
    stop = asyncio.Event()
    half = len(clients) // 2
    tasks = [
        *(
            asyncio.create_task(c.run_pipelined("127.0.0.1", server.port, stop))
            for c in clients[:half]
        ),
        *(
            asyncio.create_task(c.run_one_per_connection("127.0.0.1", server.port, stop))
            for c in clients[half:]
        ),
    ]
    await asyncio.sleep(rng.uniform(0.3, 1.5))
    await asyncio.to_thread(_apply_fault, server, fault)
    stop.set()
    await asyncio.wait(tasks, timeout=server.commit_timeout * 4 + 30)
    for task in tasks:
        task.cancel()


def _apply_fault(server: Server, fault: str) -> None:
    if fault == "kill-server":
        server.signal(signal.SIGKILL)
        server.wait_dead()
    elif fault == "kill-postgres":
        os.kill(server.postgres_pid(), signal.SIGKILL)
        time.sleep(1.0)
    elif fault == "stop-postgres":
        frozen = freeze(server.postgres_pid())
        time.sleep(server.commit_timeout + 1.0)
        thaw(frozen)
    elif fault == "stop-then-kill-server":
        server.signal(signal.SIGSTOP)
        time.sleep(0.5)
        server.signal(signal.SIGKILL)
        server.wait_dead()


def freeze(postmaster_pid: int) -> list[int]:
    """SIGSTOP a PostgreSQL server and every process it runs (its sessions
    included: stopping the postmaster alone leaves them serving); the pids
    stopped, for ``thaw``."""
    postmaster = psutil.Process(postmaster_pid)
    pids = [postmaster_pid, *(child.pid for child in postmaster.children(recursive=True))]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def thaw(pids: list[int]) -> None:
    """SIGCONT what ``freeze`` stopped."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _restart_if_down(server: Server) -> None:
    if server.process is None or server.process.poll() is not None:
        server.start()


async def _wait_available(server: Server, within: float = 120.0) -> None:
    """Wait until the exchange has recovered and answers again."""
    deadline = time.monotonic() + within
    probe = b'<transactions id="0"><query id="1"/></transactions>'
    while b"unavailable" in await _exchange("127.0.0.1", server.port, probe):
        if time.monotonic() > deadline:
            raise RuntimeError("the exchange did not recover")
        await asyncio.sleep(0.2)


# checks


#: Queries sent in one request while verifying.
QUERIES_PER_REQUEST = 200


async def _verify(server: Server, seen: Acknowledged) -> list[str]:
    """Query every acknowledged order of every account, many per request."""
    by_account: dict[str, list[int]] = {}
    for order_id, order in seen.orders.items():
        by_account.setdefault(order.account_id, []).append(order_id)
    problems = []
    for account_id, order_ids in by_account.items():
        for start in range(0, len(order_ids), QUERIES_PER_REQUEST):
            chunk = order_ids[start : start + QUERIES_PER_REQUEST]
            queries = "".join(f'<query id="{order_id}"/>' for order_id in chunk)
            request = f'<transactions id="{account_id}">{queries}</transactions>'
            reply = await _exchange("127.0.0.1", server.port, request.encode())
            for order_id, status in zip(chunk, _parse(reply), strict=True):
                problems.extend(_compare(order_id, seen.orders[order_id], status))
    return problems


def _compare(order_id: int, order: SeenOrder, status: etree._Element) -> list[str]:
    if status.tag != "status":
        return [f"order {order_id}: acknowledged but now answered {etree.tostring(status)!r}"]
    fills = [
        Fill(e.get("shares", ""), e.get("price", ""), e.get("time", ""))
        for e in status
        if e.tag == "executed"
    ]
    problems = []
    if fills[: len(order.fills)] != order.fills:
        problems.append(f"order {order_id}: fills {order.fills} acknowledged, now {fills}")
    canceled = [part.get("shares") for part in status if part.tag == "canceled"]
    if order.canceled is not None and canceled != [order.canceled]:
        problems.append(
            f"order {order_id}: cancel of {order.canceled} acknowledged, now {canceled}"
        )
    return problems


async def _audit(server: Server) -> list[str]:
    info = read_postmaster_info(server.data_dir / "pgdata")
    assert info is not None
    store = Store(libpq_url(info))
    try:
        return await store.audit()
    finally:
        await store.close()


# the run


@dataclass(slots=True)
class CrashReport:
    """What a run of crash cycles did and found."""

    cycles: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    acknowledged_requests: int = 0
    acknowledged_orders: int = 0
    problems: list[str] = field(default_factory=list)


async def _setup(server: Server, clients: list[Client]) -> None:
    accounts = "".join(f'<account id="{c.account_id}" balance="1000000"/>' for c in clients)
    positions = "".join(
        f'<symbol sym="{s}">'
        + "".join(f'<account id="{c.account_id}">100000</account>' for c in clients)
        + "</symbol>"
        for s in SYMBOLS
    )
    reply = await _exchange(
        "127.0.0.1", server.port, f"<create>{accounts}{positions}</create>".encode()
    )
    if b"<error" in reply:
        raise RuntimeError(f"setup failed: {reply!r}")


async def run_crash_cycles(
    cycles: int,
    data_dir: Path,
    *,
    clients: int = 8,
    seed: int = 1,
    commit_timeout: float = 2.0,
    workers: int | None = None,
) -> CrashReport:
    """Run ``cycles`` fault cycles against a server storing in ``data_dir``
    (``workers``: the server's ``--workers``; None leaves its default)."""
    rng = random.Random(seed)
    seen = Acknowledged()
    people = [Client(str(9000 + i), seen, random.Random(rng.random())) for i in range(clients)]
    server = Server(data_dir, commit_timeout, workers)
    report = CrashReport()
    server.start()
    try:
        await _setup(server, people)
        for cycle in range(cycles):
            fault = FAULTS[cycle % len(FAULTS)]
            await _load_until_fault(server, people, fault, rng)
            _restart_if_down(server)
            await _wait_available(server)
            problems = await _verify(server, seen) + await _audit(server)
            report.cycles += 1
            report.faults[fault] = report.faults.get(fault, 0) + 1
            report.problems.extend(f"cycle {cycle} ({fault}): {p}" for p in problems)
            print(
                f"cycle {cycle + 1}/{cycles} {fault}: {seen.requests} requests and "
                f"{len(seen.orders)} orders acknowledged so far, {len(problems)} problems",
                flush=True,
            )
    finally:
        server.stop()
        _stop_postgres(data_dir)
    report.acknowledged_requests = seen.requests
    report.acknowledged_orders = len(seen.orders)
    return report


def _stop_postgres(data_dir: Path) -> None:
    """Stop the embedded PostgreSQL left behind, by its pid."""
    info = read_postmaster_info(data_dir / "pgdata")
    if info is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGCONT)
            os.kill(info.pid, signal.SIGTERM)


@contextlib.contextmanager
def _scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bourse-crash-", dir="/tmp"))
    path.chmod(0o755)
    yield path / "data"


def main(argv: list[str] | None = None) -> int:
    """``python -m bourse.bench.crash``: run crash cycles and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=None, help="the server's --workers (default: its own)"
    )
    args = parser.parse_args(argv)
    with _scratch_dir() as data_dir:
        report = asyncio.run(
            run_crash_cycles(
                args.cycles, data_dir, clients=args.clients, seed=args.seed, workers=args.workers
            )
        )
    print(
        f"{report.cycles} cycles ({report.faults}); {report.acknowledged_requests} requests and "
        f"{report.acknowledged_orders} orders acknowledged; {len(report.problems)} problems"
    )
    for problem in report.problems[:50]:
        print("  " + problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
