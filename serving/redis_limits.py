"""Rate limits every API replica counts together: ``RateLimiter``'s token buckets kept in Redis.

Each bucket is a hash ``kefu:rate:<what>:<key>`` (``tokens``, ``stamp``) updated by one Lua script,
so concurrent hits on any replica take tokens atomically; the script reads Redis's clock, so the
replicas' clocks do not matter. A bucket expires when it would be full again (a minute idle).
With Redis unreachable each replica falls back to its own in-process buckets (logged), so limits
still hold per replica instead of failing every request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from core.errors import RateLimitError
from core.settings import Settings
from serving.cluster import connect
from serving.limits import RateLimiter

__all__ = ["RedisRateLimiter", "limiter_factory", "rate_key"]

log = logging.getLogger(__name__)

# ARGV: capacity, tokens per second. Returns {1, tokens left} or {0, seconds until the next token}.
_HIT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(bucket[1]) or capacity
local stamp = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local ttl = math.ceil(capacity / rate * 1000) + 1000
if tokens < 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {0, tostring((1 - tokens) / rate)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, tostring(tokens - 1)}
"""


def rate_key(what: str, key: str) -> str:
    """The Redis key of one bucket."""
    return f"kefu:rate:{what.replace(' ', '_')}:{key}"


class RedisRateLimiter(RateLimiter):
    """Token buckets shared by every replica; this process's own buckets while Redis is unreachable."""

    def __init__(self, client: Redis, per_minute: int, *, what: str) -> None:
        super().__init__(per_minute, what=what)
        self.client = client
        self._hit = client.register_script(_HIT)
        self._degraded = False

    def hit(self, key: str) -> None:
        """Take one token from ``key``'s bucket.

        Raises:
            RateLimitError: the bucket is empty; says how long until the next token.
        """
        try:
            allowed, value = self._hit(keys=[rate_key(self.what, key)], args=[self.capacity, self.rate])
        except RedisError as exc:
            if not self._degraded:
                log.warning("rate limits in Redis unreachable (%s): counting per replica until it is back", exc)
                self._degraded = True
            super().hit(key)
            return
        if self._degraded:
            log.warning("rate limits in Redis are back")
            self._degraded = False
        if not int(allowed):
            wait = float(value)
            raise RateLimitError(
                f"too many requests for this {self.what} (limit {int(self.capacity)}/min); retry in {wait:.1f} s",
                retry_after_s=wait,
            )


def limiter_factory(settings: Settings) -> Callable[[int, str], RateLimiter]:
    """Build rate limiters: shared through ``settings.redis_url`` when it is set, else in process.

    The returned ``make(per_minute, what)`` shares one Redis connection pool between its limiters.
    """
    if not settings.redis_url:
        return lambda per_minute, what: RateLimiter(per_minute, what=what)
    client = connect(settings.redis_url)
    return lambda per_minute, what: RedisRateLimiter(client, per_minute, what=what)
