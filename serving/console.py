"""The human agents' console API: login, queue, packets, take over, reply, notes, hand back, close.

A WebSocket carries the live queue and the customers' messages.

Agents log in with their own account (``kefu agents add``); the login is an HttpOnly,
SameSite=Strict cookie signed with the app's secret, so other sites can neither read nor use it.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, WebSocket
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from core.errors import AuthError, ForbiddenError, InvalidInputError, KefuError
from core.types import AgentAccount
from serving.api import ServiceDep
from serving.audit import record_access
from serving.auth import check_password
from serving.desk import queue_item
from serving.errors import status_of
from serving.hub import CONSOLE
from serving.service import KefuService
from serving.sockets import Send, relay

__all__ = ["COOKIE", "AgentDep", "LeadDep", "agent_from", "router"]

log = logging.getLogger(__name__)

COOKIE = "kefu_console"

router = APIRouter(
    prefix="/v1/console",
    tags=["console"],
    responses={
        400: {"description": "a body that is not valid JSON"},
        401: {"description": "not logged in"},
        422: {"description": "invalid input"},
        429: {"description": "too many login attempts; see Retry-After"},
    },
)


def agent_from(service: KefuService, signer: Any, token: str | None) -> AgentAccount:
    """The active agent a console login cookie names.

    Raises:
        AuthError: no cookie, a forged or expired one, or a disabled account.
    """
    if not token:
        raise AuthError("not logged in")
    agent = service.desk.get_agent(signer.console_agent(token))
    if agent is None or not agent.active:
        raise AuthError("this account is disabled")
    return agent


def _agent(request: Request, service: ServiceDep) -> AgentAccount:
    return agent_from(service, request.app.state.signer, request.cookies.get(COOKIE))


AgentDep = Annotated[AgentAccount, Depends(_agent)]


def _lead(agent: AgentDep) -> AgentAccount:
    if agent.role != "lead":
        raise ForbiddenError("this page is for leads: ask an admin to run `kefu agents add --role lead`")
    return agent


LeadDep = Annotated[AgentAccount, Depends(_lead)]
"""A logged-in console account with the role ``lead`` (403 for other agents)."""
_MAX_ID = 2**63 - 1
HandoffIdPath = Annotated[int, Path(ge=1, le=_MAX_ID, description="The handoff's id (from the queue).")]


class Login(BaseModel):
    """An agent's credentials."""

    username: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=1, max_length=200)

    model_config = {"json_schema_extra": {"examples": [{"username": "lin", "password": "correct horse battery"}]}}


class AgentOut(BaseModel):
    """The logged-in agent."""

    id: str
    name: str
    role: str


class Text(BaseModel):
    """A reply or a note."""

    text: str = Field(min_length=1, max_length=2000)


class QueueItem(BaseModel):
    """One open handoff in the queue."""

    id: int
    conversation_id: str
    customer_id: str
    channel: str
    status: str
    reason: str
    tier: str
    emotion: str
    priority: int
    """Higher is more urgent: tier, emotion and minutes waited."""
    waiting_s: float
    agent_id: str | None
    summary: str


class HandoffDetail(QueueItem):
    """A handoff with its context packet, notes and live transcript (redacted)."""

    packet: dict[str, Any]
    notes: list[dict[str, Any]]
    transcript: list[dict[str, str]]


