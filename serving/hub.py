"""In-process fan-out of live events to customers' sockets and streams and to agents' consoles.

Turns run in worker threads; subscribers are asyncio tasks. ``publish`` may be called from any
thread and hands each event to the subscriber's event loop. A subscriber that falls more than
``QUEUE_SIZE`` events behind is dropped (its socket reconnects and reloads the history) rather
than letting memory grow. Several replicas need Redis pub/sub here (issue 9).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["CONSOLE", "QUEUE_SIZE", "EventHub", "Subscription", "conversation_topic"]

QUEUE_SIZE = 256
CONSOLE = "console"
"""The topic every agent console listens to."""

_DROPPED: dict[str, Any] = {"type": "dropped"}


def conversation_topic(conversation_id: str) -> str:
    """The topic of one conversation's live events."""
    return f"conversation:{conversation_id}"


class Subscription:
    """One subscriber's queue of events."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False

    def _put(self, event: dict[str, Any]) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self.queue.get_nowait()
            self.queue.put_nowait(_DROPPED)

    async def get(self) -> dict[str, Any]:
        """The next event; ``{"type": "dropped"}`` if this subscriber fell too far behind."""
        return await self.queue.get()


class EventHub:
    """Topics with subscribers; thread-safe publishing."""

    def __init__(self) -> None:
        self._topics: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()

    def publish(self, topic: str, event: dict[str, Any]) -> int:
        """Send ``event`` to every subscriber of ``topic``; returns how many there were."""
        with self._lock:
            subscribers = list(self._topics.get(topic, ()))
        for subscriber in subscribers:
            try:
                subscriber.loop.call_soon_threadsafe(subscriber._put, event)
            except RuntimeError:  # the subscriber's loop is closed: it is going away
                continue
        return len(subscribers)

    def count(self, topic: str) -> int:
        """Subscribers of ``topic`` now."""
        with self._lock:
            return len(self._topics.get(topic, ()))

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        """Receive ``topic``'s events while the context is open."""
        subscription = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._topics.setdefault(topic, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                subscribers = self._topics.get(topic)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._topics[topic]
