"""Ticket tools: open a ticket, or hand the conversation to a human agent."""

from __future__ import annotations

import re
from typing import Any, Literal

from langchain_core.tools import tool

from core.context import SupportContext
from core.types import OrderId, TicketKind, Tier
from tools._runtime import SupportRuntime, dumps
from tools.errors import ToolError

__all__ = ["open_ticket", "request_human"]


_ORDER_ID = re.compile(r"(?<![A-Za-z0-9])KF[0-9]{6}(?![A-Za-z0-9])", re.IGNORECASE)


def _own_orders_only(runtime: SupportRuntime, text: str) -> None:
    """A ticket may name only this customer's orders: another customer's order number never lands on it."""
    context: SupportContext = runtime.context
    for number in dict.fromkeys(m.upper() for m in _ORDER_ID.findall(text)):
        order = context.store.get_order(OrderId(number))
        if order is None or order.customer_id != context.customer_id:
            raise ToolError(
                f"No order {number} on this customer's account; do not open a ticket about it. "
                "Ask the customer to check the order number."
            )


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
    _own_orders_only(runtime, subject)
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
