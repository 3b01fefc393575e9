"""SQLAlchemy tables for the CRM, the catalog, orders and tickets.

SQLite by default; PostgreSQL for several API replicas (see ``Settings.database_url``). The schema
is versioned: ``core.migrations`` holds its Alembic revisions, and ``make_engine`` applies them.
"""

from __future__ import annotations

import json
import weakref
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    Numeric,
    String,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.pool import QueuePool

from core.migrations import upgrade

__all__ = [
    "AccessAuditRow",
    "AgentRow",
    "ApiKeyRow",
    "Base",
    "ChannelIdentityRow",
    "ConversationLogRow",
    "CustomerRow",
    "HandoffNoteRow",
    "HandoffRow",
    "InboundMessageRow",
    "OrderItemRow",
    "OrderRow",
    "ProductRow",
    "TicketRow",
    "TurnAuditRow",
    "VaultEntryRow",
    "VaultMetaRow",
    "make_engine",
]


class Base(DeclarativeBase):
    """Declarative base of Kefu's tables."""


class CustomerRow(Base):
    """A customer of the shop."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(120), unique=True)
    phone: Mapped[str] = mapped_column(String(32))
    tier: Mapped[str] = mapped_column(String(16), index=True)
    lang: Mapped[str] = mapped_column(String(4))
    city: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    orders: Mapped[list[OrderRow]] = relationship(back_populates="customer")


class ProductRow(Base):
    """A catalog entry with bilingual features and usage scenarios."""

    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(24), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(32), index=True)
    price: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))
    stock: Mapped[int] = mapped_column(Integer)
    features_en: Mapped[list[str]] = mapped_column(JSON)
    features_zh: Mapped[list[str]] = mapped_column(JSON)
    scenarios_en: Mapped[list[str]] = mapped_column(JSON)
    scenarios_zh: Mapped[list[str]] = mapped_column(JSON)


class OrderRow(Base):
    """An order placed by a customer."""

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    total: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))
    carrier: Mapped[str | None] = mapped_column(String(32))
    tracking_number: Mapped[str | None] = mapped_column(String(32))
    estimated_delivery: Mapped[datetime | None] = mapped_column(DateTime)

    customer: Mapped[CustomerRow] = relationship(back_populates="orders")
    items: Mapped[list[OrderItemRow]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItemRow.id"
    )


class OrderItemRow(Base):
    """One line of an order."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))

    order: Mapped[OrderRow] = relationship(back_populates="items")
    product: Mapped[ProductRow] = relationship()


class TicketRow(Base):
    """A support ticket."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class TurnAuditRow(Base):
    """How one turn was decided: intent, confidence, stage, thresholds and why a fallback fired."""

    __tablename__ = "turn_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    intent: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Numeric(6, 4, asdecimal=False))
    stage: Mapped[str] = mapped_column(String(32))
    thresholds: Mapped[str] = mapped_column(String(120))
    decision: Mapped[str] = mapped_column(String(500))
    """Why the stage decided as it did."""
    fallback: Mapped[str | None] = mapped_column(String(200))
    """Why a rule-based reply or a handoff fired, if one did."""
    emotion: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    events: Mapped[list[str]] = mapped_column(JSON)
    tools: Mapped[list[str]] = mapped_column(JSON)
    route: Mapped[str] = mapped_column(String(8))
    llm_calls: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Numeric(10, 1, asdecimal=False))
    channel: Mapped[str | None] = mapped_column(String(16), default=None)
    question: Mapped[str | None] = mapped_column(String(4000), default=None)
    """The customer's message as the model saw it (placeholders, never raw PII); cleared after the
    conversation retention, while the decision itself is kept for the audit retention."""
    variant: Mapped[str | None] = mapped_column(String(80), default=None)
    """``experiment:variant`` the conversation was assigned to, if an experiment was running."""


class VaultEntryRow(Base):
    """One placeholder of a conversation and its real value, encrypted (see ``core.vault``)."""

    __tablename__ = "pii_vault"

    conversation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    placeholder: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[bytes] = mapped_column(LargeBinary)
    """Fernet token of the value: AES-128-CBC with an HMAC-SHA256, keyed from settings."""
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    """The conversation's last activity plus the retention period."""


