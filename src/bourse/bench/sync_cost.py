"""What a synchronous standby costs: the same load with and without one.

A synchronous standby makes every COMMIT wait for the standby to flush the
batch's WAL too, one more round trip and one more fsync per batch. This
builds one replicated cluster (``cluster``), then alternates, round after
round, between ``synchronous_standby_names = '*'``, an empty setting
(the standby still streams, asynchronously) and the standby frozen (the
primary alone, as without replication), each run on a fresh database
of its own with a fresh ``bourse serve`` on the cluster's multi-host URL,
and the same ``bourse bench`` load. Alternating on one machine in one
invocation is what makes the two comparable: this machine's throughput
drifts by more than the difference between runs an hour apart.

``python -m bourse.bench.sync_cost --rounds 3`` prints each run and the
ratio of the medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bourse.bench.cluster import ReplicatedCluster, running_cluster
from bourse.bench.run import BenchSettings, bench
from bourse.bench.server_process import Server
from bourse.store.embedded_processes import DATABASE

#: Commits wait for the standby; the standby streams but is not waited
#: for; the standby is frozen (SIGSTOP), as if there were none.
MODES = ("synchronous", "asynchronous", "alone")


@dataclass(frozen=True, slots=True)
class Run:
    """One load's outcome in one replication mode."""

    mode: str
    orders_per_second: float
    p50_ms: float
    p99_ms: float
    #: The bench's checks passed (every reply, every order, the SQL audit).
    ok: bool


def _set_mode(cluster: ReplicatedCluster, mode: str) -> None:
    """Put the cluster in ``mode``: the standby waited for, streaming but
    not waited for, or frozen."""
    cluster.resume_standby()
    cluster.set_synchronous(mode == "synchronous")
    if mode == "alone":
        cluster.pause_standby()


def _fresh_database(cluster: ReplicatedCluster, name: str) -> str:
    """A new database on the primary; the cluster's URL pointing at it."""
    cluster.primary.query(f'CREATE DATABASE "{name}"')
    return cluster.url.replace(f"/{DATABASE}?", f"/{name}?")


def _one_run(cluster: ReplicatedCluster, mode: str, number: int, args: argparse.Namespace) -> Run:
    _set_mode(cluster, mode)
    url = _fresh_database(cluster, f"sync_cost_{number}")
    server = Server(None, commit_timeout=5.0, workers=args.workers, database_url=url)
    server.start()
    try:
        settings = BenchSettings(
            port=server.port,
            clients=args.clients,
            requests_per_client=args.requests_per_client,
            database_url=url,
        )
        outcome = bench(settings)
    finally:
        server.stop()
    latency = outcome.latency_ms
    return Run(mode, outcome.orders_per_second, latency["p50"], latency["p99"], outcome.ok)


def compare(args: argparse.Namespace, root: Path) -> list[Run]:
    """Alternate the two modes for ``args.rounds`` rounds on one cluster."""
    runs: list[Run] = []
    with running_cluster(root, synchronous=True) as cluster:
        for round_number in range(args.rounds):
            for index, mode in enumerate(MODES if round_number % 2 == 0 else MODES[::-1]):
                run = _one_run(cluster, mode, len(MODES) * round_number + index, args)
                runs.append(run)
                print(
                    f"{run.mode:>12}: {run.orders_per_second:8.0f} orders/s, "
                    f"p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
                    f"{'checked' if run.ok else 'CHECKS FAILED'}",
                    flush=True,
                )
        cluster.resume_standby()
    return runs


def summary(runs: list[Run]) -> str:
    """The median of each mode and their ratio."""
    medians = {
        mode: statistics.median(run.orders_per_second for run in runs if run.mode == mode)
        for mode in MODES
    }
    figures = ", ".join(f"{mode} {medians[mode]:.0f}" for mode in MODES)
    return (
        f"median orders/s: {figures}; synchronous / asynchronous = "
        f"{medians['synchronous'] / medians['asynchronous']:.2f}, synchronous / alone = "
        f"{medians['synchronous'] / medians['alone']:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bourse.bench.sync_cost``: alternate, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests-per-client", type=int, default=300)
    parser.add_argument("--workers", type=int, default=0, help="the server's --workers")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bourse-sync-cost-", dir="/tmp"))
    root.chmod(0o755)
    try:
        runs = compare(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(summary(runs))
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
