"""PostgreSQL clusters for tests: the embedded one and an external one.

Every test that needs a database gets a fresh, empty database of its own in
one of two clusters: bourse's embedded PostgreSQL (started once per test
session in a temporary directory) and the external server named by
``BOURSE_TEST_DATABASE_URL`` (skipped, with that reason, when unset).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import make_url

from bourse.store.embedded import EmbeddedPostgres

EXTERNAL_URL_VARIABLE = "BOURSE_TEST_DATABASE_URL"


def external_url() -> str | None:
    """The external server's URL, if the environment names one."""
    return os.environ.get(EXTERNAL_URL_VARIABLE) or None


def public_temp_dir(prefix: str) -> Path:
    """A new directory under /tmp that an unprivileged PostgreSQL can traverse
    (pytest's own temporary directories are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@contextmanager
def embedded_cluster() -> Iterator[str]:
    """A running embedded PostgreSQL for the duration; its admin URL."""
    embedded = EmbeddedPostgres(public_temp_dir("bourse-test-pg-") / "data")
    try:
        yield embedded.start()
    finally:
        embedded.stop()


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database of the same server."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server of ``admin_url``, dropped afterwards."""
    name = f"bourse_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
