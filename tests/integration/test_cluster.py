"""The replicated PostgreSQL of the failover drills (``bench/cluster.py``)
on real servers: it streams, synchronously when asked; a row written on
the primary reaches the standby; losing the primary, promoting the standby
and rejoining the lost node swaps the roles, and again swaps them back.

Clusters live under a 0755 directory in /tmp (as root, PostgreSQL runs as
an unprivileged user that must traverse it) and are stopped by pid, then
removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from bourse.bench.cluster import running_cluster
from bourse.bench.cluster_node import ClusterError, Node, Replica
from tests.databases import public_temp_dir

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def root() -> Iterator[Path]:
    path = public_temp_dir("bourse-cluster-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def rows_on(node: Node, count: int, within: float = 10.0) -> list[int]:
    """The values of table ``t`` on ``node`` once it holds ``count`` of them
    (a standby replays shortly after the commit), or after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            values = [row[0] for row in node.query("SELECT x FROM t ORDER BY x")]
        except ClusterError:  # the table itself is not replayed yet
            if time.monotonic() > deadline:
                raise
            values = []
        if len(values) >= count or time.monotonic() > deadline:
            return values
        time.sleep(0.05)


def alive(process: psutil.Process) -> bool:
    """Whether ``process`` still runs (a zombie does not)."""
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_synchronous_cluster_replicates_and_swaps_roles_each_failover(root: Path) -> None:
    with running_cluster(root, synchronous=True) as cluster:
        first, second = cluster.nodes
        assert cluster.url == (
            f"postgresql://postgres@127.0.0.1:{first.port},127.0.0.1:{second.port}"
            "/postgres?target_session_attrs=read-write"
        )
        assert cluster.replication_state() == [Replica("node1", "streaming", "sync")]
        assert cluster.primary.query("SHOW synchronous_standby_names") == [("*",)]
        cluster.primary.query("CREATE TABLE t (x int)")
        cluster.primary.query("INSERT INTO t VALUES (1)")
        assert rows_on(cluster.standby, 1) == [1]

        processes = psutil.Process(first.postmaster_pid()).children(recursive=True)
        cluster.lose_primary()
        assert processes
        assert not any(alive(process) for process in processes)
        cluster.promote()
        assert cluster.primary is second
        with pytest.raises(ClusterError, match="no standby"):
            _ = cluster.standby
        cluster.rejoin()
        assert cluster.standby is first
        assert cluster.replication_state() == [Replica("node0", "streaming", "sync")]
        assert second.query("SHOW synchronous_standby_names") == [("*",)]
        cluster.primary.query("INSERT INTO t VALUES (2)")
        assert rows_on(first, 2) == [1, 2]

        cluster.lose_primary()
        cluster.promote()
        cluster.rejoin()
        assert (cluster.primary, cluster.standby) == (first, second)
        assert cluster.replication_state() == [Replica("node1", "streaming", "sync")]
        cluster.primary.query("INSERT INTO t VALUES (3)")
        assert rows_on(second, 3) == [1, 2, 3]
    assert first.postmaster_pid() is None
    assert second.postmaster_pid() is None


def test_asynchronous_cluster_streams_without_waiting(root: Path) -> None:
    with running_cluster(root, synchronous=False) as cluster:
        cluster.start()  # started already: nothing more happens
        assert cluster.replication_state() == [Replica("node1", "streaming", "async")]
        assert cluster.primary.query("SHOW synchronous_standby_names") == [("",)]
        with pytest.raises(ClusterError, match=r"read-only transaction(?s:.)*last lines of"):
            cluster.standby.query("CREATE TABLE u (x int)")
        cluster.pause_standby()
        started = time.monotonic()
        cluster.primary.query("CREATE TABLE t (x int)")  # commits with the standby stopped
        assert time.monotonic() - started < 2
        cluster.resume_standby()
        cluster.primary.query("INSERT INTO t VALUES (1)")
        assert rows_on(cluster.standby, 1) == [1]
