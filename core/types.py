"""Domain types shared by every layer: ids, enums and read-only views of the store."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AccessAuditEntry",
    "AgentAccount",
    "ApiKey",
    "Channel",
    "Comparison",
    "ComparisonRow",
    "Contribution",
    "ConversationId",
    "Customer",
    "CustomerId",
    "CustomerInsight",
    "CustomerProfile",
    "Handoff",
    "HandoffNote",
    "HandoffStatus",
    "Lang",
    "NextBestAction",
    "Order",
    "OrderId",
    "OrderItem",
    "OrderStatus",
    "Passage",
    "Prediction",
    "Product",
    "Recommendation",
    "SegmentInfo",
    "Sku",
    "Ticket",
    "TicketId",
    "TicketKind",
    "TicketStatus",
    "Tier",
    "TurnAudit",
]

CustomerId = NewType("CustomerId", str)
OrderId = NewType("OrderId", str)
ConversationId = NewType("ConversationId", str)
Sku = NewType("Sku", str)
TicketId = NewType("TicketId", int)


class Lang(StrEnum):
    """A language Kefu speaks."""

    ZH = "zh"
    EN = "en"


class Channel(StrEnum):
    """Where a conversation comes from."""

    WEB = "web"
    APP = "app"
    WECHAT = "wechat"
    CLI = "cli"


class Tier(StrEnum):
    """Membership tier of a customer; VIPs get priority."""

    STANDARD = "standard"
    SILVER = "silver"
    GOLD = "gold"
    VIP = "vip"


class OrderStatus(StrEnum):
    """Life cycle of an order."""

    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURN_REQUESTED = "return_requested"
    RETURNED = "returned"
    REFUNDED = "refunded"


class TicketKind(StrEnum):
    """Why a ticket was opened."""

    GENERAL = "general"
    COMPLAINT = "complaint"
    RETURN = "return"
    HANDOFF = "handoff"


class TicketStatus(StrEnum):
    """Where a ticket stands."""

    OPEN = "open"
    RESOLVED = "resolved"


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Customer(_View):
    """A customer as the agent may see them."""

    id: CustomerId
    name: str
    """Display name in the customer's own script."""
    email: str
    phone: str
    tier: Tier
    lang: Lang
    """Preferred language."""
    city: str
    created_at: datetime


class Product(_View):
    """A catalog entry, named in both languages."""

    sku: Sku
    name_en: str
    name_zh: str
    category: str
    """Category key, e.g. ``audio``."""
    price: float
    """Price in CNY."""
    stock: int
    features_en: list[str]
    features_zh: list[str]
    scenarios_en: list[str]
    """Usage scenarios the product suits."""
    scenarios_zh: list[str]


class OrderItem(_View):
    """One line of an order."""

    sku: Sku
    name_en: str
    name_zh: str
    quantity: int
    unit_price: float


class Order(_View):
    """An order with its lines and shipping facts."""

    id: OrderId
    customer_id: CustomerId
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    total: float
    carrier: str | None
    tracking_number: str | None
    estimated_delivery: datetime | None
    """Only known once shipped."""
    items: list[OrderItem]


class Ticket(_View):
    """A support ticket: a complaint, a return or a handoff to a human."""

    id: TicketId
    customer_id: CustomerId
    conversation_id: ConversationId | None
    kind: TicketKind
    status: TicketStatus
    priority: int
    """1 is the most urgent; VIPs and angry customers get lower numbers."""
    subject: str
    created_at: datetime


class CustomerProfile(_View):
    """The 360° view the agent uses: who the customer is and what they have going on."""

    customer: Customer
    lifetime_value: float
    """Sum of non-cancelled order totals, CNY."""
    order_count: int
    recent_orders: list[Order]
    open_tickets: list[Ticket]


class TurnAudit(_View):
    """How one turn was decided, for the audit trail."""

    conversation_id: ConversationId
    customer_id: CustomerId
    created_at: datetime
    intent: str
    confidence: float
    stage: str
    """``classifier``, ``llm`` or ``classifier:llm-down``."""
    thresholds: str
    decision: str
    fallback: str | None
    """Why a rule-based reply or a handoff fired, if one did."""
    emotion: str
    state: str
    events: list[str]
    tools: list[str]
    route: str
    llm_calls: int
    latency_ms: float
    channel: str | None = None
    lang: str | None = None
    question: str | None = None
    """The customer's message with placeholders for personal data, as the model saw it."""
    variant: str | None = None
    """``experiment:variant``, when the conversation is in an A/B experiment."""


class Passage(_View):
    """One retrieved chunk of a company document (FAQ, policy, manual)."""

    id: str
    """Chunk id, unique in the knowledge base: ``<source>#<n>``."""
    source: str
    """The document it came from, as ingested (a path relative to the ingest root)."""
    title: str
    """Document title and section heading."""
    text: str
    score: float
    """Hybrid relevance in [0, 1]: vector similarity and keyword (BM25) coverage combined."""
    lang: Lang
    category: str
    """``returns``, ``shipping``, ``warranty``, ``payment``, ``membership``, ``privacy``, ``product``, ..."""
    products: list[Sku] = []
    """Catalog products the passage is about, if any."""


