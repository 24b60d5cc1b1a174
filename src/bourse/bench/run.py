"""``bourse bench``: durable orders per second over TCP, and proof they were right.

Accounts and symbols are created first (untimed); then C clients send a
seeded, crossing order stream, closed loop or open loop at a target rate
(see ``load.py``), on persistent connections or one connection per request.
Throughput says nothing if the server drops, mangles or mis-fills orders,
so every reply must be a ``<results>`` with one answer per order, and after
the run every order the bench saw opened is queried back through the
protocol: its open, executed and canceled shares must add up to its amount,
and it must never be both open and canceled. Given a database URL, the SQL
conservation invariants (``store/audit.py``) are checked too. With
``subscribers``, that many WebSocket subscribers follow every symbol's
market data during the load, from a process of their own
(``subscribers.py``), and their delays and gaps join the result. The result
can be written as JSON with the machine and commit it ran on, so figures
from different runs can be compared honestly.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import uvloop
from lxml import etree

from bourse.bench.feed_watch import SubscriberFleet, feed_lines
from bourse.bench.load import CONNECTION_FAILURES, LoadResult, run_load, send_all
from bourse.bench.subscribers import FeedResult
from bourse.bench.workload import WorkloadShape, setup_request, symbol_name, transaction_stream
from bourse.bench.xml import create_xml, frame, transactions_xml
from bourse.core.commands import PlaceOrder, TransactionsRequest

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
QUERIES_PER_REQUEST = 200
CHECK_CONNECTIONS = 8
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """What to run; ``rate`` (requests/s over all clients) means open loop;
    ``subscribers`` follow the market data on ``http_port`` meanwhile;
    ``verify_orders`` off skips querying the orders back (for the null
    server, which keeps none: its replies are still checked)."""

    host: str = "127.0.0.1"
    port: int = 12345
    clients: int = 32
    requests_per_client: int = 200
    orders_per_request: int = 1
    persistent: bool = True
    rate: float | None = None
    accounts: int = 1000
    symbols: int = 10
    seed: int = 1
    database_url: str | None = None
    subscribers: int = 0
    http_port: int = 8080
    verify_orders: bool = True


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """An order the server acknowledged: whose, its id and its size."""

    account_id: str
    order_id: str
    shares: Decimal


@dataclass(slots=True)
class Checks:
    """What the run and the checks after it found wrong."""

    missing_replies: int = 0
    malformed_replies: int = 0
    rejected_orders: int = 0
    connection_failures: list[str] = field(default_factory=list)
    orders_checked: int = 0
    protocol_problems: list[str] = field(default_factory=list)
    database_problems: list[str] | None = None

    @property
    def ok(self) -> bool:
        """Every reply came, was well-formed, and every check passed."""
        return not (
            self.missing_replies
            or self.malformed_replies
            or self.connection_failures
            or self.protocol_problems
            or self.database_problems
        )


@dataclass(frozen=True, slots=True)
class BenchOutcome:
    """What a run measured and found."""

    settings: BenchSettings
    orders: int
    seconds: float
    orders_per_second: float
    latency_ms: dict[str, float]
    checks: Checks
    feed: FeedResult | None = None

    @property
    def ok(self) -> bool:
        """The run is trustworthy: see ``Checks.ok`` and ``FeedResult.ok``."""
        return self.checks.ok and (self.feed is None or self.feed.ok)


def _shape(settings: BenchSettings) -> WorkloadShape:
    return WorkloadShape(
        accounts=settings.accounts,
        symbols=settings.symbols,
        requests=settings.clients * settings.requests_per_client,
        orders_per_request=settings.orders_per_request,
        query_share=0.0,
        cancel_share=0.0,
    )


def _client_streams(
    settings: BenchSettings,
) -> tuple[list[list[TransactionsRequest]], list[list[bytes]]]:
    """The stream dealt round-robin over the clients, as commands and as bytes."""
    commands: list[list[TransactionsRequest]] = [[] for _ in range(settings.clients)]
    for index, request in enumerate(transaction_stream(_shape(settings), settings.seed)):
        commands[index % settings.clients].append(request)
    framed = [[frame(transactions_xml(request)) for request in share] for share in commands]
    return commands, framed


def _parse(reply: bytes) -> Any:
    try:
        return etree.fromstring(reply, _PARSER)
    except etree.XMLSyntaxError:
        return None


def _acknowledged(
    requests: list[list[TransactionsRequest]], replies: list[list[bytes]], checks: Checks
) -> list[PlacedOrder]:
    """Pair every request with its reply; the orders that opened."""
    placed = []
    for share, answers in zip(requests, replies, strict=True):
        for request, reply in zip(share, answers, strict=True):
            if not reply:
                checks.missing_replies += 1
                continue
            root = _parse(reply)
            if root is None or root.tag != "results" or len(root) != len(request.commands):
                checks.malformed_replies += 1
                continue
            for command, child in zip(request.commands, root, strict=True):
                if child.tag == "opened" and isinstance(command, PlaceOrder):
                    shares = abs(command.amount)
                    placed.append(PlacedOrder(request.account_id, child.get("id", ""), shares))
                else:
                    checks.rejected_orders += 1
    return placed


def _query_requests(placed: list[PlacedOrder]) -> Iterator[tuple[list[PlacedOrder], bytes]]:
    """Batches of one account's orders, each as one framed ``<transactions>``."""
    by_account: dict[str, list[PlacedOrder]] = {}
    for order in placed:
        by_account.setdefault(order.account_id, []).append(order)
    for account_id, orders in by_account.items():
        for start in range(0, len(orders), QUERIES_PER_REQUEST):
            batch = orders[start : start + QUERIES_PER_REQUEST]
            queries = "".join(f'<query id="{order.order_id}"/>' for order in batch)
            xml = f'<transactions id="{account_id}">{queries}</transactions>'
            yield batch, frame(xml.encode())


