"""The connection registry's cap and sockets in their TLS handshake: they
count from accept, go first at the cap, and join the established order
once done."""

from __future__ import annotations

from dataclasses import dataclass

from bourse.server.registry import ConnectionRegistry


@dataclass(eq=False)
class FakeConnection:
    busy: bool = False

    @property
    def is_busy(self) -> bool:
        return self.busy


def test_below_the_cap_nobody_is_evicted() -> None:
    registry: ConnectionRegistry[FakeConnection] = ConnectionRegistry(2)
    assert registry.admit(FakeConnection(), handshaking=False) is None
    assert registry.admit(FakeConnection(), handshaking=True) is None
    assert len(registry) == 2


def test_handshakes_count_toward_the_cap_and_go_first() -> None:
    registry: ConnectionRegistry[FakeConnection] = ConnectionRegistry(3)
    idle = FakeConnection()
    registry.admit(idle, handshaking=False)
    first, second = FakeConnection(), FakeConnection()
    registry.admit(first, handshaking=True)
    registry.admit(second, handshaking=True)
    assert registry.admit(FakeConnection(), handshaking=True) is first
    assert registry.admit(FakeConnection(), handshaking=True) is second
    assert len(registry) == 3
    assert idle in list(registry)


def test_a_flood_of_handshakes_at_a_full_cap_evicts_one_established_connection() -> None:
    established = [FakeConnection() for _ in range(4)]
    registry: ConnectionRegistry[FakeConnection] = ConnectionRegistry(4)
    for connection in established:
        registry.admit(connection, handshaking=False)
    evicted = [registry.admit(FakeConnection(), handshaking=True) for _ in range(100)]
    assert [victim for victim in evicted if victim in established] == [established[0]]
    assert len(registry) == 4


def test_a_finished_handshake_becomes_the_most_recent_connection() -> None:
    registry: ConnectionRegistry[FakeConnection] = ConnectionRegistry(2)
    newcomer, idle = FakeConnection(), FakeConnection()
    registry.admit(newcomer, handshaking=True)
    registry.admit(idle, handshaking=False)
    registry.handshake_done(newcomer)
    assert list(registry) == [idle, newcomer]
    assert registry.admit(FakeConnection(), handshaking=True) is idle


def test_an_unknown_or_established_connection_is_not_moved_by_handshake_done() -> None:
    registry: ConnectionRegistry[FakeConnection] = ConnectionRegistry()
    first, second, stranger = FakeConnection(), FakeConnection(), FakeConnection()
    registry.admit(first, handshaking=False)
    registry.admit(second, handshaking=False)
    registry.handshake_done(first)
    registry.handshake_done(stranger)
    assert list(registry) == [first, second]


def test_discard_forgets_a_socket_in_its_handshake() -> None:
    registry: ConnectionRegistry[FakeConnection] = ConnectionRegistry(1)
    gone = FakeConnection()
    registry.admit(gone, handshaking=True)
    registry.discard(gone)
    assert len(registry) == 0
    assert registry.admit(FakeConnection(), handshaking=False) is None