class Recommendation(_View):
    """A product suggested for a need, with the graph path that explains it."""

    sku: Sku
    name_en: str
    name_zh: str
    price: float
    in_stock: bool
    confidence: float
    """In [0, 1]: how well the need matched the graph and how direct the path is."""
    rationale: str
    """The path read from the need to the product, in the customer's language, e.g.
    ``养宠家庭 ← SUITS ← 毛发防缠绕 ← HAS_FEATURE ← Nestia X1 扫拖一体机器人``."""
    path: list[str]
    """Graph entity ids along the rationale, need first, product last."""


class ComparisonRow(_View):
    """One attribute of a comparison, with each product's value (in request order)."""

    attribute: str
    values: list[str]


class Comparison(_View):
    """Products side by side, from the catalog and the graph."""

    skus: list[Sku]
    names: list[str]
    rows: list[ComparisonRow]
    shared_features: list[str]
    """Features every compared product has."""


class NextBestAction(_View):
    """What the shop should do next for a customer, and why."""

    customer_id: CustomerId
    action: str
    """``recommend_accessory``, ``recommend_product``, ``resolve_open_ticket``, ``retention_offer`` or ``none``."""
    product_id: Sku | None
    confidence: float
    rationale: str
    drivers: list[str] = []
    """What drove it, one item each: a feature and its contribution, a graph path, a ticket."""
    scores: dict[str, float] = {}
    """The customer's model scores that were considered (``churn_30d``, ``repurchase_3d``)."""


class Contribution(_View):
    """How much one feature pushed a prediction up or down (log-odds), for one customer."""

    feature: str
    value: float
    """The customer's value of the feature."""
    effect: float
    """Contribution to the log-odds; positive raises the score."""


class Prediction(_View):
    """A calibrated score of one model for one customer, with its top contributions."""

    target: str
    """``churn_30d`` (no order in the next 30 days) or ``repurchase_3d`` (an order in the next 3)."""
    score: float
    """Calibrated probability in [0, 1]."""
    contributions: list[Contribution]
    """The largest contributions by absolute effect, largest first."""
    model_version: str


class SegmentInfo(_View):
    """One named customer segment: how many are in it and what they look like."""

    name: str
    """A stable slug, e.g. ``champions`` or ``at_risk``; dialogue conditions name segments by it."""
    label_en: str
    label_zh: str
    size: int
    traits: dict[str, float]
    """Mean of each clustering feature (recency days, orders, spend, return rate, complaints)."""
    description: str
    """The traits in words, e.g. "bought recently, often, spends a lot"."""


class CustomerInsight(_View):
    """What the insight models know about one customer; no contact details, safe for the model."""

    customer_id: CustomerId
    at: datetime
    """When the features were computed."""
    features: dict[str, float]
    rfm: str
    """Recency, frequency and monetary quintile scores, e.g. ``R5F3M4`` (5 is best)."""
    segment: str | None
    """The segment slug, None until segments are computed."""
    churn: Prediction | None
    """None until ``kefu insights train`` has produced a model."""
    repurchase: Prediction | None


class HandoffStatus(StrEnum):
    """Where a handed-off conversation is."""

    WAITING = "waiting"
    """In the queue; the bot tells the customer a human is coming."""
    ACTIVE = "active"
    """A human agent owns it; the bot is silent."""
    RETURNED = "returned"
    """Handed back to the bot."""
    CLOSED = "closed"


class HandoffNote(_View):
    """A private note on a handoff."""

    id: int
    agent_id: str
    text: str
    created_at: datetime


class Handoff(_View):
    """A conversation the bot handed to people, with everything they need to go on without asking again."""

    id: int
    conversation_id: ConversationId
    customer_id: CustomerId
    channel: Channel
    ticket_id: TicketId | None
    status: HandoffStatus
    reason: str
    tier: Tier
    emotion: str
    packet: dict[str, Any]
    """Summary, intent and emotion history, slots, orders and knowledge looked up, confidence trail,
    redacted transcript: see ``serving.desk.context_packet``."""
    agent_id: str | None
    created_at: datetime
    taken_at: datetime | None
    ended_at: datetime | None
    notes: list[HandoffNote] = []


class AgentAccount(_View):
    """A human agent who can log into the console."""

    id: str
    name: str
    role: str
    """``agent`` or ``lead``."""
    active: bool


class ApiKey(_View):
    """A channel API key as listed: never the key itself."""

    id: str
    name: str
    channel: Channel
    created_at: datetime
    revoked_at: datetime | None


class AccessAuditEntry(_View):
    """One row of the access audit: who looked at what, or an automated decision and its reason."""

    id: int
    at: datetime
    """When, in UTC (naive, as the store keeps times)."""
    actor: str
    """``agent:<id>``, ``key:<id>``, ``session:<customer>``, ``open`` (API auth off) or ``kefu`` (automated)."""
    role: str
    """``agent``, ``lead``, ``key``, ``customer``, ``open`` or ``system``."""
    action: str
    """``view_conversation``, ``view_profile``, ``view_unredacted``, ``view_audit``, ``decision:nba``, ..."""
    target: str
    """The conversation, customer or handoff it concerns."""
    detail: str
    """What was seen (placeholder names, never their values) or why a decision was taken."""
