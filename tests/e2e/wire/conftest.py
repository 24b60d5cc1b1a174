"""The wire modules: framing, XML, limits, access, hostile and slow
clients, health. Their rules live in the server's front end and do not
depend on which PostgreSQL stores the exchange, so they run against the
embedded one only; the modules that exercise the store (durability,
recovery, market data, the bench, the reference comparison) run against
both clusters.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cluster_url(embedded_admin_url: str) -> str:
    """The embedded cluster's admin URL: one cluster for the wire rules."""
    return embedded_admin_url
