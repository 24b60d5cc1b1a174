"""bourse as a client of a replicated PostgreSQL, on real servers: the
primary is lost like a machine under load, the standby is promoted, and
bourse, never restarted, must serve again from it by itself.

With synchronous replication nothing acknowledged may be missing after
the failover, whatever was in flight when the primary died. With
asynchronous replication bourse warns at start, and the tests show,
deterministically, the loss that setting allows: acknowledgements given
while the standby lagged are gone after the failover. The same procedure
with synchronous replication acknowledges nothing while the standby
lags, so it loses nothing. Last, two cycles of the failover drill
(``python -m bourse.bench.failover``) through its function.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bourse.bench.acknowledged import (
    Acknowledged,
    Client,
    absent_orders,
    create_accounts,
    served_at,
    trade_around,
    verify,
)
from bourse.bench.cluster import ReplicatedCluster
from bourse.bench.failover import (
    RESUME_LIMIT,
    bourse_on_cluster,
    check,
    load_and_fail_over,
    probe_requests,
    run_failover_cycles,
    summary,
)
from bourse.bench.server_process import Server
from tests.databases import public_temp_dir

pytestmark = pytest.mark.timeout(180)

#: First account id of the probes (the trading clients are 9000 and up).
PROBE_IDS = 700_000_000


@pytest.fixture
def root() -> Iterator[Path]:
    path = public_temp_dir("bourse-failover-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def traders(count: int, seed: int) -> tuple[Acknowledged, list[Client]]:
    """Trading clients sharing one record of what was acknowledged."""
    seen = Acknowledged()
    rng = random.Random(seed)
    return seen, [Client(str(9000 + i), seen, random.Random(rng.random())) for i in range(count)]


async def nothing() -> None:
    """A fault that does nothing: plain load."""


def server_pid(server: Server) -> int:
    assert server.process is not None
    return server.process.pid


# 1. synchronous: a failover under load loses nothing acknowledged


def test_synchronous_failover_under_load_resumes_and_loses_nothing(root: Path) -> None:
    with bourse_on_cluster(root, synchronous=True, commit_timeout=2.0, workers=2) as (
        cluster,
        server,
    ):
        asyncio.run(synchronous_failover(cluster, server))


async def synchronous_failover(cluster: ReplicatedCluster, server: Server) -> None:
    pid = server_pid(server)
    seen, clients = traders(6, seed=5)
    await create_accounts(server, clients)
    times = await load_and_fail_over(cluster, server, clients, 1.0, probe_requests(PROBE_IDS))
    orders_before = len(seen.orders)
    assert 0 < times.promoted < times.resumed < RESUME_LIMIT
    assert cluster.primary.name == "node1"
    assert cluster.replication_state()[0].sync_state == "sync"
    await trade_around(server.port, clients, 1.0, nothing, settle=30)
    assert len(seen.orders) > orders_before > 0, "no orders acknowledged before or after"
    # The probe's <create> answered after the loss is on the new primary.
    probes = cluster.primary.query("SELECT count(*) FROM accounts WHERE length(id) = 9")
    assert probes[0][0] >= 1
    assert await check(cluster, server, seen, pid) == []
    assert server_pid(server) == pid
    assert server.process is not None
    assert server.process.poll() is None


# 2. what asynchronous replication may lose, and synchronous does not


def socket_buffers_max() -> int:
    """The most bytes a loopback TCP connection can hold in flight: both
    ends' largest buffers."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[-1])
    return total


def write_ballast(cluster: ReplicatedCluster) -> None:
    """Write more WAL than the sockets between the primary and its stopped
    standby can hold, ahead of what the exchange writes next: whatever the
    kernel had buffered, the standby, once resumed, receives none of the
    exchange's later commits. (A non-transactional logical message: WAL
    only, touching no table, and no commit that waits for a standby.)"""
    size = socket_buffers_max() + 8 * 1024 * 1024
    cluster.primary.query(
        "SELECT pg_logical_emit_message(false, 'bourse-test-ballast', repeat('x', %s))", size
    )


