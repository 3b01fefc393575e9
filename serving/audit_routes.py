"""``GET /v1/audit``: the access audit for a lead's console login or an API key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from core.audit import MAX_QUERY_LIMIT, AuditLog
from core.errors import ForbiddenError
from serving.api import authenticate, bearer
from serving.audit import Auditor, actor_of, record_access
from serving.console import COOKIE, agent_from
from serving.service import KefuService

__all__ = ["AccessRecord", "router"]


def _reader(request: Request) -> Auditor:
    """A lead's console login, or an API key (an explicit credential wins over the ambient cookie).

    Raises:
        AuthError: no credential, or a wrong one.
        ForbiddenError: an agent who is not a lead, or a customer session token.
    """
    state = request.app.state
    service: KefuService = state.service
    credential = bearer(request)
    token = request.cookies.get(COOKIE)
    if credential is None and token:
        agent = agent_from(service, state.signer, token)
        if agent.role != "lead":
            raise ForbiddenError("the access audit is for leads: ask an admin to run `kefu agents add --role lead`")
        return Auditor(f"agent:{agent.id}", agent.role)
    principal = authenticate(service, state.signer, state.key_limiter, credential)
    if principal.kind == "session":
        raise ForbiddenError("the access audit needs an API key or a lead's console login, not a session token")
    return actor_of(principal)


ReaderDep = Annotated[Auditor, Depends(_reader)]


class AccessRecord(BaseModel):
    """One access-audit row."""

    id: int
    at: datetime
    """UTC."""
    actor: str
    """``agent:<id>``, ``key:<id>``, ``session:<customer>``, ``open`` (API auth off) or ``kefu`` (automated)."""
    role: str
    """``agent``, ``lead``, ``key``, ``customer``, ``open`` or ``system``."""
    action: str
    """``view_conversation``, ``view_profile``, ``view_unredacted``, ``view_audit``, ``decision:nba``, ..."""
    target: str
    """The conversation, customer or handoff concerned."""
    detail: str
    """The placeholders revealed (never their values) or a decision's reason."""


router = APIRouter(tags=["audit"])

_Filter = Query(max_length=81, description="Exact match, or a prefix ending in `*` (e.g. `agent:*`).")


@router.get(
    "/v1/audit",
    response_model=list[AccessRecord],
    responses={
        401: {"description": "no credential, or a wrong one"},
        403: {"description": "an agent who is not a lead, or a customer session token"},
        422: {"description": "a filter out of range (limit above 1000, since after until)"},
    },
)
def access_audit(
    request: Request,
    reader: ReaderDep,
    actor: Annotated[str | None, _Filter] = None,
    action: Annotated[str | None, _Filter] = None,
    target: Annotated[str | None, _Filter] = None,
    since: Annotated[datetime | None, Query(description="ISO time; without a zone it is UTC.")] = None,
    until: Annotated[datetime | None, Query(description="ISO time, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_QUERY_LIMIT)] = 100,
) -> list[AccessRecord]:
    """Who viewed which conversation or profile, who saw unredacted values, and automated decisions; newest first.

    For a lead's console login or an API key. Reading the audit is itself recorded (``view_audit``).
    """
    service: KefuService = request.app.state.service
    entries = AuditLog(service.store.engine).query(
        actor=actor, action=action, target=target, since=since, until=until, limit=limit
    )
    filters = {"actor": actor, "action": action, "target": target, "since": since, "until": until}
    shown = " ".join(f"{key}={value}" for key, value in filters.items() if value is not None)
    record_access(
        service, actor=reader.actor, role=reader.role, action="view_audit", target="access_audit", detail=shown
    )
    return [AccessRecord(**{**entry.model_dump(), "at": entry.at.replace(tzinfo=UTC)}) for entry in entries]
