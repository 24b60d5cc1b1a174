"""bourse's own PostgreSQL, started in a local data directory when no database URL is given.

Why not ``pgserver``'s Python API (``get_server``)? Only its bundled PostgreSQL binaries are
used here, driven directly, because its manager has traps for a server that must be durable
and must share a machine politely:

- run as root it creates a ``pgserver`` system user and widens the permissions of every
  parent directory of the data directory;
- it stops PostgreSQL from an ``atexit`` hook that keeps a pid list on disk, and if its
  owner is killed with ``kill -9`` the PostgreSQL keeps running and a later ``cleanup()``
  does not stop it.

What this module does instead:

- **Layout.** ``data_dir/`` (mode 0700) holds ``bourse.lock``, ``pgdata/`` (the cluster:
  ``initdb`` wants an empty directory, and the lock must exist before ``initdb`` runs),
  ``socket/`` (the Unix socket) and ``postgresql.log``.
- **Unix socket only, trust auth.** ``listen_addresses = ''``: no TCP at all. Local
  connections are trusted, which is safe only because the socket directory is 0700: only
  the server's own user (and root) can reach it. The socket lives in ``data_dir/socket``
  unless that path is too long for a Unix socket (about 107 bytes including
  ``/.s.PGSQL.5432``); then in a 0700 directory under the system temp dir named after a
  hash of the data directory's path.
- **Detached server.** ``pg_ctl start -w`` runs PostgreSQL in its own session: it
  outlives the bourse process that started it, on purpose.
- **Adoption.** If ``pgdata/postmaster.pid`` names a live postgres process working in this
  data directory (the previous owner was killed with ``kill -9``), ``start()`` adopts it:
  it waits (bounded) until the server accepts connections and returns its URL; it never
  starts a second one. A server alive but not answering (stopped, stuck) is an error.
- **One owner at a time.** ``start()`` takes an exclusive, non-blocking ``flock`` on
  ``data_dir/bourse.lock`` and keeps it until ``stop()``. The lock file holds the
  owner's pid, which the refusal names. The kernel drops the lock when its process dies,
  even by ``kill -9``; the descriptor is never inherited by PostgreSQL (Python opens
  files non-inheritable), so an orphaned server does not hold it.
- **Root.** PostgreSQL refuses to run as root. As root, the binaries run as an
  unprivileged account: the owner of an existing cluster, else the system user
  ``postgres``, else ``nobody``. Only directories this module creates or owns are
  chowned to it (``data_dir``, ``pgdata``, the socket directory); the permissions of
  parent directories are never changed. If that account cannot traverse the parents of
  the data directory (or reach the binaries), ``start()`` says so: choose a data
  directory whose parents are world-searchable, e.g. under ``/var/lib`` or ``/tmp``.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType

from bourse.store.embedded_account import (
    EmbeddedPostgresError,
    ServiceAccount,
    check_binaries_reachable,
    check_traversable,
    give_to,
    run_pg,
    service_account,
)
from bourse.store.embedded_layout import (
    CONF_FILE,
    LOCK_FILE,
    LOG_FILE,
    PGDATA,
    SOCKET_DIR,
    acquire_lock,
    check_is_ours,
    make_private_temp_dir,
    socket_path_fits,
    write_config,
)
from bourse.store.embedded_processes import (
    DATABASE,
    POLL_INTERVAL,
    SUPERUSER,
    PostmasterInfo,
    is_alive,
    libpq_url,
    log_tail,
    read_postmaster_info,
    serves,
    wait_gone,
)

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "PostmasterInfo",
    "libpq_url",
    "read_postmaster_info",
    "serves",
]

DEFAULT_TIMEOUT = 60.0


class EmbeddedPostgres:
    """A PostgreSQL server owned by this object, in ``data_dir``; see the module docstring."""

    def __init__(self, data_dir: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.data_dir = Path(os.path.abspath(data_dir))
        self.pgdata = self.data_dir / PGDATA
        self.log_file = self.data_dir / LOG_FILE
        self.timeout = timeout
        self._account: ServiceAccount | None = None
        self._lock_fd: int | None = None
        self._postmaster_pid: int | None = None
        self._url: str | None = None

    @property
    def url(self) -> str | None:
        """The libpq URL of the server while this object owns it, else None."""
        return self._url

    @property
    def postmaster_pid(self) -> int | None:
        """The pid of the server while this object owns it, else None."""
        return self._postmaster_pid

    def start(self) -> str:
        """Start (or adopt) the server and return its libpq URL; idempotent."""
        if self._url is not None:
            return self._url
        self._account = service_account(self.pgdata) if os.geteuid() == 0 else None
        if self._account is not None:
            check_binaries_reachable(self._account)
        self._prepare_data_dir()
        self._lock_fd = acquire_lock(self.data_dir / LOCK_FILE)
        try:
            info = self._adopt_or_launch()
        except BaseException:
            self._release_lock()
            raise
        self._postmaster_pid = info.pid
        self._url = libpq_url(info)
        return self._url

    def revive(self) -> str:
        """Start the owned server again if it has died (keeping the lock); its URL.

        The exchange calls this while it recovers from a failed commit, so
        that an embedded PostgreSQL killed under it comes back by itself.
        """
        if self._lock_fd is None:
            return self.start()
        if self._postmaster_pid is not None and serves(self._postmaster_pid, self.pgdata):
            assert self._url is not None
            return self._url
        info = self._adopt_or_launch()
        self._postmaster_pid = info.pid
        self._url = libpq_url(info)
        return self._url

    def stop(self) -> None:
        """Fast-stop the server if this object started or adopted it; idempotent."""
        pid, self._postmaster_pid, self._url = self._postmaster_pid, None, None
        try:
            if pid is not None:
                self._stop_server(pid)
        finally:
            self._release_lock()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------

    def _prepare_data_dir(self) -> None:
        if self.data_dir.exists() or self.data_dir.is_symlink():
            check_is_ours(self.data_dir)
        else:
            self.data_dir.mkdir(mode=0o700, parents=True)
        if self._account is not None:
            check_traversable(self.data_dir, self._account)
            give_to(self.data_dir, self._account)

    def _adopt_or_launch(self) -> PostmasterInfo:
        info = read_postmaster_info(self.pgdata)
        if info is not None and serves(info.pid, self.pgdata):
            adopted = self._adopt(info)
            if adopted is not None:
                return adopted
        elif info is not None and is_alive(info.pid):
            # The pid was reused by an unrelated process: PostgreSQL would refuse to start.
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        return self._launch(info.pid if info is not None else None)

    def _adopt(self, info: PostmasterInfo) -> PostmasterInfo | None:
        """Wait for an orphaned server to accept connections; None if it exits meanwhile."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if not serves(info.pid, self.pgdata):
                return None
            current = read_postmaster_info(self.pgdata)
            if current is not None and current.pid == info.pid and self._ready(current, deadline):
                return current
            time.sleep(POLL_INTERVAL)
        raise EmbeddedPostgresError(
            f"PostgreSQL (pid {info.pid}) is running on {self.pgdata} but did not accept "
            f"connections within {self.timeout:g}s; refusing to start a second server on the "
            f"same data directory. Is it stopped (kill -CONT {info.pid}) or stuck? Stop it, "
            f"then start again.{self._log_tail()}"
        )

    def _launch(self, previous_pid: int | None) -> PostmasterInfo:
        self._ensure_cluster()
        socket_dir = self._make_socket_dir()
        write_config(self.pgdata, socket_dir, self._account)
        result = self._run(
            [
                "pg_ctl",
                "start",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(math.ceil(self.timeout)),
                "-s",
            ],
        )
        info = read_postmaster_info(self.pgdata)
        if result.returncode != 0 or info is None:
            self._abandon_launch(previous_pid)
            raise EmbeddedPostgresError(
                f"PostgreSQL did not start on {self.pgdata}: {result.stdout.strip()}"
                f"{self._log_tail()}"
            )
        if not self._ready(info, time.monotonic() + self.timeout):
            self._abandon_launch(previous_pid)
            raise EmbeddedPostgresError(
                f"PostgreSQL started on {self.pgdata} but does not accept connections"
                f"{self._log_tail()}"
            )
        return info

    def _abandon_launch(self, previous_pid: int | None) -> None:
        """Stop a server this launch started, if it half-started, so start() is all-or-nothing."""
        info = read_postmaster_info(self.pgdata)
        if info is not None and info.pid != previous_pid and serves(info.pid, self.pgdata):
            self._run(["pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-s"])

    def _ensure_cluster(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedPostgresError(
                f"{self.pgdata} is not empty but holds no PostgreSQL cluster (an interrupted "
                "initdb?); move it away and start again"
            )
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._account is not None:
            give_to(self.pgdata, self._account)
        result = self._run(
            [
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--locale=C",
                "--data-checksums",
                "--no-instructions",
            ],
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed in {self.pgdata}:\n{result.stdout.strip()}")
        with (self.pgdata / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\n# bourse's settings, rewritten on every start\ninclude '{CONF_FILE}'\n")

    def _make_socket_dir(self) -> Path:
        inside = self.data_dir / SOCKET_DIR
        if socket_path_fits(inside):
            inside.mkdir(mode=0o700, exist_ok=True)
            if self._account is not None:
                give_to(inside, self._account)
            return inside
        return make_private_temp_dir(self.data_dir, self._account)

    # -- readiness, stop ---------------------------------------------------------------

    def _ready(self, info: PostmasterInfo, deadline: float) -> bool:
        """Whether the server answers pg_isready before ``deadline`` (monotonic)."""
        if info.socket_dir is None:
            return False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            args = ["pg_isready", "-q", "-h", str(info.socket_dir), "-p", str(info.port)]
            args += ["-d", DATABASE, "-U", SUPERUSER, "-t", str(max(2, math.ceil(remaining)))]
            try:
                result = self._run(args, timeout=remaining)
            except subprocess.TimeoutExpired:
                return False
            if result.returncode == 0:
                return True
            if not serves(info.pid, self.pgdata):
                return False
            time.sleep(POLL_INTERVAL)

    def _stop_server(self, pid: int) -> None:
        if not serves(pid, self.pgdata):
            return
        args = ["pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-s"]
        result = self._run([*args, "-t", str(math.ceil(self.timeout))])
        if not wait_gone(pid, time.monotonic() + self.timeout):
            raise EmbeddedPostgresError(
                f"PostgreSQL (pid {pid}) on {self.pgdata} did not stop: "
                f"{result.stdout.strip()}{self._log_tail()}"
            )

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # -- helpers -----------------------------------------------------------------------

    def _run(
        self, args: list[str], *, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_pg(
            args,
            self._account,
            cwd=self.data_dir,
            timeout=self.timeout + 10 if timeout is None else timeout,
        )

    def _log_tail(self) -> str:
        return log_tail(self.log_file)