def _shares(child: Any) -> Decimal:
    return Decimal(child.get("shares", "NaN"))


def status_problem(order: PlacedOrder, status: Any) -> str | None:
    """Why ``status`` (a parsed reply child) is wrong for ``order``; None if right."""
    if status.tag != "status" or status.get("id") != order.order_id:
        return f"order {order.order_id}: expected <status>, got <{status.tag}>"
    parts = {tag: Decimal(0) for tag in ("open", "executed", "canceled")}
    try:
        for part in status:
            parts[part.tag] = parts.get(part.tag, Decimal(0)) + _shares(part)
    except InvalidOperation:
        return f"order {order.order_id}: malformed shares in its status"
    total = parts["open"] + parts["executed"] + parts["canceled"]
    if total != order.shares:
        return (
            f"order {order.order_id}: open {parts['open']} + executed {parts['executed']} "
            f"+ canceled {parts['canceled']} = {total}, not its amount {order.shares}"
        )
    if parts["open"] and parts["canceled"]:
        return f"order {order.order_id}: both open and canceled"
    return None


async def check_orders(host: str, port: int, placed: list[PlacedOrder], checks: Checks) -> None:
    """Query every placed order back and check its shares add up."""
    batches = list(_query_requests(placed))
    streams = [
        [request for _, request in batches[c::CHECK_CONNECTIONS]] for c in range(CHECK_CONNECTIONS)
    ]
    result = await run_load(host, port, streams)
    checks.connection_failures.extend(result.failures)
    for c, replies in enumerate(result.replies):
        for (orders, _), reply in zip(batches[c::CHECK_CONNECTIONS], replies, strict=True):
            _check_statuses(orders, reply, checks)


def _check_statuses(orders: list[PlacedOrder], reply: bytes, checks: Checks) -> None:
    root = _parse(reply) if reply else None
    if root is None or root.tag != "results" or len(root) != len(orders):
        checks.protocol_problems.append(f"no valid reply to queries of {len(orders)} orders")
        return
    for order, status in zip(orders, root, strict=True):
        checks.orders_checked += 1
        problem = status_problem(order, status)
        if problem is not None:
            checks.protocol_problems.append(problem)


async def check_database(url: str) -> list[str]:
    """The SQL invariants the stored exchange breaks."""
    from bourse.store.store import Store  # noqa: PLC0415 - only with --database-url

    store = Store(url)
    try:
        return await store.audit()
    finally:
        await store.close()


def latency_ms(result: LoadResult) -> dict[str, float]:
    """The percentiles and the maximum, in milliseconds."""
    figures = {name: 1000 * result.percentile(fraction) for name, fraction in PERCENTILES}
    figures["max"] = 1000 * result.max_latency()
    return figures


