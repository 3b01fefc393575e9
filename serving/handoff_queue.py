"""Taking the most urgent waiting handoff, so two agents never get the same one, on any replica.

The database stays the source of truth (``DeskStore.take_handoff`` refuses a handoff already
taken); the queue only decides who tries which. ``LocalHandoffQueue`` reads the queue from the
database and takes one handoff at a time in this process. ``RedisHandoffQueue`` keeps the waiting
handoffs in Redis, maintained as handoffs open, are taken, handed back or closed, and pops the
most urgent one atomically (a Lua script computing ``serving.desk.priority``: tier and emotion
weights plus a point per minute waited, at most 60; ties to the oldest id). The Redis copy is
rebuilt from the database at start-up, when Redis lost it (a restart), and after an update failed.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from redis import Redis
from redis.exceptions import RedisError

from core.desk import DeskStore
from core.errors import ConflictError, NotFoundError
from core.types import AgentAccount, Handoff, HandoffStatus
from serving.desk import priority

if TYPE_CHECKING:
    from serving.desk import HumanDesk

__all__ = ["BUILT_KEY", "CREATED_KEY", "WAITING_KEY", "HandoffQueue", "LocalHandoffQueue", "RedisHandoffQueue"]

log = logging.getLogger(__name__)

WAITING_KEY = "kefu:handoffs:waiting"
"""Sorted set: waiting handoff ids scored by their fixed weight (tier + emotion)."""
CREATED_KEY = "kefu:handoffs:created"
"""Hash: handoff id -> when it was opened (Unix seconds), for the waiting-time points."""
BUILT_KEY = "kefu:handoffs:built"
"""String: present while the two keys above mirror the database (gone after a Redis restart)."""

# Returns -1 when the queue must be rebuilt from the database first, 0 when none is waiting, else
# {id, weight, created}. Weights are scanned highest first: once even a full 60 waiting points
# cannot beat the best so far, the rest cannot either.
_POP = """
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local now = tonumber(ARGV[1])
local members = redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local best, best_priority, best_weight, best_created = nil, -1, 0, now
for i = 1, #members, 2 do
  local id = tonumber(members[i])
  local weight = tonumber(members[i + 1])
  if best ~= nil and weight + 60 < best_priority then break end
  local created = tonumber(redis.call('HGET', KEYS[2], members[i]) or now)
  local waited = math.max(0, now - created)
  local p = weight + math.min(60, math.floor(waited / 60))
  if p > best_priority or (p == best_priority and id < best) then
    best, best_priority, best_weight, best_created = id, p, weight, created
  end
end
if best == nil then return 0 end
redis.call('ZREM', KEYS[1], tostring(best))
redis.call('HDEL', KEYS[2], tostring(best))
return {best, tostring(best_weight), tostring(best_created)}
"""


class HandoffQueue(Protocol):
    """Which waiting handoff an agent gets next."""

    def waiting(self, handoff: Handoff) -> None:
        """A handoff was opened or refreshed."""
        ...

    def gone(self, handoff_id: int) -> None:
        """A handoff was taken, handed back or closed."""
        ...

    def take_next(self, desk: HumanDesk, agent: AgentAccount) -> Handoff:
        """Give ``agent`` the most urgent waiting handoff (``HumanDesk.take``).

        Raises:
            NotFoundError: no handoff is waiting.
        """
        ...


def _take_first(desk: HumanDesk, agent: AgentAccount, ids: list[int]) -> Handoff:
    """Take the first of ``ids`` still waiting; another replica may take one between reading and taking."""
    for handoff_id in ids:
        try:
            return desk.take(handoff_id, agent)
        except (ConflictError, NotFoundError):
            continue
    raise NotFoundError("no handoff is waiting")


class LocalHandoffQueue:
    """The next handoff from the database's queue, one taker at a time in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def waiting(self, handoff: Handoff) -> None:
        """Nothing to keep: the database is read at each take."""

    def gone(self, handoff_id: int) -> None:
        """Nothing to keep: the database is read at each take."""

    def take_next(self, desk: HumanDesk, agent: AgentAccount) -> Handoff:
        """Give ``agent`` the most urgent waiting handoff.

        Raises:
            NotFoundError: no handoff is waiting.
        """
        with self._lock:
            waiting = [item["id"] for item in desk.queue() if item["status"] == HandoffStatus.WAITING.value]
            return _take_first(desk, agent, waiting)


