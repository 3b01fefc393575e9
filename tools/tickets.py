"""Ticket tools: open a ticket, or hand the conversation to a human agent."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import tool

from core.context import SupportContext
from core.types import TicketKind, Tier
from tools._runtime import SupportRuntime, dumps

__all__ = ["open_ticket", "request_human"]


def _priority(runtime: SupportRuntime, base: int) -> int:
    """1 is the most urgent: VIP and gold customers move up one, and so do angry customers."""
    context: SupportContext = runtime.context
    customer = context.store.get_customer(context.customer_id)
    vip = customer is not None and customer.tier in (Tier.VIP, Tier.GOLD)
    state = runtime.state if isinstance(runtime.state, dict) else {}
    angry = state.get("emotion") == "angry"
    return max(1, base - int(vip) - int(angry))


@tool(parse_docstring=True, response_format="content_and_artifact")
def open_ticket(
    subject: str, runtime: SupportRuntime, kind: Literal["general", "complaint", "return"] = "general"
) -> tuple[str, dict[str, Any]]:
    """Open a support ticket for the customer, e.g. a complaint or a return request.

    Args:
        subject: One line saying what the ticket is about.
        kind: The kind of ticket.
    """
    context = runtime.context
    ticket = context.store.open_ticket(
        context.customer_id, context.conversation_id, TicketKind(kind), subject, _priority(runtime, 3)
    )
    artifact = ticket.model_dump(mode="json")
    return dumps(artifact), artifact


@tool(parse_docstring=True, response_format="content_and_artifact")
def request_human(reason: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:
    """Hand the conversation to a human agent, with the reason; the customer will not need to repeat anything.

    Args:
        reason: Why a human is needed, in one line.
    """
    context = runtime.context
    ticket = context.store.open_ticket(
        context.customer_id, context.conversation_id, TicketKind.HANDOFF, reason, _priority(runtime, 3)
    )
    artifact = ticket.model_dump(mode="json")
    return dumps(artifact), artifact
