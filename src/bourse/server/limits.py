"""Request rate limits: token buckets, per connection and per account.

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second;
each request takes one, and a request that finds the bucket empty is
answered with "Rate limit exceeded" instead of reaching the exchange. A
rate of 0 means no limit (the default: the published protocol has none).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Allows ``rate`` requests a second on average, ``burst`` at once."""

    __slots__ = ("_burst", "_clock", "_rate", "_tokens", "_updated")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._clock = clock
        self._tokens = self._burst
        self._updated = clock()

    def allow(self) -> bool:
        """Take a token if there is one."""
        now = self._clock()
        tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class AccountLimits:
    """One bucket per account, made on the account's first request."""

    __slots__ = ("_buckets", "_burst", "_clock", "_rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, account_id: str) -> bool:
        """Take a token from ``account_id``'s bucket if there is one."""
        bucket = self._buckets.get(account_id)
        if bucket is None:
            bucket = self._buckets[account_id] = TokenBucket(self._rate, self._burst, self._clock)
        return bucket.allow()
