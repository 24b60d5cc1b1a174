"""Durability end to end: restarts, database outages and crashes.

Real server processes, real PostgreSQL (embedded and external), real TCP.
Nothing acknowledged may be lost; nothing unacknowledged may be half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest

from bourse.bench.crash import freeze, run_crash_cycles, thaw
from bourse.core.digest import state_digest
from bourse.store.embedded import EmbeddedPostgres
from bourse.store.store import Store
from tests.databases import fresh_database, public_temp_dir
from tests.e2e.harness import BOURSE, ServerProcess, exchange, running_server

pytestmark = pytest.mark.timeout(600)


def stored_digest(database_url: str) -> str:
    async def load() -> str:
        store = Store(database_url)
        try:
            engine, _ = await store.load_exchange()
            assert await store.audit() == []
            return state_digest(engine)
        finally:
            await store.close()

    return asyncio.run(load())


def trade_randomly(server: ServerProcess, accounts: list[str], rounds: int) -> list[int]:
    """Random orders and cancels from ``accounts``; the ids of the orders opened."""
    rng = random.Random(5)
    opened: list[int] = []
    for _ in range(rounds):
        who = rng.choice(accounts)
        amount = rng.randint(1, 9) * rng.choice((1, -1))
        children = f'<order sym="DUR" amount="{amount}" limit="{rng.randint(90, 110)}"/>'
        if opened and rng.random() < 0.2:
            children += f'<cancel id="{rng.choice(opened)}"/>'
        reply = exchange(server, f'<transactions id="{who}">{children}</transactions>'.encode())
        opened += [int(part.split('"')[0]) for part in reply.decode().split(' id="')[1:2]]
    return opened


def query_all(server: ServerProcess, accounts: list[str], order_ids: list[int]) -> list[bytes]:
    queries = "".join(f'<query id="{order_id}"/>' for order_id in order_ids)
    return [
        exchange(server, f'<transactions id="{who}">{queries}</transactions>'.encode())
        for who in accounts
    ]


def test_restart_keeps_everything(database_url: str) -> None:
    accounts = ["71", "72", "73"]
    setup = "".join(f'<account id="{a}" balance="100000"/>' for a in accounts)
    setup += '<symbol sym="DUR">' + "".join(f'<account id="{a}">500</account>' for a in accounts)
    setup += "</symbol>"
    with running_server(database_url) as server:
        exchange(server, f"<create>{setup}</create>".encode())
        opened = trade_randomly(server, accounts, 120)
        before = query_all(server, accounts, opened)
        assert server.stop() == 0
    digest_before = stored_digest(database_url)
    with running_server(database_url) as server:
        assert query_all(server, accounts, opened) == before
        again = exchange(server, b'<create><account id="71" balance="1"/></create>')
        assert b"Account already exists" in again
        assert server.stop() == 0
    assert stored_digest(database_url) == digest_before
    assert len(opened) > 100


def test_embedded_default_survives_restart_and_kill() -> None:
    data_dir = public_temp_dir("bourse-e2e-") / "data"
    with running_server(None, "--data-dir", str(data_dir)) as server:
        exchange(server, b'<create><account id="5" balance="10"/></create>')
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
    postmaster = (data_dir / "pgdata" / "postmaster.pid").read_text().split()[0]
    with running_server(None, "--data-dir", str(data_dir)) as server:
        assert b"Account already exists" in exchange(
            server, b'<create><account id="5" balance="10"/></create>'
        )
        assert (data_dir / "pgdata" / "postmaster.pid").read_text().split()[0] == postmaster
        assert server.stop() == 0
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


@contextlib.contextmanager
def server_on_own_cluster() -> Iterator[tuple[EmbeddedPostgres, ServerProcess]]:
    """A server on a PostgreSQL of its own, which the test may stop or
    freeze, holding one account ("1"); commits time out after one second."""
    embedded = EmbeddedPostgres(public_temp_dir("bourse-outage-") / "data")
    admin_url = embedded.start()
    try:
        with (
            fresh_database(admin_url) as url,
            running_server(url, "--commit-timeout", "1") as server,
        ):
            reply = exchange(server, b'<create><account id="1" balance="5"/></create>')
            assert b"<created" in reply
            yield embedded, server
            assert server.stop() == 0
    finally:
        embedded.stop()


def assert_prompt_refusal(server: ServerProcess, account_id: str, within: float) -> None:
    started = time.monotonic()
    reply = exchange(server, f'<create><account id="{account_id}" balance="5"/></create>'.encode())
    assert b"Exchange unavailable" in reply
    assert time.monotonic() - started < within


def assert_recovered_with(server: ServerProcess, new_account: str) -> None:
    """Once available again, account 1 is still there and a new one is made."""
    reply = wait_until_available(
        server,
        b'<create><account id="1" balance="5"/>'
        + f'<account id="{new_account}" balance="5"/></create>'.encode(),
    )
    assert b'<error id="1">Account already exists</error>' in reply
    assert f'<created id="{new_account}"/>'.encode() in reply


def health(server: ServerProcess) -> int:
    """The exit status of ``bourse health`` against ``server``."""
    command = [str(BOURSE), "health", "--port", str(server.port)]
    return subprocess.run(command, capture_output=True, timeout=30, check=False).returncode


def test_database_outage_gives_prompt_errors_then_recovers() -> None:
    with server_on_own_cluster() as (embedded, server):
        embedded.stop()
        for account_id in ("2", "3", "4"):
            assert_prompt_refusal(server, account_id, within=5)
        assert health(server) == 1
        embedded.start()
        assert_recovered_with(server, "2")
        assert health(server) == 0


def test_frozen_database_gives_prompt_errors_then_recovers() -> None:
    with server_on_own_cluster() as (embedded, server):
        pid = embedded.postmaster_pid
        assert pid is not None
        frozen = freeze(pid)
        try:
            # The writer's session is open: its statement goes out and hangs,
            # so the outcome is in doubt and the client is dropped unanswered.
            with pytest.raises(ConnectionError):
                exchange(server, b'<create><account id="2" balance="5"/></create>')
            assert_prompt_refusal(server, "3", within=1)
        finally:
            thaw(frozen)
        assert_recovered_with(server, "3")


SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON journal
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
"""


