"""One WebSocket loop for customers and agents: hub events out, client frames in, one sender at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from prometheus_client import Gauge

from serving.hub import EventHub

__all__ = ["Send", "relay"]

Send = Callable[[dict[str, Any]], Awaitable[None]]
"""Sends one JSON frame; safe to call from the forwarder and the frame handler at once."""


async def relay(
    websocket: WebSocket,
    hub: EventHub,
    topic: str,
    gauge: Gauge,
    on_frame: Callable[[str, Send], Awaitable[None]],
    *,
    opening: Callable[[Send], Awaitable[None]] | None = None,
) -> None:
    """Forward ``topic``'s events to an accepted socket and hand each client frame to ``on_frame``.

    ``opening`` runs once after subscribing (so no event between it and the first forward is lost).
    A subscriber that falls behind gets the ``dropped`` event and the socket is closed (1013):
    the client reconnects and reloads. Returns when the client disconnects.
    """
    lock = asyncio.Lock()

    async def send(event: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(event)

    gauge.inc()
    try:
        async with hub.subscribe(topic) as subscription:
            if opening is not None:
                await opening(send)

            async def forward() -> None:
                while True:
                    event = await subscription.get()
                    await send(event)
                    if event["type"] == "dropped":
                        await websocket.close(code=1013, reason="fell behind; reconnect and reload")
                        return

            forwarder = asyncio.create_task(forward())
            try:
                while True:
                    await on_frame(await websocket.receive_text(), send)
            except WebSocketDisconnect:
                return
            finally:
                forwarder.cancel()
    finally:
        gauge.dec()
