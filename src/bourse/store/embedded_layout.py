"""The embedded cluster's directory: its owner lock, its socket directory, its settings.

``data_dir/`` holds ``bourse.lock`` (one bourse at a time), ``pgdata/`` (the cluster),
``socket/`` (the Unix socket, unless that path is too long for one) and
``postgresql.log``. Each check here refuses, with the reason, a directory bourse should
not use: one that holds something else, or a socket directory someone else could enter.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from bourse.store.embedded_account import EmbeddedPostgresError, ServiceAccount, give_to
from bourse.store.embedded_processes import PORT

LOCK_FILE = "bourse.lock"
PGDATA = "pgdata"
SOCKET_DIR = "socket"
LOG_FILE = "postgresql.log"
CONF_FILE = "bourse.conf"

# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), terminating NUL included.
MAX_SOCKET_PATH = 103
SOCKET_NAME = f".s.PGSQL.{PORT}"


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
