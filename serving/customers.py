"""``GET /v1/customers/{customer_id}/profile``: the customer 360° view, one read at a time, each audited.

Joins the CRM record, the orders, the open tickets, the text-free conversation log and the insight
models' features, segment and scores. An API key may read any customer; a customer session token
only its own customer (another id is 403 and names nothing of theirs). Contact details (e-mail,
phone) are for API keys only.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.db import ConversationLogRow
from core.errors import ForbiddenError, NotFoundError
from core.types import CustomerId, CustomerInsight, CustomerProfile, Order, Prediction, Ticket
from serving.api import AUTH_RESPONSES, PrincipalDep, ServiceDep
from serving.audit import actor_of, record_access
from serving.service import KefuService

__all__ = ["CustomerProfileOut", "conversation_summary", "router"]

log = logging.getLogger(__name__)

NOT_TRAINED = "not trained: run kefu insights train"
_LAST_ORDERS = 5
_RECENT_CONVERSATIONS = 5
_TOP_CONTRIBUTIONS = 5

CustomerIdPath = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class CustomerCard(BaseModel):
    """Who the customer is; contact details only for API keys."""

    id: str
    name: str
    tier: str
    lang: str
    city: str
    since: datetime
    """When they became a customer."""
    email: str | None
    """Only for API keys; null for a customer session."""
    phone: str | None
    """Only for API keys; null for a customer session."""


class OrderLine(BaseModel):
    """One recent order."""

    id: str
    status: str
    created_at: datetime
    total: float
    items: list[str]
    """``<quantity> x <sku>`` per line."""


class OrdersSummary(BaseModel):
    """Their orders in short."""

    count: int
    lifetime_value: float
    """CNY, cancelled, refunded and returned orders left out."""
    last_orders: list[OrderLine]
    """Newest first, at most five."""


class TicketLine(BaseModel):
    """One open ticket."""

    id: int
    kind: str
    priority: int
    subject: str
    """As stored: personal data in it is a placeholder."""
    created_at: datetime
    conversation_id: str | None


class ContributionOut(BaseModel):
    """How much one feature moved the score (log-odds; positive raises it)."""

    feature: str
    value: float
    effect: float


class ScoreOut(BaseModel):
    """A calibrated model score with its largest contributions."""

    score: float
    """Probability in [0, 1]."""
    model_version: str
    top_contributions: list[ContributionOut]
    """At most five, largest effect first."""


class ConversationLine(BaseModel):
    """One recent conversation, without its text."""

    conversation_id: str
    channel: str
    started_at: datetime
    turns: int
    handoff_reason: str | None
    """Null when the bot handled it alone."""
    satisfaction: int | None


class ConversationsSummary(BaseModel):
    """Their conversations from the service log: no text, no personal data."""

    count: int
    turns: int
    intents: dict[str, int]
    """Turns per intent, most frequent first."""
    negative_turns: int
    """Turns whose emotion was dissatisfied or angry."""
    fallback_turns: int
    handoffs: int
    handoff_reasons: dict[str, int]
    conversions: int
    """Conversations that reached ``close_deal``."""
    mean_satisfaction: float | None
    """Of the rated conversations (1-5); null if none was rated."""
    rated: int
    channels: dict[str, int]
    last_at: datetime | None
    recent: list[ConversationLine]
    """Newest first, at most five."""


class CustomerProfileOut(BaseModel):
    """The 360° view of one customer."""

    customer: CustomerCard
    features: dict[str, float] | None
    """Recency, frequency, monetary value, return rate, complaints, channel mix, ...; null without insights."""
    rfm: str | None
    """Recency, frequency and monetary quintiles, e.g. ``R5F3M4`` (5 is best)."""
    segment: str | None
    churn: ScoreOut | None
    """Chance of no order in the next 30 days; null until the models are trained."""
    repurchase: ScoreOut | None
    """Chance of an order in the next 3 days; null until the models are trained."""
    models: str
    """``trained``, or why the scores are missing (``not trained: run kefu insights train``)."""
    insight_at: datetime | None
    """When the features were computed."""
    orders: OrdersSummary
    open_tickets: list[TicketLine]
    conversations: ConversationsSummary


router = APIRouter(tags=["customers"])


@router.get("/v1/customers/{customer_id}/profile", response_model=CustomerProfileOut, responses=AUTH_RESPONSES)
def customer_profile(customer_id: CustomerIdPath, service: ServiceDep, principal: PrincipalDep) -> CustomerProfileOut:
    """The customer's 360° profile: who, orders, open tickets, conversations, features, segment, scores.

    An API key may read any customer; a session token only its own. Each read is audited (``view_profile``).
    """
    if principal.customer_id is not None and principal.customer_id != customer_id:
        raise ForbiddenError("a session token may read only its own customer's profile")
    profile = service.store.customer_profile(CustomerId(customer_id))
    if profile is None:
        raise NotFoundError(f"unknown customer {customer_id!r}")
    insight, models = _insight(service, profile.customer.id)
    out = CustomerProfileOut(
        customer=_card(profile, contact=principal.kind != "session"),
        features=dict(insight.features) if insight is not None else None,
        rfm=insight.rfm if insight is not None else None,
        segment=insight.segment if insight is not None else None,
        churn=_score(insight.churn) if insight is not None else None,
        repurchase=_score(insight.repurchase) if insight is not None else None,
        models=models,
        insight_at=insight.at if insight is not None else None,
        orders=OrdersSummary(
            count=profile.order_count,
            lifetime_value=profile.lifetime_value,
            last_orders=[_order(o) for o in service.store.list_orders(profile.customer.id, limit=_LAST_ORDERS)],
        ),
        open_tickets=[_ticket(ticket) for ticket in profile.open_tickets],
        conversations=conversation_summary(service.store.engine, profile.customer.id),
    )
    actor = actor_of(principal)
    record_access(service, actor=actor.actor, role=actor.role, action="view_profile", target=customer_id)
    return out


def _insight(service: KefuService, customer_id: CustomerId) -> tuple[CustomerInsight | None, str]:
    """The insight models' view of the customer, and the ``models`` note."""
    if service.insights is None:
        return None, NOT_TRAINED
    try:
        insight = service.insights.customer_insight(customer_id)
    except Exception:  # broken model files must not take the rest of the profile down; the log says why
        log.exception("customer insight failed", extra={"customer_id": customer_id})
        return None, "unavailable: the insight models failed, see the server log"
    scores = {"churn_30d": insight.churn, "repurchase_3d": insight.repurchase} if insight is not None else {}
    missing = [target for target, prediction in scores.items() if prediction is None]
    if insight is None or any(target not in service.insights.models for target in missing):
        return insight, NOT_TRAINED
    if missing:
        return insight, "trained; no score for this customer: the models score customers with an order"
    return insight, "trained"


