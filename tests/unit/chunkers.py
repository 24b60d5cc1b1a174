"""Ways to cut one byte stream into the chunks a socket might deliver.

Sans-I/O readers (the framing decoder, the connection session) must give
the same events however their input is cut; their tests feed each stream
through every one of these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Chunker = Callable[[bytes], Iterable[bytes]]


def whole(data: bytes) -> Iterable[bytes]:
    return [data]


def byte_by_byte(data: bytes) -> Iterable[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def odd_chunks(data: bytes) -> Iterable[bytes]:
    return [data[i : i + 3] for i in range(0, len(data), 3)]