def _epoch(moment: datetime) -> float:
    """A naive UTC time from the store as Unix seconds."""
    return moment.replace(tzinfo=UTC).timestamp()


def _weight(handoff: Handoff) -> int:
    """The priority without waiting points: what the sorted set scores."""
    return priority(handoff, now=handoff.created_at)


class RedisHandoffQueue:
    """Waiting handoffs in a Redis sorted set that every replica pops from atomically.

    Args:
        client: The Redis connection pool.
        store: The desk's database, from which the set is rebuilt.
    """

    def __init__(self, client: Redis, store: DeskStore) -> None:
        self.client = client
        self.store = store
        self._pop = client.register_script(_POP)
        self._stale = True
        """Rebuild before the next pop: not built yet, or an update failed."""
        self._fallback = LocalHandoffQueue()

    def rebuild(self) -> int:
        """Mirror the database's waiting handoffs in Redis; returns how many wait.

        Raises:
            RedisError: Redis is unreachable.
        """
        waiting = self.store.list_handoffs((HandoffStatus.WAITING.value,), limit=10_000)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(WAITING_KEY, CREATED_KEY)
        if waiting:
            pipe.zadd(WAITING_KEY, {str(h.id): _weight(h) for h in waiting})
            pipe.hset(CREATED_KEY, mapping={str(h.id): _epoch(h.created_at) for h in waiting})
        pipe.set(BUILT_KEY, datetime.now(UTC).isoformat(timespec="seconds"))
        pipe.execute()
        self._stale = False
        return len(waiting)

    def waiting(self, handoff: Handoff) -> None:
        """Queue (or re-score) a waiting handoff; one already taken is not queued."""
        if handoff.status is not HandoffStatus.WAITING:
            self.gone(handoff.id)
            return
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(WAITING_KEY, {str(handoff.id): _weight(handoff)})
            pipe.hset(CREATED_KEY, str(handoff.id), _epoch(handoff.created_at))
            pipe.execute()
        except RedisError as exc:
            self._failed("queue", handoff.id, exc)

    def gone(self, handoff_id: int) -> None:
        """Drop a handoff that no longer waits."""
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.zrem(WAITING_KEY, str(handoff_id))
            pipe.hdel(CREATED_KEY, str(handoff_id))
            pipe.execute()
        except RedisError as exc:
            self._failed("unqueue", handoff_id, exc)

    def take_next(self, desk: HumanDesk, agent: AgentAccount) -> Handoff:
        """Pop the most urgent waiting handoff and give it to ``agent``; the database read if Redis is down.

        Raises:
            NotFoundError: no handoff is waiting.
        """
        while True:
            try:
                popped = self._pop_next()
            except RedisError as exc:
                log.warning("handoff queue in Redis unreachable (%s): taking the next one from the database", exc)
                self._stale = True
                return self._fallback.take_next(desk, agent)
            if popped is None:
                raise NotFoundError("no handoff is waiting")
            handoff_id, weight, created = popped
            try:
                return desk.take(handoff_id, agent)
            except (ConflictError, NotFoundError):
                continue  # taken by id on some replica meanwhile: the next one
            except Exception:
                self._put_back(handoff_id, weight, created)
                raise

    def _pop_next(self) -> tuple[int, float, float] | None:
        if self._stale:
            self.rebuild()
        for _ in range(2):
            result = self._pop(keys=[WAITING_KEY, CREATED_KEY, BUILT_KEY], args=[time.time()])
            if result == -1:
                log.warning("the handoff queue is missing from Redis (restarted?): rebuilding it from the database")
                self.rebuild()
                continue
            if not result:
                return None
            handoff_id, weight, created = result
            return int(handoff_id), float(weight), float(created)
        return None

    def _put_back(self, handoff_id: int, weight: float, created: float) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(WAITING_KEY, {str(handoff_id): weight})
            pipe.hset(CREATED_KEY, str(handoff_id), created)
            pipe.execute()
        except RedisError as exc:
            self._failed("requeue", handoff_id, exc)

    def _failed(self, action: str, handoff_id: int, exc: RedisError) -> None:
        log.warning("could not %s handoff %d in Redis (%s); rebuilding the queue from the database later",
                    action, handoff_id, exc)  # fmt: skip
        self._stale = True
