"""The projection against real PostgreSQL: the journal first, the tables behind.

Runs against both clusters. Batches go through the store as the server
sends them; the tables must catch up with the journal (in the background,
or at the next load after a crash between the two), the watermark must
never run ahead of the tables, a projection that cannot go on must make
commits wait rather than let its backlog grow, and two projectors racing
over the same batches must write each batch once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg  # type: ignore[import-untyped]
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.core.changes import ChangeSet
from bourse.core.commands import Request
from bourse.core.digest import state_digest
from bourse.core.exchange import Exchange
from bourse.store.database import connection_pool
from bourse.store.projection import project
from bourse.store.projector import ProjectionFailedError
from bourse.store.store import Store
from bourse.store.writer import BatchWriter
from tests.builders import account, create, order, shares, transactions
from tests.databases import fresh_database
from tests.property.test_engine_properties import SEED, requests

pytestmark = pytest.mark.timeout(300)

NOW = 1_700_000_000


def workload(requests: int = 600, group: int = 5) -> list[list[Request]]:
    shape = WorkloadShape(accounts=40, symbols=3, requests=requests)
    stream: list[Request] = list(transaction_stream(shape, seed=11))
    return [[setup_request(shape)], *(stream[i : i + group] for i in range(0, len(stream), group))]


async def commit(
    store: Store,
    engine: Exchange,
    batches: list[list[Request]],
    first: int,
    backlog: list[int] | None = None,
) -> int:
    """Apply each group and commit it as one batch, waiting for room as the
    server does; the last batch id. ``backlog`` gets the unprojected rows
    after each commit."""
    batch_id = first - 1
    for batch in batches:
        for request in batch:
            engine.apply(request, NOW + batch_id)
        changes = engine.take_changes()
        if changes.is_empty():
            continue
        batch_id += 1
        await store.wait_for_room()
        await store.write(batch_id, len(batch), changes, lambda session: None)
        if backlog is not None:
            backlog.append(store.projector.lag_rows)
    return batch_id


async def reloaded(store: Store, engine: Exchange, last: int) -> tuple[str, str, int]:
    """Once ``store`` has projected up to batch ``last``: the digests of
    ``engine`` and of the exchange loaded back (audited), and ``last``."""
    assert store.projector.watermark == last
    restored, loaded = await store.load_exchange()
    assert loaded == last
    assert await store.audit() == []
    return state_digest(engine), state_digest(restored), last


def progress(url: str) -> tuple[int, int, int | None, int]:
    """In one snapshot: the watermark, the last stored batch, the first
    journal row and how many journal rows there are."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT (SELECT batch_id FROM projection), (SELECT coalesce(max(id), 0) FROM batches),"
            " (SELECT min(batch_id) FROM journal), (SELECT count(*) FROM journal)"
        ).fetchone()
    assert row is not None
    return row


async def migrated(url: str) -> None:
    store = Store(url)
    try:
        await store.migrate()
    finally:
        await store.close()


@contextmanager
def watermark_locked(url: str) -> Iterator[None]:
    """Hold the watermark row locked: every projection waits meanwhile."""
    with psycopg.connect(url) as connection:
        connection.execute("SELECT * FROM projection FOR UPDATE")
        yield
        connection.rollback()


def test_the_tables_catch_up_behind_the_commits(database_url: str) -> None:
    async def scenario() -> tuple[str, str, int]:
        store = Store(database_url)
        try:
            await store.migrate()
            _, start = await store.load_exchange()
            engine = Exchange()
            last = await commit(store, engine, workload(), start + 1)
            await store.projector.drain()
            return await reloaded(store, engine, last)
        finally:
            await store.close()

    written, restored, last = asyncio.run(scenario())
    assert written == restored
    assert progress(database_url) == (last, last, None, 0), "projected rows leave the journal"


def test_a_crash_between_journal_and_tables_loses_nothing(database_url: str) -> None:
    """Batches committed to the journal while the projection is stuck, then
    every connection dropped (as when the server is killed): the next load
    projects them and rebuilds the same exchange."""

    async def crash() -> tuple[str, int]:
        store = Store(database_url)
        await store.migrate()
        engine = Exchange()
        with watermark_locked(database_url):
            last = await commit(store, engine, workload(), 1)
            await store.reset_connections()
        await store.close()
        return state_digest(engine), last

    async def restart() -> str:
        store = Store(database_url)
        try:
            restored, _ = await store.load_exchange()
            assert await store.audit() == []
            return state_digest(restored)
        finally:
            await store.close()

    written, last = asyncio.run(crash())
    watermark, _, first_unprojected, _ = progress(database_url)
    assert watermark < last
    assert first_unprojected == watermark + 1
    assert asyncio.run(restart()) == written
    assert progress(database_url) == (last, last, None, 0)


