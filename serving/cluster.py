"""What API replicas share: live events, per-conversation turn locks and the handoff queue.

Without ``settings.redis_url`` everything stays in this process (``Cluster.local``), which is right
for exactly one replica. With it, each part goes through Redis so that any number of replicas
behind a load balancer behave as one (rate limits too: ``serving.redis_limits``). Redis holds no
data of record; the database does. Keys and channels, all under ``kefu:``:

- ``kefu:<topic>`` pub/sub channels (``kefu:console``, ``kefu:conversation:<id>``): live events.
- ``kefu:lock:<conversation id>`` string, the owner's token, TTL ``turn_lock_ttl_s`` renewed while held.
- ``kefu:handoffs:waiting`` sorted set, ``kefu:handoffs:created`` hash, ``kefu:handoffs:built`` string:
  the waiting handoffs, no TTL, rebuilt from the database.
- ``kefu:rate:<what>:<key>`` hash, TTL one minute idle: rate-limit buckets.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from core.desk import DeskStore
from core.errors import ConfigError
from core.settings import Settings
from serving.handoff_queue import HandoffQueue, LocalHandoffQueue, RedisHandoffQueue
from serving.hub import EventHub
from serving.locks import LocalTurnLocks, RedisTurnLocks, TurnLocks
from serving.redis_hub import RedisHub

__all__ = ["Cluster", "connect", "replica_name"]

log = logging.getLogger(__name__)


def connect(url: str) -> Redis:
    """A Redis connection pool for ``url`` that fails fast when Redis is down (a refused turn beats a hung one).

    Raises:
        ConfigError: not a Redis URL.
    """
    try:
        return Redis.from_url(
            url,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        )
    except ValueError as exc:
        raise ConfigError(f"KEFU_REDIS_URL is not a Redis URL ({exc}): use redis://host:6379/0") from exc


def replica_name(settings: Settings) -> str:
    """This process's name in lock tokens and logs: ``settings.replica_id`` or ``hostname:pid``."""
    return settings.replica_id or f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Cluster:
    """The shared parts of one API process, in memory or through Redis."""

    hub: EventHub
    """Live events to customers' sockets and agents' consoles."""
    locks: TurnLocks
    """One turn (or desk write) of a conversation at a time."""
    handoffs: HandoffQueue
    """Which waiting handoff an agent gets next."""
    redis: Redis | None = None
    """The connection pool, when shared through Redis."""

    @classmethod
    def local(cls) -> Cluster:
        """Everything in this process: one replica."""
        return cls(hub=EventHub(), locks=LocalTurnLocks(), handoffs=LocalHandoffQueue())

    @classmethod
    def from_settings(cls, settings: Settings, store: DeskStore) -> Cluster:
        """Through ``settings.redis_url`` when it is set, else ``local()``.

        Start-up does not wait for Redis: a replica that cannot reach it logs so, refuses turns
        (503) and catches up by itself when Redis is back.

        Raises:
            ConfigError: ``redis_url`` is not a Redis URL.
        """
        if not settings.redis_url:
            return cls.local()
        client = connect(settings.redis_url)
        queue = RedisHandoffQueue(client, store)
        try:
            queue.rebuild()
        except RedisError as exc:
            log.error("Redis is unreachable (%s): turns are refused until it is back", exc)
        locks = RedisTurnLocks(
            client,
            ttl_s=settings.turn_lock_ttl_s,
            # A running turn ends within about one LLM timeout; a dead owner's lock expires after the TTL.
            wait_s=settings.llm_timeout_s + settings.turn_lock_ttl_s,
            owner=replica_name(settings),
        )
        return cls(hub=RedisHub(client).start(), locks=locks, handoffs=queue, redis=client)

    def health(self) -> str:
        """``in process``, ``ok`` or ``down: <why>`` (for the readiness check)."""
        if self.redis is None:
            return "in process"
        try:
            self.redis.ping()
        except RedisError as exc:
            return f"down: {type(exc).__name__}"
        return "ok"

    def close(self) -> None:
        """Stop the event listener and lock renewals, and close the connections."""
        if isinstance(self.hub, RedisHub):
            self.hub.close()
        self.locks.close()
        if self.redis is not None:
            self.redis.close()
