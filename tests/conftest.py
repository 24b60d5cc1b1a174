"""Fixtures shared by every test package: the PostgreSQL clusters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import EXTERNAL_URL_VARIABLE, embedded_cluster, external_url, fresh_database

CLUSTERS = ["embedded", "external"]


@pytest.fixture(scope="session")
def embedded_admin_url() -> Iterator[str]:
    with embedded_cluster() as url:
        yield url


@pytest.fixture(scope="session", params=CLUSTERS)
def cluster_url(request: pytest.FixtureRequest) -> str:
    """The admin URL of each PostgreSQL the suite runs against."""
    if request.param == "embedded":
        url: str = request.getfixturevalue("embedded_admin_url")
        return url
    url_or_none = external_url()
    if url_or_none is None:
        pytest.skip(f"no external PostgreSQL: set {EXTERNAL_URL_VARIABLE} to run this variant")
    return url_or_none


@pytest.fixture
def database_url(cluster_url: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    with fresh_database(cluster_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(cluster_url: str) -> Iterator[str]:
    """A fresh, empty database shared by one test module."""
    with fresh_database(cluster_url) as url:
        yield url
