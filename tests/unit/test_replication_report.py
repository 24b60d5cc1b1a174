"""What bourse says at start about the database's replication, and how it
reads the URL of a replicated cluster (no PostgreSQL needed)."""

from __future__ import annotations

import logging

import pytest

from bourse.store.database import libpq_url, session_options
from bourse.store.replication import HIDDEN, Replication


def test_synchronous_replication_is_reported_as_such() -> None:
    replication = Replication("*", "on", (("node2", "sync"),))
    assert replication.synchronous
    level, line = replication.describe()
    assert level == logging.INFO
    assert "synchronous" in line
    assert "node2 (sync)" in line


def test_asynchronous_replication_warns_naming_the_setting() -> None:
    replication = Replication("", "on", (("node2", "async"),))
    assert not replication.synchronous
    level, line = replication.describe()
    assert level == logging.WARNING
    assert "synchronous_standby_names" in line
    assert "lose" in line


@pytest.mark.parametrize("commit", ["local", "off"])
def test_a_commit_that_does_not_wait_for_the_standby_warns_naming_synchronous_commit(
    commit: str,
) -> None:
    replication = Replication("*", commit, (("node2", "sync"),))
    assert not replication.synchronous
    level, line = replication.describe()
    assert level == logging.WARNING
    assert "synchronous_commit" in line
    assert repr(commit) in line


def test_a_synchronous_setting_without_a_streaming_standby_warns_that_commits_wait() -> None:
    level, line = Replication("node2", "on", ()).describe()
    assert level == logging.WARNING
    assert "no synchronous standby is streaming" in line


def test_potential_standbys_do_not_count_as_synchronous() -> None:
    assert not Replication("FIRST 1 (a, b)", "on", (("b", "potential"),)).synchronous
    assert Replication("ANY 1 (a, b)", "remote_apply", (("a", "quorum"),)).synchronous


def test_a_role_that_cannot_see_the_standbys_is_told_what_to_grant() -> None:
    replication = Replication("*", "on", (("node2", HIDDEN),))
    assert not replication.synchronous
    level, line = replication.describe()
    assert level == logging.WARNING
    assert "pg_monitor" in line


def test_no_standby_at_all_is_said_plainly() -> None:
    level, line = Replication("", "on", ()).describe()
    assert level == logging.INFO
    assert "not replicated" in line


def test_a_multi_host_url_goes_to_a_writable_host_unless_it_says_otherwise() -> None:
    url = "postgresql://bourse@h1:5432,h2:5432/exchange"
    assert session_options(url)["target_session_attrs"] == "read-write"
    chosen = "postgresql://bourse@h1:5432,h2:5432/exchange?target_session_attrs=primary"
    assert "target_session_attrs" not in session_options(chosen)


def test_a_driver_in_the_scheme_is_dropped_and_other_databases_refused() -> None:
    assert libpq_url("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"
    assert libpq_url("postgres://u@h1:1,h2:2/db") == "postgresql://u@h1:1,h2:2/db"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        libpq_url("mysql://u:secret@h/db")