class VaultMetaRow(Base):
    """Facts about the vault itself: which key sealed it (a check token and a key fingerprint)."""

    __tablename__ = "pii_vault_meta"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class HandoffRow(Base):
    """A conversation handed to the human desk, with the context packet the agent reads first."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(16), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``waiting`` (in the queue), ``active`` (a human owns it), ``returned`` (to the bot) or ``closed``."""
    reason: Mapped[str] = mapped_column(String(300))
    tier: Mapped[str] = mapped_column(String(16))
    emotion: Mapped[str] = mapped_column(String(16))
    packet: Mapped[dict[str, Any]] = mapped_column(JSON)
    agent_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class HandoffNoteRow(Base):
    """A private note a human agent wrote on a handoff; the customer never sees it."""

    __tablename__ = "handoff_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id"), index=True)
    agent_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AgentRow(Base):
    """A human agent's console account."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """The login name."""
    name: Mapped[str] = mapped_column(String(80))
    """What the customer sees when this agent joins."""
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    """``scrypt$n$r$p$salt$hash``, never the password."""
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ApiKeyRow(Base):
    """A channel API key; only its SHA-256 is stored, the key is shown once when created."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    """The public part of the key (``kf_<id>_<secret>``), for listing and revoking."""
    name: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class ChannelIdentityRow(Base):
    """Which customer an outside identity (a WeChat openid) is."""

    __tablename__ = "channel_identities"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class InboundMessageRow(Base):
    """A customer message already answered, by the id its channel gave it: a retry gets the same answer."""

    __tablename__ = "inbound_messages"

    conversation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ConversationLogRow(Base):
    """One conversation as the service log keeps it for analytics: no text, no personal data.

    Updated after every turn; kept for ``Settings.analytics_retention_days``, longer than the
    conversation itself, because segments, churn models and the dashboard read history.
    """

    __tablename__ = "conversation_log"

    conversation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(16), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    lang: Mapped[str] = mapped_column(String(4))
    started_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    intents: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    """How many turns had each intent."""
    negative_turns: Mapped[int] = mapped_column(Integer, default=0)
    """Turns whose emotion was dissatisfied or angry."""
    fallback_turns: Mapped[int] = mapped_column(Integer, default=0)
    """Turns answered by a rule-based fallback (low confidence, LLM down, loop-breaker)."""
    handoff_reason: Mapped[str | None] = mapped_column(String(300), default=None)
    """Why it went to a human; None if the bot handled it alone (contained)."""
    reached_close_deal: Mapped[bool] = mapped_column(default=False)
    """The dialogue reached ``close_deal``: the customer showed a buying signal (a conversion)."""
    satisfaction: Mapped[int | None] = mapped_column(Integer, default=None)
    """The customer's rating, 1 (bad) to 5 (good), if they gave one."""
    variant: Mapped[str | None] = mapped_column(String(80), default=None, index=True)
    """``experiment:variant`` of an A/B experiment, if one was running."""
    seeded: Mapped[bool] = mapped_column(default=False)
    """Written by the demo generator, not by a real conversation."""


class AccessAuditRow(Base):
    """Who looked at what, and every automated decision that is not a dialogue turn.

    Kept for ``Settings.audit_retention_days``; queryable with ``GET /v1/audit`` and ``kefu audit``.
    """

    __tablename__ = "access_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    """``agent:<id>``, ``key:<id>``, ``session:<customer>`` or ``kefu`` for automated decisions."""
    role: Mapped[str] = mapped_column(String(16))
    """``agent``, ``lead``, ``key``, ``customer`` or ``system``."""
    action: Mapped[str] = mapped_column(String(40), index=True)
    """E.g. ``view_conversation``, ``view_unredacted``, ``view_profile``, ``export``, ``decision:nba``."""
    target: Mapped[str] = mapped_column(String(80), index=True)
    """What was looked at or decided about: a conversation, customer or handoff id."""
    detail: Mapped[str] = mapped_column(String(1000), default="")
    """The reason of an automated decision, or what was seen (never the values themselves)."""


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, migrate: bool = True) -> Engine:
    """Create an engine for ``url`` and bring its database to the newest schema (``core.migrations``).

    SQLite gets WAL journaling and foreign keys, so the API and the CLI can share the file.
    PostgreSQL (``postgresql+psycopg://``; a bare ``postgresql://`` or ``postgres://`` means the
    same) gets a pool of ``pool_size`` connections, ``max_overflow`` more at peaks, each checked
    before use so a restarted server costs no failed request; sessions run in UTC.

    Args:
        url: A SQLAlchemy database URL.
        pool_size: Connections kept open to a database server.
        max_overflow: Connections opened beyond ``pool_size`` at peaks and closed when returned.
        migrate: Apply the schema migrations; False only looks (``kefu db current``).
    """
    # Chinese stays readable in JSON columns, so LIKE searches over features and scenarios match it.
    kwargs: dict[str, Any] = {"json_serializer": lambda value: json.dumps(value, ensure_ascii=False)}
    target = make_url(url)
    if target.drivername in ("postgres", "postgresql"):
        target = target.set(drivername="postgresql+psycopg")
    if target.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif target.get_backend_name() == "postgresql":
        kwargs |= {
            "poolclass": QueuePool,
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "pool_pre_ping": True,
            # The store keeps naive UTC times; a UTC session reads any aware one the same way.
            "connect_args": {"options": "-c timezone=UTC"},
        }
    engine = create_engine(target, **kwargs)
    if target.get_backend_name() == "postgresql":
        _close_when_collected(engine)
    if target.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    if migrate:
        upgrade(engine)
    return engine


def _close_when_collected(engine: Engine) -> None:
    """Close the engine's idle connections when it is garbage-collected without ``dispose()``.

    Otherwise they stay open until the server times them out, and psycopg warns about each. The
    finalizer holds the current pool, never the engine (``dispose`` swaps the pool for a new one).
    """
    current = [engine.pool]

    @event.listens_for(engine, "engine_disposed")
    def _swapped(disposed: Engine) -> None:
        current[0] = disposed.pool

    weakref.finalize(engine, lambda: current[0].dispose())
