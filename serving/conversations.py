"""The conversation API for apps and the web widget: sessions, messages (JSON or SSE), events, WebSocket.

Replies are streamed only after the turn is complete: redaction, the graph and the output guards
have all run on the whole reply before its first piece leaves, so a reply the guard replaces is
never shown, even in part. ``typing`` goes out at once so the customer sees the agent working.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from core.errors import AuthError, ForbiddenError, InvalidInputError, KefuError, NotFoundError
from core.types import Channel, CustomerId, Lang
from serving.api import (
    AUTH_RESPONSES,
    ChatResponse,
    ConversationIdPath,
    PrincipalDep,
    ServiceDep,
    authenticate,
    chat_response,
)
from serving.auth import Principal
from serving.errors import status_of
from serving.hub import conversation_topic
from serving.service import KefuService
from serving.sockets import Send, relay

__all__ = ["pieces", "router"]

log = logging.getLogger(__name__)

router = APIRouter()

_PIECE = re.compile(
    r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]{1,3}|[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+\s*|\s+"
)


def pieces(text: str) -> list[str]:
    """The reply cut for streaming: words with their trailing space, Chinese in runs of up to three characters."""
    found = _PIECE.findall(text)
    return found if "".join(found) == text else [text]


class SessionRequest(BaseModel):
    """Who the session is for."""

    customer_id: str = Field(min_length=1, max_length=32)

    model_config = {"json_schema_extra": {"examples": [{"customer_id": "C0001"}]}}


class SessionResponse(BaseModel):
    """A session token for one customer: give it to their browser or app."""

    token: str
    customer_id: str
    expires_at: int
    """Unix seconds."""


class MessageRequest(BaseModel):
    """One customer message."""

    text: str = Field(min_length=1, max_length=4000)
    customer_id: str | None = Field(default=None, min_length=1, max_length=32)
    """Required with an API key; a session token already names its customer."""
    message_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    """The client's id for this message: a retry with the same id gets the stored reply, not a second turn."""
    channel: Channel = Channel.APP
    lang: Lang | None = None
    """Reply language; detected from the text when omitted."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"text": "我的订单到哪了？", "message_id": "m-0001"},
                {"text": "Where is my order?", "lang": "en"},
            ]
        }
    }


class FeedbackRequest(BaseModel):
    """The customer's rating of a conversation; comments are not taken (free text would be personal data to keep)."""

    rating: int = Field(ge=1, le=5)
    """1 (bad) to 5 (good)."""
    customer_id: str | None = Field(default=None, min_length=1, max_length=32)
    """Required with an API key; a session token already names its customer."""

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"rating": 5}]}}


class FeedbackResponse(BaseModel):
    """The rating as stored; rating again replaces it."""

    conversation_id: str
    rating: int


def _new_session(service: KefuService, request: Request, customer_id: str) -> SessionResponse:
    if service.store.get_customer(CustomerId(customer_id)) is None:
        raise NotFoundError(f"unknown customer {customer_id!r}")
    token, expiry = request.app.state.signer.session(customer_id)
    return SessionResponse(token=token, customer_id=customer_id, expires_at=expiry)


@router.post("/v1/sessions", response_model=SessionResponse, tags=["sessions"], responses=AUTH_RESPONSES)
def create_session(
    body: SessionRequest, service: ServiceDep, principal: PrincipalDep, request: Request
) -> SessionResponse:
    """A session token for a customer, for their browser or app (needs a channel API key).

    Your backend calls this once it knows who the customer is, and hands the token to the widget
    (``data-kefu-token``) or the app; the token only opens that customer's conversations.
    """
    if principal.kind == "session":
        raise ForbiddenError("a session token cannot create sessions; use an API key")
    return _new_session(service, request, body.customer_id)