def test_the_watermark_never_runs_ahead_of_the_tables(database_url: str) -> None:
    stop = threading.Event()
    seen: list[tuple[int, int, int | None, int]] = []

    def watch() -> None:
        while not stop.is_set():
            seen.append(progress(database_url))

    async def scenario() -> None:
        store = Store(database_url, max_lag_rows=2_000)
        try:
            await commit(store, Exchange(), workload(1500, 3), 1)
        finally:
            await store.close()

    asyncio.run(migrated(database_url))
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        asyncio.run(scenario())
    finally:
        stop.set()
        watcher.join()
    assert len(seen) > 5
    for watermark, stored, first_unprojected, _ in seen:
        assert stored == watermark
        assert first_unprojected is None or first_unprojected == watermark + 1
    assert len({watermark for watermark, *_ in seen}) > 1, "the watcher saw projection move"


def test_a_stuck_projection_holds_the_commits_back(database_url: str) -> None:
    """While the projection cannot write, commits go on only until the
    unprojected rows pass the bound; then they wait, and go on once it can."""

    async def scenario() -> None:
        store = Store(database_url, max_lag_rows=500)
        try:
            await store.migrate()
            engine = Exchange()
            with watermark_locked(database_url):
                committing = asyncio.create_task(commit(store, engine, workload(1500, 3), 1))
                await asyncio.sleep(2)
                assert not committing.done(), "commits went on past the bound"
                held = store.projector.stats.rows
                assert held == 0
            last = await asyncio.wait_for(committing, 60)
            await store.projector.drain()
            assert store.projector.watermark == last
            assert await store.audit() == []
        finally:
            await store.close()

    asyncio.run(scenario())


def test_the_backlog_stays_within_its_bound(database_url: str) -> None:
    async def scenario() -> tuple[list[int], int]:
        store = Store(database_url, max_lag_rows=500)
        backlog: list[int] = []
        batches = workload(1500, 3)
        try:
            await store.migrate()
            with watermark_locked(database_url):
                committing = asyncio.create_task(commit(store, Exchange(), batches, 1, backlog))
                await asyncio.sleep(1)
            await asyncio.wait_for(committing, 60)
        finally:
            await store.close()
        engine = Exchange()
        largest = 0
        for batch in batches:
            for request in batch:
                engine.apply(request, NOW)
            largest = max(largest, engine.take_changes().row_count())
        return backlog, largest

    backlog, largest_batch = asyncio.run(scenario())
    assert max(backlog) <= 500 + largest_batch
    assert max(backlog) > 500 - largest_batch, "the projection was held up"


def test_racing_projectors_write_each_batch_once(database_url: str) -> None:
    """A second store projects the journal (as a restarting server would)
    while the first's projection is held up: whichever goes second finds
    the watermark moved and writes nothing, and the first goes on after."""

    async def scenario() -> tuple[str, str, int]:
        first = Store(database_url)
        second = Store(database_url)
        try:
            await first.migrate()
            engine = Exchange()
            batches = workload()
            with watermark_locked(database_url):
                middle = await commit(first, engine, batches[:40], 1)
                racing = asyncio.create_task(second.catch_up())
                await asyncio.sleep(0.5)
            assert await asyncio.wait_for(racing, 30) >= 1
            last = await commit(first, engine, batches[40:], middle + 1)
            await first.projector.drain()
            assert first.projector.watermark == last
            restored, _ = await second.load_exchange()
            assert await second.audit() == []
            return state_digest(engine), state_digest(restored), last
        finally:
            await first.close()
            await second.close()

    written, restored, last = asyncio.run(scenario())
    assert written == restored
    with psycopg.connect(database_url) as connection:
        counts = connection.execute("SELECT count(*), count(DISTINCT id) FROM batches").fetchone()
    assert counts == (last, last)


