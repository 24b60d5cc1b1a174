"""One node of the test cluster (``cluster``): a PostgreSQL server on a
loopback port, its files and settings, and the process-level tools the
drills need (freezing a server like a hung machine, free ports).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import psutil  # type: ignore[import-untyped]
import psycopg

from bourse.store.embedded_account import ServiceAccount
from bourse.store.embedded_layout import conf_string
from bourse.store.embedded_processes import (
    DATABASE,
    SUPERUSER,
    log_tail,
    read_postmaster_info,
    serves,
)

#: Seconds any one step (a program, a wait) may take.
TIMEOUT = 60.0

#: The settings file every node includes from ``postgresql.conf``.
CONF_FILE = "cluster.conf"


class ClusterError(Exception):
    """A node did not do what it was asked in time; the message has its log's end."""


class Replica(NamedTuple):
    """One row of the primary's ``pg_stat_replication``."""

    application_name: str
    state: str
    sync_state: str


def freeze(postmaster_pid: int) -> list[int]:
    """SIGSTOP a PostgreSQL server and every process it runs (its sessions
    included: stopping the postmaster alone leaves them serving); the pids
    stopped, for ``thaw``."""
    os.kill(postmaster_pid, signal.SIGSTOP)  # first: a stopped postmaster forks no more
    children = psutil.Process(postmaster_pid).children(recursive=True)
    pids = [postmaster_pid, *(child.pid for child in children)]
    for pid in pids[1:]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    return pids


def thaw(pids: list[int]) -> None:
    """SIGCONT what ``freeze`` stopped."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on the loopback right now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@dataclass(slots=True)
class Node:
    """One PostgreSQL server of the cluster, in ``directory``."""

    name: str
    directory: Path
    port: int

    @property
    def pgdata(self) -> Path:
        return self.directory / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    @property
    def log_file(self) -> Path:
        return self.directory / "postgresql.log"

    @property
    def url(self) -> str:
        """This node alone, over TCP."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def postmaster_pid(self) -> int | None:
        """The pid of this node's running server, else None."""
        info = read_postmaster_info(self.pgdata)
        return info.pid if info is not None and serves(info.pid, self.pgdata) else None

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Run one statement (autocommit, bounded) and return its rows."""
        options = f"-c statement_timeout={math.ceil(TIMEOUT * 1000)}"
        try:
            with psycopg.connect(
                self.url, autocommit=True, connect_timeout=5, options=options
            ) as connection:
                cursor = connection.execute(sql.encode(), params or None)
                return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as error:
            raise ClusterError(f"{self.name}: {sql!r} failed: {error}{self.log_tail()}") from error

    def log_tail(self) -> str:
        return log_tail(self.log_file)

    def write_settings(self, synchronous: bool, account: ServiceAccount | None) -> None:
        """This node's own settings (its port and socket), and the cluster's."""
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": conf_string(str(self.socket_dir)),
            "unix_socket_permissions": "0700",
            "cluster_name": conf_string(self.name),
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "wal_keep_size": "'256MB'",
            "hot_standby": "on",
            "wal_log_hints": "on",
            "synchronous_standby_names": "'*'" if synchronous else "''",
            "max_connections": "50",
            "shared_buffers": "32MB",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "logging_collector": "off",
            "log_line_prefix": "'%m [%p] '",
        }
        text = "".join(f"{name} = {value}\n" for name, value in settings.items())
        write_owned(self.pgdata / CONF_FILE, "# Written by bourse.bench.cluster.\n" + text, account)


def remove_stale_socket(node: Node) -> None:
    """Remove the socket and its lock file left by the node's killed server.
    Its processes are dead but may not be reaped yet (whoever adopted them
    reaps when it will), and PostgreSQL takes a lock file whose pid still
    exists, a zombie's included, for a live server's."""
    for path in node.socket_dir.iterdir():
        path.unlink()


def write_owned(path: Path, text: str, account: ServiceAccount | None) -> None:
    path.write_text(text, encoding="utf-8")
    if account is not None:
        os.chown(path, account.uid, account.gid)
