"""Rate limiting per posting platform: a token bucket per API key.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens a second; every request takes
one. A platform may send ``burst`` requests at once and ``rate`` a second for as long as it likes;
beyond that it is told how long to wait. Buckets live in the process: each ingest replica limits
on its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    """The tokens a platform has left at a moment."""

    tokens: float
    at: float


def take(bucket: Bucket, *, now: float, rate: float, burst: float) -> tuple[Bucket, float]:
    """Take one token at ``now``; the bucket after, and 0 when allowed, else the seconds until a
    token will be there (nothing is taken then)."""
    elapsed = max(0.0, now - bucket.at)
    tokens = min(burst, bucket.tokens + elapsed * rate)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), 0.0
    return Bucket(tokens, now), (1.0 - tokens) / rate


def retry_after_header(wait_s: float) -> str:
    """A ``Retry-After`` value (whole seconds, at least 1) for a wait."""
    return str(max(1, math.ceil(wait_s)))


class RateLimiter:
    """One bucket per platform; the set of platforms is the configured keys, so it is bounded."""

    def __init__(
        self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}

    def acquire(self, platform: str) -> float:
        """Take a token for the platform: 0 when allowed, else the seconds to wait."""
        now = self._clock()
        bucket = self._buckets.get(platform) or Bucket(float(self.burst), now)
        self._buckets[platform], wait_s = take(
            bucket, now=now, rate=self.rate_per_s, burst=self.burst
        )
        return wait_s