@pytest.mark.parametrize(
    ("other_projects", "handed_over"),
    [("first half", "at once"), ("all", "in halves")],
    ids=["the-start-of-its-window", "batches-not-yet-handed-over"],
)
def test_a_projector_goes_on_after_another_projected_some_of_its_batches(
    database_url: str, other_projects: str, handed_over: str
) -> None:
    """Another projector (a restarting server catching up from the same
    journal) got the watermark lock first and wrote the start of the window
    this one is about to write, or batches committed but not yet handed to
    this one: it drops the batches written and projects the rest."""

    async def scenario() -> tuple[str, str, int]:
        store = Store(database_url)
        try:
            await store.migrate()
            engine = Exchange()
            with watermark_locked(database_url):
                last = await commit(store, engine, workload(), 1)
                await store.projector.stop()
            session = await asyncpg.connect(database_url)
            try:
                await project(session, 1, last if other_projects == "all" else last // 2)
            finally:
                await session.close()
            store.projector.start(0)
            cut = last if handed_over == "at once" else last // 2
            for handed in (range(1, cut + 1), range(cut + 1, last + 1)):
                for batch_id in handed:
                    store.projector.add(batch_id, 1)
                await asyncio.wait_for(store.projector.drain(), 30)
                await store.wait_for_room()
            return await reloaded(store, engine, last)
        finally:
            await store.close()

    written, restored, last = asyncio.run(scenario())
    assert written == restored
    assert progress(database_url) == (last, last, None, 0)


def test_a_batch_missing_from_the_journal_stops_the_projection(database_url: str) -> None:
    """A window the journal cannot supply, with nobody else's watermark
    ahead, is no race: the projection stops and commits are refused until
    the exchange is rebuilt from the database."""

    async def scenario() -> None:
        store = Store(database_url)
        try:
            await store.migrate()
            store.projector.start(0)
            store.projector.add(1, 1)
            await asyncio.wait_for(store.projector.drain(), 30)
            with pytest.raises(ProjectionFailedError, match="lacks some of batches 1-1"):
                await store.wait_for_room()
            assert store.projector.watermark == 0
        finally:
            await store.close()

    asyncio.run(scenario())


async def _journal_then_project(url: str, changes: list[ChangeSet], cuts: list[int]) -> str:
    """Journal every change set as one batch (no projection), then project
    the journal in windows ending at ``cuts`` and load the exchange back."""
    store = Store(url)
    database = connection_pool(url)
    writer = BatchWriter(database)
    try:
        await store.migrate()
        for batch_id, batch in enumerate(changes, 1):
            await writer.write(batch_id, 1, batch, lambda session: None)
        session, _ = await writer.open_session()
        first = 1
        for last in sorted({cut for cut in cuts if cut < len(changes)} | {len(changes)}):
            await project(session, first, last)
            first = last + 1
        restored, loaded = await store.load_exchange()
        assert loaded == len(changes)
        assert await store.audit() == []
        return state_digest(restored)
    finally:
        await writer.close()
        await database.dispose()
        await store.close()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stream=st.lists(requests, max_size=30),
    group=st.integers(min_value=1, max_value=4),
    cuts=st.lists(st.integers(min_value=1, max_value=30), max_size=6).map(sorted),
)
def test_any_windows_write_the_same_tables(
    cluster_url: str, stream: list[Request], group: int, cuts: list[int]
) -> None:
    """However the batches are grouped into windows (each merged in SQL),
    the tables rebuild the engine's very state."""
    engine = Exchange()
    changes = []
    chunks: list[list[Request]] = [[SEED]]
    chunks += (stream[i : i + group] for i in range(0, len(stream), group))
    for now, chunk in enumerate(chunks):
        for request in chunk:
            engine.apply(request, NOW + now)
        changes.append(engine.take_changes())
    with fresh_database(cluster_url) as url:
        assert asyncio.run(_journal_then_project(url, changes, cuts)) == state_digest(engine)


def test_a_new_symbol_and_an_advanced_seq_in_one_window(database_url: str) -> None:
    """A symbol created and traded in the window it is projected in, and
    one whose market-data seq advanced twice: one row each, the last seq."""
    engine = Exchange()
    engine.apply(create(account("1", "100"), account("2", "0"), shares("OLD", "2", "10")), 1)
    engine.apply(transactions("2", order("OLD", "-1", "5")), 2)
    first = engine.take_changes()
    engine.apply(create(shares("NEW", "2", "10")), 3)
    engine.apply(transactions("2", order("NEW", "-1", "5")), 4)
    engine.apply(transactions("2", order("OLD", "-1", "6")), 5)
    second = engine.take_changes()
    asyncio.run(_journal_then_project(database_url, [first, second], []))
    with psycopg.connect(database_url) as connection:
        stored = connection.execute("SELECT symbol, market_seq FROM symbols ORDER BY 1").fetchall()
    published = {state.symbol: state.seq for state in engine.market_snapshot().symbols}
    assert stored == [("NEW", published["NEW"]), ("OLD", published["OLD"])]
    assert published["OLD"] >= 2
    assert published["NEW"] >= 1
