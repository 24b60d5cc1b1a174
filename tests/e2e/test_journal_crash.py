"""kill -9 while the tables trail the journal, or while they are being written.

Real server processes on both clusters. Orders are acknowledged once their
journal row commits; the documented tables are projected behind. Killing
the server while the projection is held up, or in the middle of one
projection's transaction, must lose nothing acknowledged: the restarted
server answers every query as before, the tables hold every batch, and
the journal is left empty once the restarted server stops.
"""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from tests.e2e.harness import ServerProcess, exchange, running_server
from tests.e2e.test_durability import query_all, stored_digest, trade_randomly

pytestmark = pytest.mark.timeout(300)

ACCOUNTS = ["81", "82", "83"]


def set_up(server: ServerProcess) -> None:
    setup = "".join(f'<account id="{a}" balance="100000"/>' for a in ACCOUNTS)
    setup += '<symbol sym="DUR">' + "".join(f'<account id="{a}">500</account>' for a in ACCOUNTS)
    exchange(server, f"<create>{setup}</symbol></create>".encode())


def unprojected(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM journal").fetchone()
    assert row is not None
    return int(row[0])


def kill(server: ServerProcess) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()


def restart_answers_as_before(url: str, opened: list[int], before: list[bytes]) -> None:
    """The state rebuilt from the database (journal projected on the way)
    is what a restarted server serves, and what it leaves when it stops."""
    digest = stored_digest(url)
    assert unprojected(url) == 0
    with running_server(url) as server:
        assert query_all(server, ACCOUNTS, opened) == before
        assert server.stop() == 0
    assert stored_digest(url) == digest
    with psycopg.connect(url) as connection:
        orders = connection.execute("SELECT count(*), max(id) FROM orders").fetchone()
    assert orders == (max(opened), max(opened))


def test_kill_between_journal_and_tables(database_url: str) -> None:
    with running_server(database_url) as server:
        set_up(server)
        trade_randomly(server, ACCOUNTS, 20)
        with psycopg.connect(database_url) as holder:
            holder.execute("SELECT * FROM projection FOR UPDATE")
            opened = trade_randomly(server, ACCOUNTS, 80)
            before = query_all(server, ACCOUNTS, opened)
            assert unprojected(database_url) > 10
            kill(server)
            holder.rollback()
    restart_answers_as_before(database_url, opened, before)


SLOW_PROJECTION = """
CREATE FUNCTION slow_projection() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(4); RETURN NULL; END $$;
CREATE TRIGGER slow_projection AFTER UPDATE ON projection
  FOR EACH ROW EXECUTE FUNCTION slow_projection();
"""


def wait_for_sleeping_projection(url: str) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as connection:
        while time.monotonic() < deadline:
            sleeping = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
            ).fetchone()
            if sleeping == (1,):
                return
            time.sleep(0.05)
    raise AssertionError("no projection started")


def test_kill_in_the_middle_of_a_projection(database_url: str) -> None:
    with running_server(database_url) as server:
        set_up(server)
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(SLOW_PROJECTION)
            opened = trade_randomly(server, ACCOUNTS, 60)
            before = query_all(server, ACCOUNTS, opened)
            wait_for_sleeping_projection(database_url)
            kill(server)
            admin.execute("DROP TRIGGER slow_projection ON projection")
    restart_answers_as_before(database_url, opened, before)
