"""The connection registry: eviction order and its bounded search."""

from __future__ import annotations

from dataclasses import dataclass

from bourse.server.registry import EVICTION_SEARCH, ConnectionRegistry


@dataclass(eq=False)
class FakeConnection:
    """Counts how often eviction asked whether it is busy."""

    busy: bool = False
    asked: int = 0

    @property
    def is_busy(self) -> bool:
        self.asked += 1
        return self.busy


def registry_of(*connections: FakeConnection) -> ConnectionRegistry[FakeConnection]:
    registry: ConnectionRegistry[FakeConnection] = ConnectionRegistry()
    for connection in connections:
        registry.add(connection)
    return registry


def test_the_oldest_connection_is_evicted_first() -> None:
    first, second, third = FakeConnection(), FakeConnection(), FakeConnection()
    registry = registry_of(first, second, third)
    assert registry.eviction_candidate() is first
    assert list(registry) == [first, second, third]


def test_activity_moves_a_connection_to_the_back() -> None:
    first, second = FakeConnection(), FakeConnection()
    registry = registry_of(first, second)
    registry.touch(first)
    assert registry.eviction_candidate() is second
    assert list(registry) == [second, first]


def test_a_connection_owed_a_reply_is_passed_over() -> None:
    owed, idle = FakeConnection(busy=True), FakeConnection()
    assert registry_of(owed, idle).eviction_candidate() is idle


def test_when_all_are_busy_the_longest_idle_goes() -> None:
    first, second = FakeConnection(busy=True), FakeConnection(busy=True)
    assert registry_of(first, second).eviction_candidate() is first


def test_the_search_is_bounded_whatever_the_number_of_connections() -> None:
    busy = [FakeConnection(busy=True) for _ in range(10_000)]
    registry = registry_of(*busy, FakeConnection())
    assert registry.eviction_candidate() is busy[0]
    assert sum(connection.asked for connection in busy) == EVICTION_SEARCH


def test_discarded_and_unknown_connections() -> None:
    kept, gone, stranger = FakeConnection(), FakeConnection(), FakeConnection()
    registry = registry_of(kept, gone)
    registry.discard(gone)
    registry.discard(stranger)
    registry.touch(stranger)
    assert list(registry) == [kept]
    assert len(registry) == 1
    assert ConnectionRegistry[FakeConnection]().eviction_candidate() is None


def test_iteration_is_a_snapshot() -> None:
    first, second = FakeConnection(), FakeConnection()
    registry = registry_of(first, second)
    for connection in registry:
        registry.discard(connection)
    assert len(registry) == 0
