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

import fcntl
import hashlib
import importlib.util
import math
import os
import pwd
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psutil  # type: ignore[import-untyped]

PORT = 5432
SUPERUSER = "postgres"
DATABASE = "postgres"
DEFAULT_TIMEOUT = 60.0

LOCK_FILE = "bourse.lock"
PGDATA = "pgdata"
SOCKET_DIR = "socket"
LOG_FILE = "postgresql.log"
CONF_FILE = "bourse.conf"

# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), terminating NUL included.
MAX_SOCKET_PATH = 103
SOCKET_NAME = f".s.PGSQL.{PORT}"
POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 20


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL could not be started, adopted or stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class PostmasterInfo:
    """What a running PostgreSQL writes into ``postmaster.pid``."""

    pid: int
    data_dir: Path
    port: int
    socket_dir: Path | None
    status: str


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The unprivileged user the PostgreSQL binaries run as when bourse runs as root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


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
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        tail = "\n".join(lines[-LOG_TAIL_LINES:])
        return f"\n--- last lines of {self.log_file} ---\n{tail}" if tail else ""


# -- postmaster.pid and processes ------------------------------------------------------


def read_postmaster_info(pgdata: Path) -> PostmasterInfo | None:
    """Parse ``pgdata/postmaster.pid``; None if it is missing or unreadable."""
    try:
        lines = (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    field = lines + [""] * (8 - len(lines))
    port = int(field[3]) if field[3].strip().isdigit() else PORT
    socket_dir = Path(field[4].strip()) if field[4].strip() else None
    return PostmasterInfo(pid, Path(field[1].strip()), port, socket_dir, field[7].strip())


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def serves(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live postgres process working in ``pgdata``."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or process.name() != "postgres":
            return False
        try:
            cwd = Path(str(process.cwd()))
        except psutil.AccessDenied:
            return True  # a postgres named by our pid file, whose directory we may not see
        return cwd.resolve() == pgdata.resolve()
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int, deadline: float) -> bool:
    """Wait until ``pid`` has exited; False if it is still alive at ``deadline``."""
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def libpq_url(info: PostmasterInfo) -> str:
    """The libpq URL of the server described by ``info`` (Unix socket)."""
    host = quote(str(info.socket_dir), safe="/")
    return f"postgresql://{SUPERUSER}@/{DATABASE}?host={host}&port={info.port}"


# -- the lock --------------------------------------------------------------------------


def acquire_lock(path: Path) -> int:
    """Take the exclusive owner lock and write our pid into it; refuse if someone holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip() or "unknown"
        os.close(fd)
        raise EmbeddedPostgresError(
            f"{path.parent} is in use by another bourse process (pid {holder}); "
            "stop it first or choose another data directory"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


# -- the data directory and configuration ---------------------------------------------


def check_is_ours(data_dir: Path) -> None:
    """Refuse an existing, non-empty directory that holds nothing of bourse's."""
    if not data_dir.is_dir():
        raise EmbeddedPostgresError(f"{data_dir} exists and is not a directory")
    entries = {entry.name for entry in data_dir.iterdir()}
    if entries and not entries & {LOCK_FILE, PGDATA}:
        raise EmbeddedPostgresError(
            f"{data_dir} is not empty and holds no bourse database; choose a new or empty directory"
        )


def socket_path_fits(socket_dir: Path) -> bool:
    """Whether a Unix socket in ``socket_dir`` has a short enough path."""
    return len(os.fsencode(socket_dir / SOCKET_NAME)) <= MAX_SOCKET_PATH


def make_private_temp_dir(data_dir: Path, account: ServiceAccount | None) -> Path:
    """A 0700 socket directory under the temp dir, named after a hash of ``data_dir``."""
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"bourse-pg-{digest}"
    if not socket_path_fits(path):
        raise EmbeddedPostgresError(f"no socket directory short enough for {data_dir}")
    try:
        path.mkdir(mode=0o700)
        if account is not None:
            give_to(path, account)
    except FileExistsError:
        pass
    check_private(path, account.uid if account is not None else os.geteuid())
    return path


def check_private(path: Path, uid: int) -> None:
    """Refuse a socket directory someone else could have planted or could enter."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise EmbeddedPostgresError(
            f"{path} is not a private directory of uid {uid} (mode 0700); remove it and retry"
        )


def write_config(pgdata: Path, socket_dir: Path, account: ServiceAccount | None) -> None:
    """Write ``bourse.conf`` (included from postgresql.conf); ALTER SYSTEM still overrides."""
    settings = {
        "listen_addresses": "''",
        "port": str(PORT),
        "unix_socket_directories": conf_string(str(socket_dir)),
        "unix_socket_permissions": "0700",
        # Durability is the point: an acknowledged trade survives a crash.
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "max_connections": "100",
        "shared_buffers": "128MB",
        "timezone": "'UTC'",
        "log_timezone": "'UTC'",
        "logging_collector": "off",  # stderr goes to data_dir/postgresql.log via pg_ctl -l
        "log_destination": "'stderr'",
        "log_line_prefix": "'%m [%p] '",
        "log_checkpoints": "on",
    }
    lines = [f"{name} = {value}" for name, value in settings.items()]
    path = pgdata / CONF_FILE
    path.write_text("# Written by bourse on every start.\n" + "\n".join(lines) + "\n")
    if account is not None:
        os.chown(path, account.uid, account.gid)


def conf_string(value: str) -> str:
    """Quote ``value`` as a postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# -- root: the service account ---------------------------------------------------------


def service_account(pgdata: Path) -> ServiceAccount:
    """The owner of an existing cluster, else the ``postgres`` user, else ``nobody``."""
    try:
        owner = pgdata.stat().st_uid
    except FileNotFoundError:
        owner = 0
    if owner != 0:
        try:
            return account_of(pwd.getpwuid(owner))
        except KeyError:
            pass
    for name in ("postgres", "nobody"):
        try:
            return account_of(pwd.getpwnam(name))
        except KeyError:
            continue
    raise EmbeddedPostgresError("running as root, but there is no 'postgres' or 'nobody' user")


def account_of(entry: pwd.struct_passwd) -> ServiceAccount:
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return ServiceAccount(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def give_to(path: Path, account: ServiceAccount) -> None:
    """Chown one directory this module owns (never its parents) to the service account."""
    os.chown(path, account.uid, account.gid)


def can_search(path: Path, account: ServiceAccount) -> bool:
    """Whether ``account`` may traverse directory ``path``, by its mode bits."""
    info = path.stat()
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in account.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def check_traversable(data_dir: Path, account: ServiceAccount) -> None:
    """Refuse a data directory whose parents the service account cannot traverse."""
    parents = dict.fromkeys([*data_dir.parents, *data_dir.resolve().parents])  # symlinks too
    blocked = [parent for parent in parents if not can_search(parent, account)]
    if blocked:
        raise EmbeddedPostgresError(
            f"PostgreSQL cannot run as root, so it runs as user {account.name!r}, who cannot "
            f"enter {blocked[-1]} (a parent of the data directory {data_dir}). bourse does not "
            "change the permissions of parent directories: choose a data directory whose "
            "parents are world-searchable, e.g. under /var/lib or /tmp"
        )


def check_binaries_reachable(account: ServiceAccount) -> None:
    """Refuse when the service account cannot reach the bundled PostgreSQL binaries."""
    install = bin_dir().parent
    for directory in (install / "bin", install / "lib"):
        blocked = [d for d in (directory, *directory.parents) if not can_search(d, account)]
        if blocked:
            raise EmbeddedPostgresError(
                f"PostgreSQL cannot run as root, so it runs as user {account.name!r}, who "
                f"cannot enter {blocked[-1]} to reach the PostgreSQL binaries in {directory}; "
                "install bourse where that user can read it"
            )


# -- running the binaries --------------------------------------------------------------


def bin_dir() -> Path:
    """The PostgreSQL binaries bundled with ``pgserver``, found without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the pgserver package (bundled PostgreSQL) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def run_pg(
    args: list[str], account: ServiceAccount | None, *, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a bundled PostgreSQL program (as ``account`` if given); output merged in stdout."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environment["LC_ALL"] = "C"
    command = [str(bin_dir() / args[0]), *args[1:]]
    return subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
        user=account.uid if account is not None else None,
        group=account.gid if account is not None else None,
        extra_groups=list(account.groups) if account is not None else None,
    )