async def run_bench(
    settings: BenchSettings, on_reply: Callable[[], None] | None = None
) -> BenchOutcome:
    """Set up the accounts, time the order streams, then check the outcome."""
    setup = [frame(xml) for xml in create_xml(setup_request(_shape(settings)))]
    await send_all(settings.host, settings.port, setup)
    requests, streams = _client_streams(settings)
    result, feed = await _timed_load(settings, streams, on_reply)
    checks = Checks(connection_failures=list(result.failures))
    placed = _acknowledged(requests, result.replies, checks)
    try:
        if settings.verify_orders:
            await check_orders(settings.host, settings.port, placed, checks)
    except CONNECTION_FAILURES as error:
        checks.connection_failures.append(f"checking orders: {type(error).__name__}: {error}")
    if settings.database_url is not None:
        checks.database_problems = await check_database(settings.database_url)
    return BenchOutcome(
        settings=settings,
        orders=result.requests * settings.orders_per_request,
        seconds=result.seconds,
        orders_per_second=result.rate(settings.orders_per_request),
        latency_ms=latency_ms(result),
        checks=checks,
        feed=feed,
    )


async def _timed_load(
    settings: BenchSettings, streams: list[list[bytes]], on_reply: Callable[[], None] | None
) -> tuple[LoadResult, FeedResult | None]:
    """The load; with subscribers, followed by them from before its start
    until they have caught up after its end."""
    fleet = None
    if settings.subscribers:
        symbols = {symbol_name(index) for index in range(settings.symbols)}
        fleet = await SubscriberFleet.start(
            settings.host, settings.http_port, settings.subscribers, symbols
        )
    try:
        result = await run_load(
            settings.host,
            settings.port,
            streams,
            persistent=settings.persistent,
            rate=settings.rate,
            on_reply=on_reply,
        )
        feed = None if fleet is None else await fleet.finish(settings.host, settings.http_port)
    finally:
        if fleet is not None:
            fleet.stop()
    return result, feed


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
    }


def result_json(outcome: BenchOutcome) -> dict[str, Any]:
    """Everything about a run, for ``--json``."""
    settings = asdict(outcome.settings)
    settings["database_checked"] = settings.pop("database_url") is not None  # may hold a password
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": settings,
        "machine": machine(),
        "commit": _commit(),
        "orders": outcome.orders,
        "seconds": outcome.seconds,
        "orders_per_second": outcome.orders_per_second,
        "latency_ms": outcome.latency_ms,
        "checks": {**asdict(outcome.checks), "ok": outcome.ok},
        "feed": None if outcome.feed is None else {**asdict(outcome.feed), "ok": outcome.feed.ok},
    }


def report(outcome: BenchOutcome, problems_shown: int = 10) -> str:
    """The lines ``bourse bench`` prints."""
    checks = outcome.checks
    latency = ", ".join(f"{name} {value:.2f}" for name, value in outcome.latency_ms.items())
    database = (
        "not checked (no --database-url)"
        if checks.database_problems is None
        else f"{len(checks.database_problems)} problems"
    )
    problems = (checks.protocol_problems + (checks.database_problems or []))[:problems_shown]
    return "\n".join(
        [
            f"{outcome.orders} orders in {outcome.seconds:.2f} s: "
            f"{outcome.orders_per_second:,.0f} orders/s; latency ms {latency}",
            *([] if outcome.feed is None else feed_lines(outcome.feed)),
            f"replies: {checks.missing_replies} missing, {checks.malformed_replies} malformed, "
            f"{checks.rejected_orders} orders rejected, "
            f"{len(checks.connection_failures)} connection failures",
            f"protocol check: {checks.orders_checked} orders queried, "
            f"{len(checks.protocol_problems)} problems; database check: {database}",
            *(f"  {problem}" for problem in problems),
            *(f"  connection failed: {failure}" for failure in checks.connection_failures[:3]),
            "OK" if outcome.ok else "FAILED",
        ]
    )


def bench(settings: BenchSettings, on_reply: Callable[[], None] | None = None) -> BenchOutcome:
    """``run_bench`` in a fresh event loop."""
    return uvloop.run(run_bench(settings, on_reply))


def write_json(path: Path, outcome: BenchOutcome) -> None:
    """Write ``result_json`` to ``path``."""
    path.write_text(json.dumps(result_json(outcome), indent=2) + "\n")
