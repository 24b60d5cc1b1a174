"""Fixtures that start real server processes.

Every end-to-end test runs twice: with ``--workers 0`` (one process) and
with ``--workers 2`` (an engine process and two gateway processes). The
servers the tests start read the choice from ``BOURSE_WORKERS``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import fresh_database
from tests.e2e.harness import ServerProcess, running_server

WORKER_COUNTS = [0, 2]


@pytest.fixture(scope="module", params=WORKER_COUNTS, ids=lambda n: f"workers{n}", autouse=True)
def workers(request: pytest.FixtureRequest) -> Iterator[int]:
    """The ``--workers`` of every server this module's tests start."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOURSE_WORKERS", str(request.param))
        yield request.param


@pytest.fixture(scope="module")
def server(workers: int, cluster_url: str) -> Iterator[ServerProcess]:
    """One server, on a database of its own, shared by a test module's
    tests for one worker count (tests use distinct accounts)."""
    with fresh_database(cluster_url) as url, running_server(url) as process:
        yield process
        assert process.stop() == 0, "".join(process.log)
