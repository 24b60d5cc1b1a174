"""Failover cycles: bourse on a replicated PostgreSQL loses its primary,
the standby is promoted, and bourse must serve again by itself with
nothing acknowledged missing.

A primary and a standby run on this machine (``cluster``), synchronous by
default (``--asynchronous``: the standby may lag behind what was
acknowledged). ``bourse serve`` runs once, for the whole run, on the
cluster's multi-host URL (with ``--require-sync-standby`` in synchronous
mode). Each cycle:

1. trading clients (``acknowledged``: half pipelined, half one request per
   connection) load the exchange for a random 0.3–1.5 s;
2. the primary is lost like a machine (SIGKILL of all its processes at
   once) while the load runs. The load is told to stop at that moment and
   starts again in the next cycle: it does not run through the outage, where
   every request is refused at once and the clients would only spin,
   taking the cores the failover needs on a small machine. A request
   refused or left unanswered is not counted as acknowledged;
3. the standby is promoted, then the lost node is rebuilt as the new
   primary's standby (in synchronous mode the new primary cannot commit
   until it is attached), while a probe sends a ``<create>`` every 50 ms
   and notes the first one answered: service resumed;
4. every acknowledged order is queried back through the protocol
   (``verify``), the new primary's books are audited in SQL, every
   acknowledged order must be in its ``orders`` table as placed, and bourse
   must still be the process started at the beginning.

It reports, per cycle and as min/median/max, the seconds from the loss to
service resumed, and to the promotion and the standby attached on the way.
``python -m bourse.bench.failover --cycles 20`` is the long version; the
test suite runs two cycles of the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from bourse.bench.acknowledged import (
    Acknowledged,
    Client,
    absent_orders,
    create_accounts,
    served_at,
    trade_around,
    verify,
)
from bourse.bench.cluster import ReplicatedCluster, running_cluster
from bourse.bench.crash import drill_arguments, scratch_dir
from bourse.bench.run import check_database
from bourse.bench.server_process import Server

#: Seconds from the loss within which the exchange must serve again.
RESUME_LIMIT = 120.0

#: Words of the line bourse logs at start about the replication it found
#: (a WARNING naming ``synchronous_standby_names`` when it is asynchronous).
REPLICATION_WORDS = ("synchronous_standby_names", "replication")


class CycleTimes(NamedTuple):
    """Seconds from the primary's loss to each step of one failover."""

    promoted: float
    attached: float
    resumed: float


@dataclass(slots=True)
class FailoverReport:
    """What a run of failover cycles did and found."""

    synchronous: bool
    cycles: int = 0
    times: list[CycleTimes] = field(default_factory=list)
    acknowledged_requests: int = 0
    acknowledged_orders: int = 0
    problems: list[str] = field(default_factory=list)
    #: bourse's start-up line about the replication it found, if any.
    replication_log: str | None = None


# bourse on a cluster


@contextlib.contextmanager
def bourse_on_cluster(
    root: Path,
    *,
    synchronous: bool,
    commit_timeout: float = 2.0,
    workers: int | None = None,
) -> Iterator[tuple[ReplicatedCluster, Server]]:
    """A replicated PostgreSQL under ``root`` and ``bourse serve`` on its
    multi-host URL (requiring a synchronous standby in synchronous mode);
    both stopped afterwards."""
    options = ["--require-sync-standby"] if synchronous else []
    with running_cluster(root, synchronous=synchronous) as cluster:
        server = Server(None, commit_timeout, workers, database_url=cluster.url, options=options)
        try:
            server.start()
            yield cluster, server
        finally:
            server.stop()


def replication_line(server: Server) -> str | None:
    """The first line of the server's log about the database's replication."""
    lines = (line.strip() for line in server.log)
    return next((line for line in lines if any(w in line for w in REPLICATION_WORDS)), None)


def probe_requests(first_id: int) -> Callable[[], bytes]:
    """A ``<create>`` of a new empty account at each call: a request that
    is acknowledged only once it has committed."""
    ids = itertools.count(first_id)

    def request() -> bytes:
        return f'<create><account id="{next(ids)}" balance="0"/></create>'.encode()

    return request


# one cycle


async def fail_over(
    cluster: ReplicatedCluster, port: int, lost_at: float, probe: Callable[[], bytes]
) -> CycleTimes:
    """Promote the standby and rejoin the lost node while probing the
    exchange on ``port``; the seconds from ``lost_at`` to each step."""
    resumed = asyncio.create_task(served_at(port, probe, RESUME_LIMIT))
    try:
        await asyncio.to_thread(cluster.promote)
        promoted = time.monotonic() - lost_at
        await asyncio.to_thread(cluster.rejoin)
        attached = time.monotonic() - lost_at
        resumed_at = await resumed
    finally:
        resumed.cancel()
    if resumed_at is None:
        raise RuntimeError(f"the exchange did not serve again within {RESUME_LIMIT:g} s")
    return CycleTimes(promoted, attached, resumed_at - lost_at)


async def load_and_fail_over(
    cluster: ReplicatedCluster,
    server: Server,
    clients: list[Client],
    seconds: float,
    probe: Callable[[], bytes],
) -> CycleTimes:
    """Load for ``seconds``, lose the primary under the load, stop the load,
    and fail over (the failover starts at the loss, while the load winds down)."""
    failover: asyncio.Task[CycleTimes] | None = None

    async def lose() -> None:
        nonlocal failover
        lost_at = await asyncio.to_thread(cluster.lose_primary)
        failover = asyncio.create_task(fail_over(cluster, server.port, lost_at, probe))

    await trade_around(server.port, clients, seconds, lose, settle=server.commit_timeout * 4 + 30)
    assert failover is not None
    return await failover


