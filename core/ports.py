"""Ports: the Protocols that tools and nodes depend on; adapters live elsewhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from core.types import (
    Comparison,
    ConversationId,
    Customer,
    CustomerId,
    CustomerProfile,
    Lang,
    Order,
    OrderId,
    Passage,
    Product,
    Recommendation,
    Sku,
    Ticket,
    TicketKind,
    TurnAudit,
)

__all__ = ["KnowledgePort", "PiiVaultPort", "SupportStore"]


@runtime_checkable
class SupportStore(Protocol):
    """What the agent may read and write in the shop's systems."""

    def get_customer(self, customer_id: CustomerId) -> Customer | None:
        """Return the customer, or None."""
        ...

    def get_order(self, order_id: OrderId) -> Order | None:
        """Return the order with its items, or None."""
        ...

    def list_orders(self, customer_id: CustomerId, limit: int = 5) -> list[Order]:
        """Return the customer's most recent orders, newest first."""
        ...

    def customer_profile(self, customer_id: CustomerId) -> CustomerProfile | None:
        """Return the 360° view of the customer, or None."""
        ...

    def update_contact(self, customer_id: CustomerId, *, phone: str | None, email: str | None) -> Customer:
        """Change the customer's phone number and/or e-mail address; None leaves a field as it is.

        Raises:
            NotFoundError: no such customer.
            InvalidInputError: the e-mail address is already another customer's.
        """
        ...

    def open_ticket(
        self,
        customer_id: CustomerId,
        conversation_id: ConversationId | None,
        kind: TicketKind,
        subject: str,
        priority: int,
    ) -> Ticket:
        """Open a ticket; an open ticket of the same kind for the same conversation is reused."""
        ...

    def search_products(self, query: str, limit: int = 5) -> list[Product]:
        """Return catalog entries whose names, category, features or scenarios match ``query``."""
        ...

    def list_products(self) -> list[Product]:
        """The whole catalog, ordered by SKU."""
        ...

    def product_names(self) -> list[tuple[str, str, str]]:
        """Every product as ``(sku, name_en, name_zh)``, for finding products named in a message."""
        ...

    def handoff_queue(self) -> list[Ticket]:
        """Open handoff tickets, most urgent first (priority, then age)."""
        ...

    def record_turn(self, audit: TurnAudit) -> None:
        """Append one turn to the audit trail."""
        ...

    def turn_audits(self, conversation_id: ConversationId) -> list[TurnAudit]:
        """The audit trail of a conversation, oldest first."""
        ...


@runtime_checkable
class PiiVaultPort(Protocol):
    """Where a conversation's placeholders and the real values behind them are kept (encrypted)."""

    def entries(self, conversation_id: str) -> dict[str, str]:
        """The conversation's placeholders and their real values."""
        ...

    def add(self, conversation_id: str, entries: Mapping[str, str]) -> None:
        """Store new placeholders (known ones are kept) and extend the conversation's retention."""
        ...


@runtime_checkable
class KnowledgePort(Protocol):
    """The knowledge layer as tools see it: company documents and the product graph."""

    def search(
        self,
        query: str,
        *,
        lang: Lang | None = None,
        category: str | None = None,
        product: Sku | None = None,
        limit: int = 5,
    ) -> list[Passage]:
        """Passages for ``query``, best first; filters narrow by language, category or product."""
        ...

    def recommend(
        self,
        need: str,
        *,
        lang: Lang,
        owned: Sequence[Sku] = (),
        preferred_categories: Sequence[str] = (),
        limit: int = 3,
    ) -> list[Recommendation]:
        """Products for a need, ranked, each with its graph path and confidence.

        ``owned`` (from the order history) are not recommended again; ``preferred_categories``
        (what the customer usually buys) break ties.
        """
        ...

    def compare(self, skus: Sequence[Sku], *, lang: Lang) -> Comparison:
        """Two to four products side by side.

        Raises:
            InvalidInputError: fewer than two or more than four products.
            NotFoundError: an unknown SKU.
        """
        ...
