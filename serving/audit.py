"""The access audit over HTTP: ``record_access`` for the routes that show data, and ``GET /v1/audit``.

Routes record a row after they have the data and before they answer; a row that cannot be written
fails the request, so nothing is shown that the audit does not know about.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, NamedTuple

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from core.audit import MAX_QUERY_LIMIT, AuditLog
from core.errors import AuthError, ForbiddenError
from core.types import AccessAuditEntry, NextBestAction
from serving.auth import Principal
from serving.service import KefuService

__all__ = ["AccessRecord", "Auditor", "actor_of", "record_access", "record_key_access", "record_nba", "router"]

log = logging.getLogger(__name__)


class Auditor(NamedTuple):
    """Who is reading or acting, as the audit names them."""

    actor: str
    role: str


def record_access(
    service: KefuService, *, actor: str, role: str, action: str, target: str, detail: str = ""
) -> AccessAuditEntry:
    """Append one row to the access audit (see ``core.audit.AuditLog.record``).

    Raises:
        InvalidInputError: an empty or over-long actor, role, action or target.
    """
    entry = AuditLog(service.store.engine).record(actor, role, action, target, detail)
    log.info("access audited", extra={"actor": actor, "action": action, "target": target})
    return entry


def actor_of(principal: Principal) -> Auditor:
    """How the audit names an API caller: ``key:<id>``, ``session:<customer>``, or ``open`` with auth off."""
    if principal.kind == "key":
        return Auditor(f"key:{principal.subject}", "key")
    if principal.kind == "session":
        return Auditor(principal.subject, "customer")
    return Auditor("open", "open")


def record_key_access(
    service: KefuService, principal: Principal, *, action: str, target: str, detail: str = ""
) -> None:
    """Record a read by an API key; a customer session reading its own data, or open access, is not recorded."""
    if principal.kind == "key":
        actor = actor_of(principal)
        record_access(service, actor=actor.actor, role=actor.role, action=action, target=target, detail=detail)


def record_nba(service: KefuService, decision: NextBestAction, principal: Principal) -> None:
    """Record a next-best-action decision (``decision:nba`` by ``kefu``): the action, who asked, and why."""
    product = f" {decision.product_id}" if decision.product_id else ""
    drivers = f" Drivers: {'; '.join(decision.drivers)}." if decision.drivers else ""
    detail = (
        f"{decision.action}{product} (confidence {decision.confidence:.2f}) for {actor_of(principal).actor}: "
        f"{decision.rationale}{drivers}"
    )
    record_access(
        service, actor="kefu", role="system", action="decision:nba", target=decision.customer_id, detail=detail
    )


def _credential(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-kefu-key") or None


def _reader(request: Request) -> Auditor:
    """A lead's console login, or an API key (an explicit credential wins over the ambient cookie).

    Raises:
        AuthError: no credential, or a wrong one.
        ForbiddenError: an agent who is not a lead, or a customer session token.
    """
    # Imported here: serving.api and serving.console record through this module.
    from serving.api import authenticate
    from serving.console import COOKIE

    state = request.app.state
    service: KefuService = state.service
    credential = _credential(request)
    token = request.cookies.get(COOKIE)
    if credential is None and token:
        agent = service.desk.get_agent(state.signer.console_agent(token))
        if agent is None or not agent.active:
            raise AuthError("this account is disabled")
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
