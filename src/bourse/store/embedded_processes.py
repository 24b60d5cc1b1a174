"""Finding a running PostgreSQL through its ``postmaster.pid``, and watching its process.

The embedded server outlives a bourse killed with ``kill -9``; the next start (and the
crash tests) find it again from what it wrote into ``pgdata/postmaster.pid``, and check
that the pid named there really is a postgres working in that directory before trusting
it: a pid can be reused by an unrelated process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil  # type: ignore[import-untyped]

#: Seconds between two looks at a process that is to exit.
POLL_INTERVAL = 0.05

# What a libpq URL of the server names: its port (where the pid file names
# none), the role it connects as and the database.
PORT = 5432
SUPERUSER = "postgres"
DATABASE = "postgres"


@dataclass(frozen=True, slots=True)
class PostmasterInfo:
    """What a running PostgreSQL writes into ``postmaster.pid``."""

    pid: int
    data_dir: Path
    port: int
    socket_dir: Path | None
    status: str


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


#: Lines of a PostgreSQL log quoted in an error.
LOG_TAIL_LINES = 20


def log_tail(log_file: Path) -> str:
    """The end of a PostgreSQL log, to append to an error ("" if none)."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    tail = "\n".join(lines[-LOG_TAIL_LINES:])
    return f"\n--- last lines of {log_file} ---\n{tail}" if tail else ""
