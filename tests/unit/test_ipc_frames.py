"""Frames on a gateway link stay below their bound, whatever is queued.

Two ends of a real Unix socket pair, with a frame bound small enough that a
turn's items must be split, and an item too large for any frame.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from bourse.server.ipc import HEADER, MessageStream

FRAME_BOUND = 4096


class Recording(MessageStream):
    """An end that records what it receives and what it could not send."""

    def __init__(self) -> None:
        super().__init__(max_frame=FRAME_BOUND)
        self.items: list[Any] = []
        self.frame_sizes: list[int] = []
        self.undelivered: list[Any] = []

    def data_received(self, data: bytes) -> None:
        self._note_frame_sizes(data)
        super().data_received(data)

    def _note_frame_sizes(self, data: bytes) -> None:
        self._pending = getattr(self, "_pending", b"") + data
        while len(self._pending) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._pending)
            if len(self._pending) < HEADER.size + length:
                return
            self.frame_sizes.append(length)
            self._pending = self._pending[HEADER.size + length :]

    def items_received(self, items: list[Any]) -> None:
        self.items.extend(items)

    def undeliverable(self, item: Any) -> Any | None:
        self.undelivered.append(item)
        return ("too large", item[0])

    def link_lost(self) -> None:
        """Nothing to do: the test closes both ends."""


async def linked_pair() -> tuple[Recording, Recording]:
    loop = asyncio.get_running_loop()
    left_socket, right_socket = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    _, left = await loop.create_unix_connection(Recording, sock=left_socket)
    _, right = await loop.create_unix_connection(Recording, sock=right_socket)
    return left, right


async def until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


def test_a_turn_larger_than_a_frame_is_split_in_order() -> None:
    async def scenario() -> tuple[list[Any], list[int]]:
        left, right = await linked_pair()
        sent = [(token, f"{token:0300d}") for token in range(1, 101)]
        for item in sent:
            left.send(item)
        await until(lambda: len(right.items) == len(sent))
        left.close()
        right.close()
        return right.items, right.frame_sizes

    items, sizes = asyncio.run(scenario())
    assert items == [(token, f"{token:0300d}") for token in range(1, 101)]
    assert len(sizes) > 1
    assert max(sizes) <= FRAME_BOUND


def test_an_item_too_large_for_any_frame_is_replaced_and_the_rest_still_arrive() -> None:
    async def scenario() -> tuple[Recording, Recording]:
        left, right = await linked_pair()
        left.send((1, "small"))
        left.send((2, "y" * (2 * FRAME_BOUND)))
        left.send((3, "small"))
        await until(lambda: len(right.items) == 3)
        left.close()
        right.close()
        return left, right

    left, right = asyncio.run(scenario())
    assert right.items == [(1, "small"), ("too large", 2), (3, "small")]
    assert [token for token, _ in left.undelivered] == [2]
    assert max(right.frame_sizes) <= FRAME_BOUND