@router.post("/login", response_model=AgentOut, responses={401: {"description": "wrong user name or password"}})
def login(body: Login, request: Request, response: Response, service: ServiceDep) -> AgentOut:
    """Log in; sets the console cookie."""
    request.app.state.login_limiter.hit(f"login:{body.username}")
    agent = check_password(service.desk, body.username, body.password)
    response.set_cookie(
        COOKIE,
        request.app.state.signer.console(agent.id),
        max_age=service.settings.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    log.info("agent logged in", extra={"agent_id": agent.id})
    return AgentOut(id=agent.id, name=agent.name, role=agent.role)


@router.post("/logout", status_code=204)
def logout(response: Response) -> Response:
    """Log out (drops the cookie)."""
    response.delete_cookie(COOKIE, path="/")
    response.status_code = 204
    return response


@router.get("/me", response_model=AgentOut, responses={401: {"description": "not logged in"}})
def me(agent: AgentDep) -> AgentOut:
    """Who is logged in."""
    return AgentOut(id=agent.id, name=agent.name, role=agent.role)


@router.get("/queue", response_model=list[QueueItem], responses={401: {"description": "not logged in"}})
def queue(agent: AgentDep, service: ServiceDep) -> list[dict[str, Any]]:
    """Open handoffs: waiting ones first, most urgent first."""
    return service.human_desk.queue()


@router.get("/handoffs/{handoff_id}", response_model=HandoffDetail, responses={401: {}, 404: {}})
def handoff(handoff_id: HandoffIdPath, agent: AgentDep, service: ServiceDep) -> dict[str, Any]:
    """One handoff: context packet, private notes, and the live (redacted) transcript; each view is audited."""
    detail = service.human_desk.detail(handoff_id)
    record_access(
        service,
        actor=f"agent:{agent.id}",
        role=agent.role,
        action="view_conversation",
        target=detail["conversation_id"],
        detail=f"handoff {handoff_id}",
    )
    return detail


class Revealed(BaseModel):
    """A placeholder of the redacted transcript and the personal data behind it."""

    placeholder: str
    """As the transcript shows it, e.g. ``<CN_MOBILE_1>``."""
    value: str


class Unredacted(BaseModel):
    """The personal data of a handoff's conversation (leads only; every view is audited)."""

    id: int
    conversation_id: str
    values: list[Revealed]
    """Placeholder order; values past the vault's retention are gone."""


@router.get(
    "/handoffs/{handoff_id}/unredacted",
    response_model=Unredacted,
    responses={401: {}, 403: {"description": "not a lead"}, 404: {}},
)
def unredacted(handoff_id: HandoffIdPath, lead: LeadDep, service: ServiceDep, response: Response) -> dict[str, Any]:
    """The real values behind the conversation's placeholders, for leads; audited (``view_unredacted``).

    The audit row names the placeholders revealed, never their values.
    """
    shown = service.human_desk.personal_data(handoff_id)
    names = ", ".join(item["placeholder"] for item in shown["values"]) or "none"
    record_access(
        service,
        actor=f"agent:{lead.id}",
        role=lead.role,
        action="view_unredacted",
        target=shown["conversation_id"],
        detail=f"handoff {handoff_id}: {names}",
    )
    response.headers["Cache-Control"] = "no-store"
    return shown


@router.post(
    "/handoffs/next", response_model=QueueItem, responses={401: {}, 404: {"description": "no handoff is waiting"}}
)
def take_next(agent: AgentDep, service: ServiceDep) -> dict[str, Any]:
    """Take over the most urgent waiting handoff (the queue's order); two agents never get the same one."""
    return queue_item(service.cluster.handoffs.take_next(service.human_desk, agent))


@router.post("/handoffs/{handoff_id}/take", response_model=QueueItem, responses={401: {}, 404: {}, 409: {}})
def take(handoff_id: HandoffIdPath, agent: AgentDep, service: ServiceDep) -> dict[str, Any]:
    """Take the conversation over: the bot goes silent and the customer is told a human joined."""
    return queue_item(service.human_desk.take(handoff_id, agent))


@router.post("/handoffs/{handoff_id}/release", response_model=QueueItem, responses={401: {}, 404: {}, 409: {}})
def release(handoff_id: HandoffIdPath, agent: AgentDep, service: ServiceDep) -> dict[str, Any]:
    """Hand the conversation back to the bot."""
    return queue_item(service.human_desk.release(handoff_id, agent))


@router.post("/handoffs/{handoff_id}/close", response_model=QueueItem, responses={401: {}, 404: {}, 409: {}})
def close(handoff_id: HandoffIdPath, agent: AgentDep, service: ServiceDep) -> dict[str, Any]:
    """Close the conversation."""
    return queue_item(service.human_desk.close(handoff_id, agent))


@router.post("/handoffs/{handoff_id}/messages", status_code=204, responses={401: {}, 403: {}, 404: {}, 409: {}})
def reply(handoff_id: HandoffIdPath, body: Text, agent: AgentDep, service: ServiceDep) -> Response:
    """Reply to the customer (the agent must own the conversation)."""
    service.human_desk.reply(handoff_id, agent, body.text)
    return Response(status_code=204)


@router.post("/handoffs/{handoff_id}/notes", responses={401: {}, 404: {}})
def note(handoff_id: HandoffIdPath, body: Text, agent: AgentDep, service: ServiceDep) -> dict[str, Any]:
    """Add a private note; the customer never sees it."""
    return service.human_desk.note(handoff_id, agent, body.text).model_dump(mode="json")


@router.websocket("/ws")
async def console_socket(websocket: WebSocket) -> None:
    """The live queue (``queue``), customer messages (``customer_message``), agents' replies and notes.

    Send ``{"type": "reply", "handoff_id": 1, "text": "..."}`` to answer a customer.
    """
    service: KefuService = websocket.app.state.service
    await websocket.accept()
    try:
        agent = agent_from(service, websocket.app.state.signer, websocket.cookies.get(COOKIE))
    except KefuError as exc:
        await websocket.send_json({"type": "error", "status": status_of(exc), "detail": str(exc)})
        await websocket.close(code=4401, reason=str(exc)[:120])
        return

    async def opening(send: Send) -> None:
        await send({"type": "queue", "items": await run_in_threadpool(service.human_desk.queue)})

    async def on_frame(raw: str, send: Send) -> None:
        try:
            frame = json.loads(raw)
            if not isinstance(frame, dict) or frame.get("type") != "reply":
                raise InvalidInputError('unknown frame: send {"type": "reply", "handoff_id": 1, "text": "..."}')
            handoff_id, text = frame.get("handoff_id"), frame.get("text")
            if not isinstance(handoff_id, int) or not 1 <= handoff_id <= _MAX_ID:
                raise InvalidInputError("a reply needs an integer handoff_id")
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError("a reply needs a non-empty text")
            await run_in_threadpool(service.human_desk.reply, handoff_id, agent, text[:2000])
        except ValueError:
            await send({"type": "error", "status": 400, "detail": "frames must be JSON objects"})
        except KefuError as exc:
            await send({"type": "error", "status": status_of(exc), "detail": str(exc)})

    gauge = service.metrics.websockets.labels("console")
    await relay(websocket, service.hub, CONSOLE, gauge, on_frame, opening=opening)