async def lagging_standby_then_failover(
    cluster: ReplicatedCluster, server: Server, *, rejoin: bool, under_load: bool = True
) -> tuple[Acknowledged, int, list[str], list[str]]:
    """Trade with the standby stopped (behind a ballast of WAL), lose the
    primary (under that load, or once it has ended), resume and promote
    the standby (rejoining the lost node if ``rejoin``), wait until bourse
    serves again; what was acknowledged, how many requests while the
    standby was stopped, and what ``verify`` and the SQL check report."""
    seen, clients = traders(6, seed=9)
    await create_accounts(server, clients)
    await trade_around(server.port, clients, 0.5, nothing, settle=30)
    requests_before = seen.requests

    async def lose() -> None:
        await asyncio.to_thread(cluster.lose_primary)

    cluster.pause_standby()
    try:
        await asyncio.to_thread(write_ballast, cluster)
        await trade_around(server.port, clients, 1.0, lose if under_load else nothing, settle=30)
        if not under_load:
            await lose()
    finally:
        cluster.resume_standby()
    await asyncio.to_thread(cluster.promote)
    if rejoin:
        await asyncio.to_thread(cluster.rejoin)
    served = await served_at(server.port, probe_requests(PROBE_IDS), RESUME_LIMIT)
    assert served is not None, "bourse did not serve again"
    problems = await verify(server, seen)
    absent = await absent_orders(cluster.primary.url, seen)
    return seen, seen.requests - requests_before, problems, absent


def test_asynchronous_replication_warns_and_loses_what_the_standby_lacked(root: Path) -> None:
    """The loss asynchronous replication allows: the primary acknowledged
    commits its standby did not have (stopped, here, to make the lag
    certain), and the promoted standby lacks them, so orders clients were
    told about are gone. bourse says so at start, and says which batches it
    lost once it has rebuilt from the promoted standby."""
    with bourse_on_cluster(root, synchronous=False, commit_timeout=1.0, workers=0) as (
        cluster,
        server,
    ):
        warnings = [line for line in server.log if "WARNING" in line]
        assert any("synchronous_standby_names" in line for line in warnings), server.log
        outcome = asyncio.run(lagging_standby_then_failover(cluster, server, rejoin=False))
        errors = [line for line in server.log if "ERROR" in line]
        assert any("are not in the database" in line for line in errors), server.log
    _, acknowledged_while_lagging, problems, absent = outcome
    assert acknowledged_while_lagging > 0
    assert problems, "verify found every acknowledged order after the failover"
    assert absent, "the promoted standby holds every acknowledged order"


def test_a_primary_lost_between_batches_is_noticed_too(root: Path) -> None:
    """The same loss with the primary lost after the load has ended, no
    batch in flight: bourse's next session reaches the promoted standby,
    and bourse must rebuild from it as after any loss, not go on serving an
    engine that holds orders its database no longer has (``verify`` would
    then answer every lost order as if it were stored)."""
    with bourse_on_cluster(root, synchronous=False, commit_timeout=1.0, workers=0) as (
        cluster,
        server,
    ):
        outcome = asyncio.run(
            lagging_standby_then_failover(cluster, server, rejoin=False, under_load=False)
        )
    _, acknowledged_while_lagging, problems, absent = outcome
    assert acknowledged_while_lagging > 0
    assert absent, "the promoted standby holds every acknowledged order"
    assert problems, "bourse answers for orders its database no longer holds"


def test_synchronous_replication_acknowledges_nothing_the_standby_lacks(root: Path) -> None:
    """The same procedure with synchronous replication: while the standby is
    stopped no commit returns, so nothing is acknowledged, and after the
    failover every acknowledged order is there."""
    with bourse_on_cluster(root, synchronous=True, commit_timeout=1.0, workers=0) as (
        cluster,
        server,
    ):
        assert not [line for line in server.log if "WARNING" in line and "synchronous" in line]
        outcome = asyncio.run(lagging_standby_then_failover(cluster, server, rejoin=True))
    seen, acknowledged_while_lagging, problems, absent = outcome
    assert len(seen.orders) > 0
    assert acknowledged_while_lagging == 0
    assert problems == []
    assert absent == []


# 3. the drill itself


def test_failover_drill_reports_resume_times_and_no_problems(root: Path) -> None:
    report = asyncio.run(run_failover_cycles(2, root, clients=4, seed=3, workers=0))
    assert report.problems == []
    assert report.cycles == 2
    assert len(report.times) == 2
    assert all(0 < t.promoted < t.resumed < RESUME_LIMIT for t in report.times)
    assert report.acknowledged_orders > 0
    assert report.replication_log is not None
    assert "synchronous" in report.replication_log
    lines = summary(report)
    assert lines[0].startswith("2 cycles (synchronous replication)")
    assert any(line.strip().startswith("exchange served again") for line in lines)
