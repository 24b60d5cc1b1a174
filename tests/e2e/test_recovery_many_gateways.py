"""Recovery with many gateways: the embedded PostgreSQL killed under load.

Each gateway used to pin a thread of the engine process's default executor
for its whole life, and reviving the embedded PostgreSQL waited, with no
deadline, for a thread of that same pool: with at least as many gateways as
the pool has threads (``min(32, cores + 4)``), one failed commit left every
request answered "unavailable" until a restart. Here ``kill -9`` of the
PostgreSQL postmaster, with more gateways than that, must be followed by
service within ``RECOVERY_LIMIT`` seconds, and every order a client saw
acknowledged, before or after the kill, must still be there.

The module runs once, with ``WORKERS`` gateways given on the command line,
whatever worker counts the other end-to-end modules run with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bourse.bench.acknowledged import Acknowledged, Client, audit, create_accounts, verify
from bourse.bench.server_process import Server
from bourse.bench.xml import frame
from bourse.store.embedded import read_postmaster_info, serves
from tests.databases import public_temp_dir

pytestmark = pytest.mark.timeout(240)

#: At least the default executor's size on this machine, and at least 8.
WORKERS = max(8, min(32, (os.cpu_count() or 1) + 4))

#: Seconds from the kill to the first request served again.
RECOVERY_LIMIT = 30.0

CLIENTS = 8
COMMIT_TIMEOUT = 1.0
LOAD_SECONDS = 1.5
PROBE = b'<transactions id="0"><query id="1"/></transactions>'


@pytest.fixture(scope="module", autouse=True)
def workers() -> int:
    """Overrides conftest's two runs: the gateway count is on the command line."""
    return WORKERS


@dataclass(slots=True)
class Outcome:
    """What the run saw: how long service took to resume, what was
    acknowledged before and after, and what the checks found."""

    recovery_seconds: float
    orders_before_kill: int
    orders_after_recovery: int
    problems: list[str]


async def serving(port: int) -> bool:
    """Whether one request is answered with anything but "unavailable"."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(frame(PROBE))
            return b"unavailable" not in await reader.readuntil(b"</results>\n")
        finally:
            writer.close()
    return False


async def seconds_until_serving(port: int, since: float) -> float:
    """Seconds from ``since`` until the exchange serves again (at most
    ``RECOVERY_LIMIT``: then the last look's time)."""
    while not await serving(port) and time.monotonic() - since < RECOVERY_LIMIT:
        await asyncio.sleep(0.1)
    return time.monotonic() - since


async def load(server: Server, clients: list[Client], seconds: float) -> None:
    """Half the clients pipelined, half one request per connection."""
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
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait(tasks, timeout=COMMIT_TIMEOUT * 4 + 30)
    for task in tasks:
        task.cancel()


async def kill_postgres_under_load(server: Server) -> Outcome:
    """Load, ``kill -9`` of the postmaster mid-load, time until served
    again, more load, then every acknowledged order checked."""
    seen = Acknowledged()
    rng = random.Random(23)
    clients = [Client(str(9000 + i), seen, random.Random(rng.random())) for i in range(CLIENTS)]
    await create_accounts(server, clients)
    during = asyncio.create_task(load(server, clients, LOAD_SECONDS * 2))
    await asyncio.sleep(LOAD_SECONDS)
    at_kill = len(seen.orders)
    os.kill(server.postgres_pid(), signal.SIGKILL)
    recovery = await seconds_until_serving(server.port, time.monotonic())
    await during
    served_again = len(seen.orders)
    if recovery >= RECOVERY_LIMIT:
        return Outcome(recovery, at_kill, 0, ["the exchange did not serve again"])
    await load(server, clients, LOAD_SECONDS)
    problems = await verify(server, seen) + await audit(server)
    return Outcome(recovery, at_kill, len(seen.orders) - served_again, problems)


def stop_leftover_postgres(data_dir: Path) -> None:
    """Stop, by its pid, a PostgreSQL the server left running."""
    info = read_postmaster_info(data_dir / "pgdata")
    if info is not None and serves(info.pid, data_dir / "pgdata"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)


def test_kill_9_of_embedded_postgres_recovers_with_many_gateways() -> None:
    data_dir = public_temp_dir("bourse-many-gateways-") / "data"
    server = Server(data_dir, COMMIT_TIMEOUT, WORKERS)
    server.start()
    try:
        outcome = asyncio.run(kill_postgres_under_load(server))
    finally:
        server.stop()
        stop_leftover_postgres(data_dir)
    verdict = "served again" if outcome.recovery_seconds < RECOVERY_LIMIT else "still unavailable"
    print(f"{WORKERS} gateways: {verdict} {outcome.recovery_seconds:.2f} s after kill -9")
    assert outcome.problems == []
    assert outcome.recovery_seconds < RECOVERY_LIMIT
    assert outcome.orders_before_kill > 0
    assert outcome.orders_after_recovery > 0
