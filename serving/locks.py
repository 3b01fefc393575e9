"""Per-conversation turn locks: one turn (or desk write) of a conversation at a time.

``LocalTurnLocks`` is one ``threading.Lock`` per conversation, right for one process.
``RedisTurnLocks`` makes the lock hold across API replicas: ``SET kefu:lock:<conversation> <token>
NX PX <ttl>``, renewed by a background thread while the turn runs and deleted only by its owner
(compare-and-delete in Lua). A replica that dies holding a lock stops renewing it, so it expires
``turn_lock_ttl_s`` later and the conversation goes on elsewhere.

With Redis unreachable a turn is refused (``TurnLockError``, 503 with Retry-After) rather than run
unlocked: two replicas writing one conversation at once would lose one of the messages.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from redis import Redis
from redis.exceptions import RedisError

from serving.errors import StorageUnavailableError

__all__ = ["LocalTurnLocks", "RedisTurnLocks", "TurnLockError", "TurnLocks", "lock_key"]

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def lock_key(conversation_id: str) -> str:
    """The Redis key of a conversation's turn lock."""
    return f"kefu:lock:{conversation_id}"


class TurnLockError(StorageUnavailableError):
    """The conversation's turn lock could not be had: another turn holds it too long, or Redis is down.

    Nothing ran; sending the same message (same ``message_id``) again after ``retry_after_s`` is safe.
    """


class TurnLocks(Protocol):
    """Mutual exclusion per conversation."""

    def hold(self, conversation_id: str) -> AbstractContextManager[object]:
        """Hold the conversation's lock for the ``with`` block.

        Raises:
            TurnLockError: the lock could not be had in time, or the lock service is down.
        """
        ...

    def close(self) -> None:
        """Stop background work (renewals)."""
        ...


class LocalTurnLocks:
    """One in-process lock per conversation; waits as long as it takes."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def hold(self, conversation_id: str) -> threading.Lock:
        """The conversation's lock, to use as ``with locks.hold(conversation_id):``."""
        with self._guard:
            return self._locks.setdefault(conversation_id, threading.Lock())

    def close(self) -> None:
        """Nothing runs in the background."""


class RedisTurnLocks:
    """Turn locks in Redis with an owner token, a TTL renewed while held, and owner-only release.

    Args:
        client: The Redis connection pool.
        ttl_s: How long a lock outlives its owner's last renewal (``settings.turn_lock_ttl_s``).
        wait_s: How long a turn waits for a busy lock before ``TurnLockError``.
        owner: This replica's name, the first part of every token (``settings.replica_id``).
    """

    def __init__(self, client: Redis, *, ttl_s: float, wait_s: float, owner: str) -> None:
        self.client = client
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.wait_s = wait_s
        self.owner = owner
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, str] = {}
        """Token -> key of every lock this process holds now."""
        self._held_guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_periodically, name="kefu-lock-renewal", daemon=True)
        self._renewer.start()

    @contextmanager
    def hold(self, conversation_id: str) -> Iterator[None]:
        """Hold the conversation's lock across replicas for the ``with`` block.

        Raises:
            TurnLockError: still busy after ``wait_s``, or Redis is unreachable.
        """
        key = lock_key(conversation_id)
        token = f"{self.owner}:{uuid.uuid4().hex}"
        self._acquire(key, token, conversation_id)
        with self._held_guard:
            self._held[token] = key
        try:
            yield
        finally:
            with self._held_guard:
                self._held.pop(token, None)
            try:
                if not self._release(keys=[key], args=[token]):
                    log.warning("the turn lock of %s had expired before its turn ended", conversation_id)
            except RedisError as exc:  # it expires by itself after the TTL
                log.warning("could not release the turn lock of %s (%s); it expires in %d ms", key, exc, self.ttl_ms)

    def _acquire(self, key: str, token: str, conversation_id: str) -> None:
        deadline = time.monotonic() + self.wait_s
        pause = 0.01
        while True:
            try:
                if self.client.set(key, token, nx=True, px=self.ttl_ms):
                    return
            except RedisError as exc:
                log.warning("turn of %s refused: Redis is unreachable (%s)", conversation_id, exc)
                raise TurnLockError(
                    f"the turn lock service (Redis) is unreachable ({exc}); nothing was changed: send the same "
                    "message again, with the same message_id, in a moment",
                    retry_after_s=5.0,
                ) from exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise TurnLockError(
                    f"another message of conversation {conversation_id} is still being answered; send this one "
                    "again, with the same message_id, in a moment",
                    retry_after_s=max(1.0, self.ttl_ms / 1000),
                )
            time.sleep(min(left, pause * random.uniform(0.5, 1.5)))
            pause = min(0.2, pause * 2)

    def _renew_periodically(self) -> None:
        interval = self.ttl_ms / 3000
        while not self._stop.wait(interval):
            with self._held_guard:
                held = list(self._held.items())
            for token, key in held:
                try:
                    renewed = self._renew(keys=[key], args=[token, self.ttl_ms])
                except RedisError as exc:
                    log.warning("could not renew the turn lock %s (%s)", key, exc)
                    continue
                if not renewed:
                    with self._held_guard:
                        lost = self._held.pop(token, None) is not None
                    if lost:
                        log.error("lost the turn lock %s: it expired while its turn was running", key)

    def close(self) -> None:
        """Stop renewing (held locks then expire after the TTL)."""
        self._stop.set()
        self._renewer.join(timeout=5)
