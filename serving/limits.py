"""Rate limits: a token bucket per key (an API key, a session, a conversation), in process.

Each bucket holds ``per_minute`` tokens and refills continuously, so short bursts pass and a
steady flood is cut to the rate. Buckets idle long enough to be full again are forgotten.
Several API replicas need shared counters (Redis, issue 9); one process keeps them here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from core.errors import RateLimitError

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets keyed by any string."""

    def __init__(self, per_minute: int, *, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.what = what
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def hit(self, key: str) -> None:
        """Take one token from ``key``'s bucket.

        Raises:
            RateLimitError: the bucket is empty; says how long until the next token.
        """
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitError(
                    f"too many requests for this {self.what} (limit {int(self.capacity)}/min); retry in {wait:.1f} s",
                    retry_after_s=wait,
                )
            self._buckets[key] = (tokens - 1.0, now)
            if now - self._last_sweep > 60:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        full_after = self.capacity / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        self._last_sweep = now