def _card(profile: CustomerProfile, *, contact: bool) -> CustomerCard:
    customer = profile.customer
    return CustomerCard(
        id=customer.id,
        name=customer.name,
        tier=customer.tier.value,
        lang=customer.lang.value,
        city=customer.city,
        since=customer.created_at,
        email=customer.email if contact else None,
        phone=customer.phone if contact else None,
    )


def _order(order: Order) -> OrderLine:
    return OrderLine(
        id=order.id,
        status=order.status.value,
        created_at=order.created_at,
        total=order.total,
        items=[f"{item.quantity} x {item.sku}" for item in order.items],
    )


def _ticket(ticket: Ticket) -> TicketLine:
    return TicketLine(
        id=ticket.id,
        kind=ticket.kind.value,
        priority=ticket.priority,
        subject=ticket.subject,
        created_at=ticket.created_at,
        conversation_id=ticket.conversation_id,
    )


def _score(prediction: Prediction | None) -> ScoreOut | None:
    if prediction is None:
        return None
    return ScoreOut(
        score=prediction.score,
        model_version=prediction.model_version,
        top_contributions=[
            ContributionOut(feature=c.feature, value=c.value, effect=c.effect)
            for c in prediction.contributions[:_TOP_CONTRIBUTIONS]
        ],
    )


def conversation_summary(engine: Engine, customer_id: CustomerId) -> ConversationsSummary:
    """A customer's conversations from the text-free service log (``conversation_log``)."""
    query = (
        select(ConversationLogRow)
        .where(ConversationLogRow.customer_id == customer_id)
        .order_by(ConversationLogRow.last_at.desc(), ConversationLogRow.conversation_id)
    )
    with Session(engine) as session:
        rows = list(session.scalars(query))
    intents: Counter[str] = Counter()
    for row in rows:
        intents.update(row.intents or {})
    ratings = [row.satisfaction for row in rows if row.satisfaction is not None]
    reasons = Counter(row.handoff_reason for row in rows if row.handoff_reason is not None)
    return ConversationsSummary(
        count=len(rows),
        turns=sum(row.turns for row in rows),
        intents=dict(intents.most_common()),
        negative_turns=sum(row.negative_turns for row in rows),
        fallback_turns=sum(row.fallback_turns for row in rows),
        handoffs=sum(reasons.values()),
        handoff_reasons=dict(reasons.most_common()),
        conversions=sum(row.reached_close_deal for row in rows),
        mean_satisfaction=round(sum(ratings) / len(ratings), 2) if ratings else None,
        rated=len(ratings),
        channels=dict(Counter(row.channel for row in rows).most_common()),
        last_at=rows[0].last_at if rows else None,
        recent=[
            ConversationLine(
                conversation_id=row.conversation_id,
                channel=row.channel,
                started_at=row.started_at,
                turns=row.turns,
                handoff_reason=row.handoff_reason,
                satisfaction=row.satisfaction,
            )
            for row in rows[:_RECENT_CONVERSATIONS]
        ],
    )
