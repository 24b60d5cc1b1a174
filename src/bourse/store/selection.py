"""Which PostgreSQL holds the exchange: the one at a given URL, or bourse's own.

Serving, ``bourse db upgrade`` and the benchmarks all choose the database
the same way, and choosing it is the store's business: the embedded
PostgreSQL is started here (and stopped when the caller is done) without
going through the server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bourse.store.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Database:
    """Where the exchange stores its state, and how to restart it if it
    is ours (the embedded server)."""

    url: str
    revive: Callable[[], object] | None = None


@contextlib.contextmanager
def open_database(configured: str | None, data_dir: Path) -> Iterator[Database]:
    """The configured database, or the embedded server in ``data_dir``,
    started for the duration and stopped afterwards."""
    if configured is not None:
        yield Database(configured)
        return
    embedded = EmbeddedPostgres(data_dir)
    try:
        url = embedded.start()
        log.info("embedded PostgreSQL ready in %s", data_dir)
        yield Database(url, embedded.revive)
    finally:
        embedded.stop()
