"""Fixtures that start real server processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import ServerProcess, running_server


@pytest.fixture(scope="module")
def server(module_database_url: str) -> Iterator[ServerProcess]:
    """One server shared by a test module (tests use distinct accounts)."""
    with running_server(module_database_url) as process:
        yield process
        assert process.stop() == 0, "".join(process.log)
