"""What the bench's market-data subscribers keep of the feed (see
``subscribers.py``): each frame read once into what matters for gaps and
delays, each subscriber's seq per symbol, and the delays of all.

A text frame holds one JSON message or a JSON array of them, in order.
Per symbol, a ``book`` or ``trade`` must carry its last ``seq`` plus one,
else it is a gap; a ``snapshot`` sets the seq (one after the first is
counted). A frame is read into runs of consecutive seqs per symbol and
counts per commit time, so following it costs a subscriber its runs, not
its messages: the server sends the same text to every subscriber.
"""

from __future__ import annotations

import json
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from bourse.bench.load import new_histogram

#: Delay percentiles reported, by name.
DELAY_PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))


class Frame:
    """What one text frame says, worked out once for all the subscribers
    that receive it: each symbol's steps in order, either a run of updates
    with consecutive seqs ``(first, last)`` or a snapshot ``(None, seq)``;
    and how many updates carry each commit time."""

    __slots__ = ("committed", "errors", "malformed", "steps", "undated", "updates")

    def __init__(self) -> None:
        self.steps: dict[str, list[tuple[int | None, int]]] = {}
        self.updates = 0
        self.committed: dict[float, int] = {}
        self.undated = 0
        self.errors: list[str] = []
        self.malformed = 0

    def add(self, message: Any) -> None:
        """One message of the frame, in order."""
        try:
            kind = message["type"]
            if kind in ("book", "trade"):
                self._update(message["symbol"], int(message["seq"]), message.get("committed"))
            elif kind == "snapshot":
                self.steps.setdefault(message["symbol"], []).append((None, int(message["seq"])))
            elif kind == "error":
                self.errors.append(str(message.get("message")))
        except (KeyError, TypeError, ValueError):
            self.malformed += 1

    def _update(self, symbol: str, seq: int, committed: object) -> None:
        steps = self.steps.setdefault(symbol, [])
        first, last = steps[-1] if steps else (None, 0)
        if first is not None and seq == last + 1:
            steps[-1] = (first, seq)
        else:
            steps.append((seq, seq))
        self.updates += 1
        if isinstance(committed, int | float) and not isinstance(committed, bool):
            self.committed[committed] = self.committed.get(committed, 0) + 1
        else:
            self.undated += 1


def read_frame(data: str | bytes) -> Frame:
    """A text frame: one JSON message, or a JSON array of them in order."""
    frame = Frame()
    try:
        value = json.loads(data)
    except ValueError:
        frame.malformed += 1
        return frame
    for message in value if isinstance(value, list) else [value]:
        frame.add(message)
    return frame


class Arrivals:
    """Updates received by all subscribers: their count, the frames that
    held them, first and last arrival, and their delays since commit.

    An arrival is only noted while the subscribers follow the feed (a
    frame and a time); the delays are worked out when they are asked for,
    after the load, so that the bench's own bookkeeping takes as little as
    it can of the machine it measures."""

    def __init__(self) -> None:
        self.count = 0
        self.frames = 0
        self.undated = 0
        self.first = 0.0
        self.last = 0.0
        self._noted: list[tuple[Frame, float]] = []

    def record(self, frame: Frame, now: float) -> None:
        """The updates of ``frame``, received at ``now`` (epoch seconds)."""
        if not frame.updates:
            return
        if not self.count:
            self.first = now
        self.count += frame.updates
        self.frames += 1
        self.undated += frame.undated
        self.last = now
        self._noted.append((frame, now))

    def per_second(self) -> float:
        span = self.last - self.first
        return self.count / span if span > 0 else 0.0

    @property
    def histogram(self) -> HdrHistogram:
        """Every dated update's delay, in microseconds."""
        histogram = new_histogram()
        for frame, now in self._noted:
            for committed, count in frame.committed.items():
                histogram.record_value(max(0, round((now - committed) * 1e6)), count)
        return histogram

    def delay_ms(self) -> dict[str, float]:
        """Percentiles, maximum and minimum; empty when no update was dated."""
        if self.count == self.undated:
            return {}
        histogram = self.histogram
        lowest = min(now - committed for frame, now in self._noted for committed in frame.committed)
        figures = {
            name: histogram.get_value_at_percentile(percent) / 1000
            for name, percent in DELAY_PERCENTILES
        }
        return {**figures, "max": histogram.get_max_value() / 1000, "min": lowest * 1000}


class Tally:
    """One subscriber's view of the feed: each symbol's last ``seq``."""

    def __init__(self, symbols: frozenset[str]) -> None:
        self.symbols = symbols
        self.seqs: dict[str, int] = {}
        self.updates = 0
        self.gaps = 0
        self.snapshots_after_first = 0
        self.malformed = 0
        self.errors: list[str] = []
        #: Why the connection ended before the parent closed it.
        self.ended: str | None = None

    @property
    def ready(self) -> bool:
        """It holds a snapshot of every symbol it follows."""
        return self.symbols.issubset(self.seqs)

    def behind(self, targets: dict[str, int]) -> str | None:
        """The first symbol whose ``seq`` it has not reached; None if none."""
        for symbol, seq in targets.items():
            if self.seqs.get(symbol, -1) < seq:
                return f"{symbol} at {self.seqs.get(symbol)}, not {seq}"
        return None

    def apply(self, frame: Frame) -> None:
        """Follow ``frame``: an update whose seq is not its symbol's last
        plus one is a gap; a snapshot sets the seq (counted after the first)."""
        for symbol, steps in frame.steps.items():
            last = self.seqs.get(symbol)
            for first, seq in steps:
                if first is None:
                    self.snapshots_after_first += last is not None
                elif last is None or first != last + 1:
                    self.gaps += 1
                last = seq
            if last is not None:
                self.seqs[symbol] = last
        self.updates += frame.updates
        self.malformed += frame.malformed
        self.errors.extend(frame.errors)
