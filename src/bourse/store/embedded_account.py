"""Running the bundled PostgreSQL binaries, as an unprivileged account when bourse is root.

PostgreSQL refuses to run as root. As root, the binaries run as the owner of an existing
cluster, else the system user ``postgres``, else ``nobody``; only the directories bourse
creates are handed to that account, never their parents, so what that account cannot
reach is refused with a sentence saying what to change, before anything starts.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL could not be started, adopted or stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The unprivileged user the PostgreSQL binaries run as when bourse runs as root."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]


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
    groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
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
