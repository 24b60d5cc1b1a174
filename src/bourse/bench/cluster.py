"""A replicated PostgreSQL on this machine: a primary and a streaming standby.

The failover drills (``failover``) and their tests need a primary they can
lose like a machine, a standby to promote, and the lost node back as the
new primary's standby, over and over, without Docker or a second host.
This builds that pair from the PostgreSQL binaries bourse already ships,
run as the unprivileged account the embedded server uses when bourse is
root (``store.embedded_account``).

Each node listens on 127.0.0.1 on a port of its own (and on a Unix socket
in its own 0700 directory), trusts local and loopback connections,
replication included, and keeps ``fsync`` on. ``synchronous=True`` sets
``synchronous_standby_names = '*'`` on every node, so that whichever node
is primary, a commit waits until a standby has the WAL (and waits for ever
while none is attached: PostgreSQL's "strict" synchronous replication);
otherwise the setting is empty and commits never wait. Standbys connect
with ``application_name`` set to their node's name.

Everything run here has a deadline; a failure raises ``ClusterError`` with
the end of the node's log.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from bourse.bench.cluster_node import (
    CONF_FILE,
    TIMEOUT,
    ClusterError,
    Node,
    Replica,
    free_ports,
    freeze,
    remove_stale_socket,
    thaw,
    write_owned,
)
from bourse.store import embedded_account as accounts
from bourse.store.embedded_account import ServiceAccount
from bourse.store.embedded_processes import (
    DATABASE,
    SUPERUSER,
    wait_gone,
)

#: The nodes, in the order the multi-host URL names them.
NODE_NAMES = ("node0", "node1")

#: Seconds between two looks at something awaited.
POLL_INTERVAL = 0.05

PG_HBA = """\
# Written by bourse.bench.cluster: trust on the loopback, replication included.
local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


# the cluster