async def check(
    cluster: ReplicatedCluster, server: Server, seen: Acknowledged, pid: int
) -> list[str]:
    """Every check of a cycle: bourse still the same process, every
    acknowledged order answered the same and stored, the books balanced."""
    assert server.process is not None
    if server.process.pid != pid or server.process.poll() is not None:
        return [f"bourse (pid {pid}) exited: status {server.process.poll()}"]
    url = cluster.primary.url
    return await verify(server, seen) + await check_database(url) + await absent_orders(url, seen)


# the run


async def run_failover_cycles(
    cycles: int,
    root: Path,
    *,
    synchronous: bool = True,
    clients: int = 8,
    seed: int = 1,
    commit_timeout: float = 2.0,
    workers: int | None = None,
) -> FailoverReport:
    """Run ``cycles`` failovers of a cluster built under ``root`` (whose
    parents an unprivileged PostgreSQL must be able to traverse)."""
    rng = random.Random(seed)
    seen = Acknowledged()
    people = [Client(str(9000 + i), seen, random.Random(rng.random())) for i in range(clients)]
    report = FailoverReport(synchronous)
    with bourse_on_cluster(
        root, synchronous=synchronous, commit_timeout=commit_timeout, workers=workers
    ) as (cluster, server):
        drill = _Drill(cluster, server, people, rng, report)
        report.replication_log = replication_line(server)
        await create_accounts(server, people)
        for cycle in range(cycles):
            if not await drill.cycle():
                break
            print(f"cycle {cycle + 1}/{cycles}: {drill.progress()}", flush=True)
    report.acknowledged_requests = seen.requests
    report.acknowledged_orders = len(seen.orders)
    return report


class _Drill:
    """The cycles of one run, noted in its report."""

    def __init__(
        self,
        cluster: ReplicatedCluster,
        server: Server,
        people: list[Client],
        rng: random.Random,
        report: FailoverReport,
    ) -> None:
        assert server.process is not None
        self.cluster = cluster
        self.server = server
        self.people = people
        self.seen = people[0].seen
        self.rng = rng
        self.report = report
        self.pid = server.process.pid
        self.probe = probe_requests(700_000_000)

    async def cycle(self) -> bool:
        """One cycle; False if the run cannot go on."""
        report = self.report
        lost = self.cluster.primary.name
        seconds = self.rng.uniform(0.3, 1.5)
        try:
            times = await load_and_fail_over(
                self.cluster, self.server, self.people, seconds, self.probe
            )
        except Exception as error:  # reported, and the run ends
            report.problems.append(f"cycle {report.cycles + 1} ({lost} lost): {error}")
            return False
        problems = await check(self.cluster, self.server, self.seen, self.pid)
        report.cycles += 1
        report.times.append(times)
        report.problems.extend(f"cycle {report.cycles} ({lost} lost): {p}" for p in problems)
        return True

    def progress(self) -> str:
        times = self.report.times[-1]
        return (
            f"promoted {times.promoted:.2f} s, standby attached {times.attached:.2f} s, "
            f"served again {times.resumed:.2f} s after the loss; {self.seen.requests} "
            f"requests and {len(self.seen.orders)} orders acknowledged so far, "
            f"{len(self.report.problems)} problems"
        )


def summary(report: FailoverReport) -> list[str]:
    """The report as lines of text."""
    mode = "synchronous" if report.synchronous else "asynchronous"
    lines = [
        f"{report.cycles} cycles ({mode} replication); {report.acknowledged_requests} requests "
        f"and {report.acknowledged_orders} orders acknowledged; {len(report.problems)} problems",
        f"bourse at start: {report.replication_log or 'nothing logged about replication'}",
    ]
    if report.times:
        lines.append("seconds from the loss to:  min  median  max")
        for name in ("promoted", "attached", "resumed"):
            values = [getattr(times, name) for times in report.times]
            lines.append(
                f"  {_STEP_NAMES[name]:<23} {min(values):5.2f}  {statistics.median(values):5.2f}"
                f"  {max(values):5.2f}"
            )
    return lines + [f"  {problem}" for problem in report.problems[:50]]


_STEP_NAMES = {
    "promoted": "standby promoted",
    "attached": "lost node attached",
    "resumed": "exchange served again",
}


def main(argv: list[str] | None = None) -> int:
    """``python -m bourse.bench.failover``: run failover cycles and report."""
    parser = drill_arguments(__doc__.split("\n\n")[0], cycles=20)
    parser.add_argument(
        "--asynchronous",
        action="store_true",
        help="asynchronous replication (default: synchronous)",
    )
    parser.add_argument("--commit-timeout", type=float, default=2.0, help="the server's")
    args = parser.parse_args(argv)
    root = scratch_dir("bourse-failover-")
    try:
        report = asyncio.run(
            run_failover_cycles(
                args.cycles,
                root,
                synchronous=not args.asynchronous,
                clients=args.clients,
                seed=args.seed,
                commit_timeout=args.commit_timeout,
                workers=args.workers,
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n".join(summary(report)))
    return 1 if report.problems or report.cycles < args.cycles else 0


if __name__ == "__main__":
    sys.exit(main())