@router.post(
    "/v1/demo/session",
    response_model=SessionResponse,
    tags=["demo"],
    responses={
        400: {"description": "a body that is not valid JSON"},
        403: {"description": "not a demo customer, or the demo pages are off"},
        404: {"description": "unknown customer"},
    },
)
def demo_session(body: SessionRequest, service: ServiceDep, request: Request) -> SessionResponse:
    """A session for a demo customer, for the demo pages (only with ``KEFU_DEMO_PAGES``; turn off in production)."""
    if not service.settings.demo_pages:
        raise ForbiddenError("the demo pages are turned off (KEFU_DEMO_PAGES=false)")
    if body.customer_id not in ("C0001", "C0002"):
        raise ForbiddenError("the demo pages sign in only the demo customers C0001 and C0002")
    return _new_session(service, request, body.customer_id)


async def _turn(
    service: KefuService, request_state: Any, conversation_id: str, principal: Principal, body: MessageRequest
) -> ChatResponse:
    customer = principal.customer(body.customer_id)
    request_state.conversation_limiter.hit(conversation_id)
    result = await run_in_threadpool(
        service.chat,
        conversation_id,
        customer,
        body.text,
        channel=body.channel,
        lang=body.lang,
        message_id=body.message_id,
    )
    return chat_response(result)


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


def _reply_events(response: ChatResponse, message_id: str | None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"type": "token", "id": message_id, "text": piece} for piece in pieces(response.reply)
    ]
    events.append({"type": "reply", "id": message_id, **response.model_dump(mode="json")})
    return events