class ReplicatedCluster:
    """A primary and a standby under ``root`` (whose parents the service
    account must be able to traverse), roles swapping at each failover."""

    def __init__(self, root: Path, *, synchronous: bool, timeout: float = TIMEOUT) -> None:
        self.root = Path(os.path.abspath(root))
        self.synchronous = synchronous
        self.timeout = timeout
        ports = free_ports(len(NODE_NAMES))
        self.nodes = [
            Node(name, self.root / name, port) for name, port in zip(NODE_NAMES, ports, strict=True)
        ]
        self._account: ServiceAccount | None = None
        #: The node that accepts writes now (it changes at each ``promote``).
        self.primary = self.nodes[0]
        self._standby: Node | None = self.nodes[1]
        self._lost: Node | None = None
        self._paused: list[int] = []
        self._started = False

    # -- roles -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Every node, in a fixed order, for a client that must find the primary."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"postgresql://{SUPERUSER}@{hosts}/{DATABASE}?target_session_attrs=read-write"

    @property
    def standby(self) -> Node:
        """The node following the primary; there is none from a loss to the rejoin."""
        if self._standby is not None:
            return self._standby
        lost = self._lost.name if self._lost is not None else "none"
        raise ClusterError(f"no standby: {lost} was lost and has not rejoined")

    # -- building ----------------------------------------------------------------------

    def start(self) -> None:
        """Make and start the primary, clone and start the standby, and wait
        until it streams (synchronously, in synchronous mode). Once only:
        ``with`` starts the cluster, and a later call does nothing."""
        if self._started:
            return
        self._started = True
        self._account = (
            accounts.service_account(self.nodes[0].pgdata) if os.geteuid() == 0 else None
        )
        if self._account is not None:
            accounts.check_binaries_reachable(self._account)
        for node in self.nodes:
            self._make_directories(node)
        self._initdb(self.primary)
        self._start_node(self.primary)
        standby = self.standby
        self._clone(standby, self.primary)
        self._start_node(standby)
        self._wait_streaming(standby)

    def _make_directories(self, node: Node) -> None:
        for directory in (node.directory, node.socket_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
            if self._account is not None:
                accounts.give_to(directory, self._account)
        if self._account is not None:
            accounts.check_traversable(node.directory, self._account)

    def _initdb(self, node: Node) -> None:
        self._empty_pgdata(node)
        args = ["initdb", "-D", str(node.pgdata), "-U", SUPERUSER, "--auth=trust"]
        args += ["--encoding=UTF8", "--locale=C", "--data-checksums", "--no-instructions"]
        self._run(node, args)
        with (node.pgdata / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\ninclude '{CONF_FILE}'\n")
        write_owned(node.pgdata / "pg_hba.conf", PG_HBA, self._account)
        node.write_settings(self.synchronous, self._account)

    def _clone(self, node: Node, source: Node) -> None:
        """A fresh base backup of ``source`` in ``node``, set to follow it.

        Without a replication slot: pg_basebackup's WAL stream then reports
        no flush position, so it is no candidate for ``synchronous_standby_names
        = '*'``. With its default temporary slot it is one, and shows as the
        synchronous standby for as long as the backup runs: commits succeed,
        then wait again from the backup's end until the node has started.
        """
        self._empty_pgdata(node)
        conninfo = (
            f"host=127.0.0.1 port={source.port} user={SUPERUSER} application_name={node.name}"
        )
        args = ["pg_basebackup", "-D", str(node.pgdata), "-d", conninfo, "-R"]
        self._run(node, [*args, "-X", "stream", "-c", "fast", "--no-slot"])
        node.write_settings(self.synchronous, self._account)

    def _empty_pgdata(self, node: Node) -> None:
        if node.postmaster_pid() is not None:
            raise ClusterError(f"{node.name} is still running; its data cannot be replaced")
        shutil.rmtree(node.pgdata, ignore_errors=True)
        node.pgdata.mkdir(mode=0o700)
        if self._account is not None:
            accounts.give_to(node.pgdata, self._account)

    def _start_node(self, node: Node) -> None:
        args = ["pg_ctl", "start", "-D", str(node.pgdata), "-l", str(node.log_file)]
        self._run(node, [*args, "-w", "-t", str(math.ceil(self.timeout)), "-s"])

    # -- faults and repairs ------------------------------------------------------------

    def lose_primary(self) -> float:
        """Lose the primary as a machine is lost: SIGKILL of its postmaster
        and of every process it runs, at once. The time it happened
        (``time.monotonic()``)."""
        node = self.primary
        pid = node.postmaster_pid()
        if pid is None or self._lost is not None:
            raise ClusterError(f"{node.name} is not a running primary{node.log_tail()}")
        pids = freeze(pid)
        for each in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        lost_at = time.monotonic()
        self._lost = node
        for each in pids:
            if not wait_gone(each, time.monotonic() + self.timeout):
                raise ClusterError(f"{node.name}: process {each} survived SIGKILL")
        return lost_at

    def promote(self) -> None:
        """Make the standby the primary, and wait until it accepts writes."""
        node = self.standby
        args = ["pg_ctl", "promote", "-D", str(node.pgdata), "-w", "-s"]
        self._run(node, [*args, "-t", str(math.ceil(self.timeout))])
        self._wait_until(node, lambda: not node.query("SELECT pg_is_in_recovery()")[0][0])
        self.primary, self._standby = node, None

    def rejoin(self) -> None:
        """Rebuild the lost node as the new primary's standby (a fresh base
        backup) and wait until it streams (synchronously, in synchronous mode)."""
        node = self._lost
        if node is None or self._standby is not None:
            raise ClusterError("rejoin follows lose_primary and promote")
        self._clone(node, self.primary)
        remove_stale_socket(node)
        self._start_node(node)
        self._standby, self._lost = node, None
        self._wait_streaming(node)

    def pause_standby(self) -> None:
        """SIGSTOP the standby and every process it runs."""
        pid = self.standby.postmaster_pid()
        if pid is None:
            raise ClusterError(f"{self.standby.name} is not running{self.standby.log_tail()}")
        self._paused = freeze(pid)

    def resume_standby(self) -> None:
        """SIGCONT what ``pause_standby`` stopped."""
        thaw(self._paused)
        self._paused = []

    def set_synchronous(self, synchronous: bool) -> None:
        """Make the current primary's commits wait for the standby, or not
        (``ALTER SYSTEM``, then a reload), and wait until it reports the
        standby so."""
        names = "*" if synchronous else ""
        self.primary.query(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
        self.primary.query("SELECT pg_reload_conf()")
        self.synchronous = synchronous
        self._wait_streaming(self.standby)

    def replication_state(self) -> list[Replica]:
        """The primary's view of its standbys."""
        rows = self.primary.query(
            "SELECT application_name, state, sync_state FROM pg_stat_replication "
            "ORDER BY application_name"
        )
        return [Replica(*row) for row in rows]

    # -- waiting -----------------------------------------------------------------------

    def _wait_streaming(self, node: Node) -> None:
        wanted = "sync" if self.synchronous else "async"

        def streaming() -> bool:
            return any(
                replica.application_name == node.name
                and replica.state == "streaming"
                and replica.sync_state == wanted
                for replica in self.replication_state()
            )

        self._wait_until(node, streaming)

    def _wait_until(self, node: Node, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout
        while not condition():
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{node.name}: not ready within {self.timeout:g} s{node.log_tail()}"
                )
            time.sleep(POLL_INTERVAL)

    # -- running programs --------------------------------------------------------------

    def _run(self, node: Node, args: list[str]) -> None:
        try:
            result = accounts.run_pg(
                args, self._account, cwd=node.directory, timeout=self.timeout + 10
            )
        except subprocess.TimeoutExpired as error:
            raise ClusterError(f"{node.name}: {args[0]} timed out{node.log_tail()}") from error
        if result.returncode != 0:
            raise ClusterError(
                f"{node.name}: {' '.join(args)} failed:\n{result.stdout.strip()}{node.log_tail()}"
            )

    # -- stopping ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every node this cluster runs, by pid (an immediate shutdown:
        the data is scratch), then SIGKILL whatever is left."""
        self.resume_standby()
        for node in self.nodes:
            pid = node.postmaster_pid()
            if pid is None:
                continue
            self._stop_node(pid)

    def _stop_node(self, pid: int) -> None:
        try:
            postmaster = psutil.Process(pid)
            processes = [postmaster, *postmaster.children(recursive=True)]
            postmaster.send_signal(signal.SIGQUIT)
        except psutil.NoSuchProcess:
            return
        deadline = time.monotonic() + self.timeout
        for process in processes:
            if not wait_gone(process.pid, deadline):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_cluster(root: Path, *, synchronous: bool) -> Iterator[ReplicatedCluster]:
    """A started cluster under ``root`` for the duration; every node it
    started is stopped afterwards, whatever happened."""
    cluster = ReplicatedCluster(root, synchronous=synchronous)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
