"""Recording in the access audit: ``record_access`` for the routes that show data (``GET /v1/audit`` reads it).

Routes record a row after they have the data and before they answer; a row that cannot be written
fails the request, so nothing is shown that the audit does not know about.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from core.audit import AuditLog
from core.types import AccessAuditEntry, NextBestAction
from serving.auth import Principal
from serving.service import KefuService

__all__ = ["Auditor", "actor_of", "record_access", "record_key_access", "record_nba"]

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
