"""Live events across API replicas: ``EventHub`` over Redis pub/sub.

``publish`` sends ``PUBLISH kefu:<topic> <event as JSON>``; one listener thread per process,
pattern-subscribed to ``kefu:*``, hands each event to this process's subscribers in the order
Redis delivered it. So an agent's reply sent through one replica reaches the customer's socket on
another, and a customer's message reaches every console.

Redis pub/sub does not keep messages: events published while the listener is disconnected are
lost for live sockets. When it reconnects, every local subscriber gets the ``dropped`` event,
which closes its socket (1013) or stream; clients reconnect and reload the history, so nothing
stays missing. While Redis is unreachable, ``publish`` still delivers to this replica's subscribers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any, Self

from redis import Redis
from redis.exceptions import RedisError

from serving.hub import EventHub, Subscription

__all__ = ["CHANNEL_PREFIX", "RedisHub"]

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "kefu:"
"""Topic ``t`` is the Redis channel ``kefu:t``."""
_RETRY_S = (0.2, 0.5, 1.0, 2.0)


class RedisHub(EventHub):
    """Topics shared by every replica on one Redis; ``subscribe`` and ``count`` are this process's subscribers."""

    def __init__(self, client: Redis) -> None:
        super().__init__()
        self.client = client
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="kefu-hub-listener", daemon=True)

    def start(self, wait_s: float = 5.0) -> Self:
        """Start the listener and wait up to ``wait_s`` for its subscription (it keeps retrying after)."""
        self._listener.start()
        if not self._listening.wait(wait_s):
            log.error("Redis pub/sub is not reachable yet: live events from other replicas wait for it")
        return self

    @property
    def listening(self) -> bool:
        """Whether the listener is subscribed now (events from other replicas arrive)."""
        return self._listening.is_set()

    def publish(self, topic: str, event: dict[str, Any]) -> int:
        """Send ``event`` to ``topic``'s subscribers on every replica; returns how many replicas listen.

        With Redis unreachable, only this replica's subscribers get it (the count is theirs).
        """
        data = json.dumps(event, ensure_ascii=False, default=str)
        try:
            return int(self.client.publish(CHANNEL_PREFIX + topic, data))
        except RedisError as exc:
            log.warning("could not publish a %s event to Redis (%s): only this replica's sockets get it", topic, exc)
            return super().publish(topic, event)

    def close(self) -> None:
        """Stop the listener."""
        self._stop.set()
        if self._listener.is_alive():
            self._listener.join(timeout=5)

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            pubsub = self.client.pubsub()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            try:
                pubsub.psubscribe(CHANNEL_PREFIX + "*")
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        if failures:
                            log.warning("Redis pub/sub is back: live sockets reconnect and reload their history")
                            self._drop_all()
                        failures = 0
                        self._listening.set()
                    elif message["type"] == "pmessage":
                        self._deliver(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                self._listening.clear()
                if failures == 0:
                    log.error("lost Redis pub/sub (%s): live events from other replicas stop until it is back", exc)
                failures += 1
                self._stop.wait(_RETRY_S[min(failures, len(_RETRY_S)) - 1])
            finally:
                try:
                    pubsub.close()
                except (RedisError, OSError):
                    pass
        self._listening.clear()

    def _deliver(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("ignored a malformed event on %s", name)
            return
        if isinstance(event, dict):
            super().publish(name.removeprefix(CHANNEL_PREFIX), event)

    def _drop_all(self) -> None:
        """Tell every subscriber it missed events: sockets close and clients reload."""
        with self._lock:
            subscribers = [s for topic in self._topics.values() for s in topic]
        for subscriber in subscribers:
            try:
                subscriber.loop.call_soon_threadsafe(_drop, subscriber)
            except RuntimeError:  # its loop is closed: it is going away
                continue


def _drop(subscription: Subscription) -> None:
    if subscription.dropped:
        return
    subscription.dropped = True
    try:
        subscription.queue.put_nowait({"type": "dropped"})
    except asyncio.QueueFull:
        subscription.queue.get_nowait()
        subscription.queue.put_nowait({"type": "dropped"})