@router.post(
    "/v1/conversations/{conversation_id}/messages",
    response_model=ChatResponse,
    tags=["chat"],
    responses={
        200: {
            "content": {"text/event-stream": {"example": 'event: typing\ndata: {"type": "typing"}\n\n'}},
            "description": "The reply; with Accept: text/event-stream, Server-Sent Events (ack, typing, token…, reply)",
        },
        **{code: AUTH_RESPONSES[code] for code in (400, 401, 403, 404, 429)},
    },
)
async def post_message(
    conversation_id: ConversationIdPath,
    body: MessageRequest,
    service: ServiceDep,
    principal: PrincipalDep,
    request: Request,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Send a customer message; the reply as JSON, or streamed as SSE with ``Accept: text/event-stream``.

    While a human agent owns the conversation the reply is empty (``route`` is ``human``): their
    messages arrive on ``GET …/events`` or the WebSocket.
    """
    if "text/event-stream" not in (accept or ""):
        return await _turn(service, request.app.state, conversation_id, principal, body)
    principal.customer(body.customer_id)  # refuse before the stream starts, with a status code

    async def stream() -> AsyncIterator[str]:
        yield _sse({"type": "ack", "id": body.message_id})
        yield _sse({"type": "typing"})
        try:
            response = await _turn(service, request.app.state, conversation_id, principal, body)
        except KefuError as exc:
            yield _sse({"type": "error", "status": status_of(exc), "detail": str(exc)})
            return
        for event in _reply_events(response, body.message_id):
            yield _sse(event)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get(
    "/v1/conversations/{conversation_id}/events",
    tags=["chat"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "live events of the conversation"},
        **{code: AUTH_RESPONSES[code] for code in (401, 403, 404, 429)},
    },
)
async def conversation_events(
    conversation_id: ConversationIdPath,
    service: ServiceDep,
    principal: PrincipalDep,
    customer_id: str | None = None,
) -> StreamingResponse:
    """Live events of a conversation as Server-Sent Events: a human agent joining, writing, leaving.

    Browsers' ``EventSource`` cannot send headers: pass the session token as ``?token=``.
    """
    customer = principal.customer(customer_id)
    await run_in_threadpool(service.history, conversation_id, customer)  # ownership check

    async def stream() -> AsyncIterator[str]:
        async with service.hub.subscribe(conversation_topic(conversation_id)) as subscription:
            yield ": connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(subscription.get(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield _sse(event)
                if event["type"] == "dropped":
                    return

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.post(
    "/v1/conversations/{conversation_id}/feedback",
    response_model=FeedbackResponse,
    tags=["chat"],
    responses={
        **{code: AUTH_RESPONSES[code] for code in (400, 401, 429)},
        404: {"description": "unknown customer, or no conversation of theirs with this id"},
    },
)
def rate_conversation(
    conversation_id: ConversationIdPath, body: FeedbackRequest, service: ServiceDep, principal: PrincipalDep
) -> FeedbackResponse:
    """Rate a conversation 1-5 (the widget asks when the dialogue ends); the service log keeps the latest rating.

    With a session token the customer comes from the token; with an API key, from ``customer_id``.
    Only a conversation the customer has talked in can be rated. A rating outside 1-5, or any field
    besides ``rating`` and ``customer_id`` (comments are not taken), is a 422.
    """
    customer = principal.customer(body.customer_id)
    service.rate(conversation_id, customer, body.rating)
    return FeedbackResponse(conversation_id=conversation_id, rating=body.rating)


@router.websocket("/v1/conversations/{conversation_id}/ws")
async def conversation_socket(websocket: WebSocket, conversation_id: str) -> None:
    """Both directions on one socket: customer messages in; acks, typing, reply pieces and desk events out.

    Authenticate with ``?token=<session token>`` (or an API key plus ``&customer_id=``). Frames
    are JSON; see docs/channels.md. A refused message gets an ``error`` frame and the socket stays open.
    """
    service: KefuService = websocket.app.state.service
    state = websocket.app.state
    await websocket.accept()
    try:
        credential = websocket.query_params.get("token") or _ws_bearer(websocket)
        principal = authenticate(service, state.signer, state.key_limiter, credential)
        customer = principal.customer(websocket.query_params.get("customer_id"))
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", conversation_id):
            raise InvalidInputError("conversation_id must be 1-64 characters of letters, digits and _.:-")
        await run_in_threadpool(service.history, conversation_id, customer)  # ownership check
    except KefuError as exc:
        code = 4401 if isinstance(exc, AuthError) else 4400 + (status_of(exc) % 100)
        await websocket.send_json({"type": "error", "status": status_of(exc), "detail": str(exc)})
        await websocket.close(code=code, reason=str(exc)[:120])
        return

    async def on_frame(raw: str, send: Send) -> None:
        await _on_frame(service, state, conversation_id, principal, customer, raw, send)

    gauge = service.metrics.websockets.labels("customer")
    await relay(websocket, service.hub, conversation_topic(conversation_id), gauge, on_frame)


def _ws_bearer(websocket: WebSocket) -> str | None:
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _on_frame(
    service: KefuService,
    state: Any,
    conversation_id: str,
    principal: Principal,
    customer: str,
    raw: str,
    send: Send,
) -> None:
    """Handle one client frame; every refusal becomes an ``error`` frame."""
    message_id: str | None = None
    try:
        try:
            frame = json.loads(raw)
        except ValueError as exc:
            raise InvalidInputError("frames must be JSON objects") from exc
        if not isinstance(frame, dict) or frame.get("type") != "message":
            raise InvalidInputError('unknown frame: send {"type": "message", "text": "...", "id": "..."}')
        message_id = frame.get("id") if isinstance(frame.get("id"), str) else None
        try:
            body = MessageRequest(
                text=frame.get("text", ""),
                customer_id=customer,
                message_id=message_id,
                channel=Channel.WEB,
                lang=frame.get("lang"),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInputError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc
        await send({"type": "ack", "id": message_id})
        await send({"type": "typing"})
        response = await _turn(service, state, conversation_id, principal, body)
    except KefuError as exc:
        await send({"type": "error", "id": message_id, "status": status_of(exc), "detail": str(exc)})
        return
    if response.route == "human":
        return  # a human owns the conversation: their answer comes as a desk event
    for event in _reply_events(response, message_id):
        await send(event)
