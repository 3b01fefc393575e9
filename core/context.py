"""The typed context every node and tool receives: who the session's customer is, and the ports.

It is never shown to the model; a tool can only see the customer the session authenticated.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.ports import KnowledgePort, PiiVaultPort, SupportStore
from core.types import Channel, ConversationId, CustomerId, CustomerInsight, Lang

__all__ = ["SupportContext"]


@dataclass(frozen=True)
class SupportContext:
    """Run-scoped dependencies of one turn."""

    customer_id: CustomerId
    """The customer the channel authenticated; tools act for this customer only."""
    conversation_id: ConversationId
    channel: Channel
    store: SupportStore
    lang: Lang | None = None
    """Language the client asked for; None lets Kefu detect it per message."""
    vault: PiiVaultPort | None = None
    """The conversation's placeholders; the graph refuses to run without one, tools never need it."""
    knowledge: KnowledgePort | None = None
    """Documents and the product graph; None when the knowledge base is not loaded (tools say so)."""
    insight: CustomerInsight | None = None
    """The customer's segment and model scores (no contact details), for conditions and the profile tool."""
    variant: str | None = None
    """``experiment:variant`` this customer is assigned to, when an A/B experiment runs."""