def test_commit_in_doubt_drops_the_connection_and_settles(database_url: str) -> None:
    """A COMMIT that gets no answer: its client is dropped without a reply,
    the session is settled (here: terminated, so rolled back) before the
    exchange is read back, and the state afterwards is the database's."""
    with running_server(database_url, "--commit-timeout", "1") as server:
        assert b"<created" in exchange(server, b'<create><account id="1" balance="5"/></create>')
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(SLOW_COMMIT)
            with pytest.raises(ConnectionError):
                exchange(server, b'<create><account id="2" balance="5"/></create>')
            admin.execute("DROP TRIGGER slow_commit ON journal")
        reply = wait_until_available(
            server, b'<create><account id="1" balance="5"/><account id="2" balance="5"/></create>'
        )
        assert b'<error id="1">Account already exists</error>' in reply
        assert b'<created id="2"/>' in reply
        assert server.stop() == 0
    with psycopg.connect(database_url) as check:
        assert check.execute("SELECT count(*) FROM accounts").fetchone() == (2,)


def wait_until_available(server: ServerProcess, request: bytes, within: float = 30) -> bytes:
    """Send ``request`` until the exchange answers it with something other
    than "unavailable"; that answer."""
    deadline = time.monotonic() + within
    while True:
        reply = exchange(server, request)
        if b"Exchange unavailable" not in reply or time.monotonic() > deadline:
            return reply
        time.sleep(0.2)


def test_crash_cycles_lose_nothing_acknowledged() -> None:
    data_dir = public_temp_dir("bourse-crash-test-") / "data"
    report = asyncio.run(run_crash_cycles(4, data_dir, clients=6, seed=11, commit_timeout=1.0))
    assert report.problems == []
    assert report.cycles == 4
    assert len(report.faults) == 4
    assert report.acknowledged_orders > 50
