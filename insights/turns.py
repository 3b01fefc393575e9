"""The dashboard's raw material: turns, conversations and handoffs of a date window, read from the store.

Days are UTC calendar days (the store keeps naive UTC timestamps); a window is ``[since, until)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.db import ConversationLogRow, CustomerRow, HandoffRow, TurnAuditRow
from core.errors import InvalidInputError

__all__ = [
    "CHANNELS",
    "MAX_DAYS",
    "ConversationRecord",
    "HandoffRecord",
    "TurnRecord",
    "Window",
    "customer_tiers",
    "customers_in",
    "fallback_kind",
    "latest_activity",
    "load_conversations",
    "load_handoffs",
    "load_turns",
    "normalise_reason",
    "resolve_window",
]

MAX_DAYS = 1096
"""The longest window, three years: the analytics log is kept two years by default."""
DEFAULT_DAYS = 30
CHANNELS = ("web", "app", "wechat", "cli")
OUT_OF_SCOPE = "out_of_scope"

# Prefixes of ``TurnAuditRow.fallback`` as ``serving.service`` writes them, and the kind each names.
_FALLBACK_KINDS = (
    ("handoff", "handoff"),
    ("unsure", "unsure"),
    ("offered a human", "loop_breaker"),
    ("LLM down", "llm_down"),
    ("LLM reply", "llm_template"),
    ("knowledge", "knowledge_miss"),
    ("a human agent", "human_owned"),
)


@dataclass(frozen=True)
class Window:
    """The days ``[since, until)`` a dashboard looks at, optionally one channel only.

    Raises:
        InvalidInputError: ``since`` is not before ``until``, the window is longer than ``MAX_DAYS``,
            or the channel is unknown.
    """

    since: date
    until: date
    channel: str | None = None

    def __post_init__(self) -> None:
        if self.since >= self.until:
            raise InvalidInputError(f"since ({self.since}) must be before until ({self.until}); until is exclusive")
        if (self.until - self.since).days > MAX_DAYS:
            raise InvalidInputError(f"a window may span at most {MAX_DAYS} days, not {(self.until - self.since).days}")
        if self.channel is not None and self.channel not in CHANNELS:
            raise InvalidInputError(f"unknown channel {self.channel!r}: use one of {', '.join(CHANNELS)}")

    @property
    def start(self) -> datetime:
        """The first instant in the window."""
        return datetime.combine(self.since, time())

    @property
    def end(self) -> datetime:
        """The first instant after the window."""
        return datetime.combine(self.until, time())

    @property
    def days(self) -> list[date]:
        """Every day in the window, oldest first."""
        return [self.since + timedelta(days=offset) for offset in range((self.until - self.since).days)]


@dataclass(frozen=True)
class TurnRecord:
    """One audited turn, as the dashboard needs it."""

    at: datetime
    conversation_id: str
    customer_id: str
    intent: str
    confidence: float
    fallback: str | None
    emotion: str
    route: str
    """``llm``, ``rules`` or ``human`` (a human agent owned the conversation: not a bot turn)."""
    latency_ms: float
    channel: str | None
    question: str | None
    """The customer's redacted message; None after the conversation retention."""

    @property
    def by_bot(self) -> bool:
        """The bot answered this turn (a human agent did not own the conversation)."""
        return self.route != "human"

    @property
    def kind(self) -> str | None:
        """The fallback's kind (``unsure``, ``knowledge_miss``, ...), None for a plain answer."""
        return fallback_kind(self.fallback)

    def unknown(self) -> bool:
        """The classifier did not know the intent: out of scope, or an unsure turn."""
        return self.intent == OUT_OF_SCOPE or self.kind in ("unsure", "loop_breaker")


@dataclass(frozen=True)
class ConversationRecord:
    """One conversation of the text-free service log."""

    conversation_id: str
    customer_id: str
    channel: str
    started_at: datetime
    turns: int
    intents: dict[str, int]
    handoff_reason: str | None
    reached_close_deal: bool
    satisfaction: int | None

    @property
    def contained(self) -> bool:
        """The bot handled it alone: no handoff to a human."""
        return self.handoff_reason is None


@dataclass(frozen=True)
class HandoffRecord:
    """One handoff to the human desk and when an agent picked it up."""

    created_at: datetime
    taken_at: datetime | None
    status: str

    @property
    def wait_s(self) -> float | None:
        """Seconds until an agent took it; None while nobody has."""
        return None if self.taken_at is None else max(0.0, (self.taken_at - self.created_at).total_seconds())


def fallback_kind(fallback: str | None) -> str | None:
    """The kind of a fallback text: ``unsure``, ``knowledge_miss``, ``llm_down``, ``other``, ...; None for none."""
    if not fallback:
        return None
    return next((kind for prefix, kind in _FALLBACK_KINDS if fallback.startswith(prefix)), "other")


def normalise_reason(reason: str) -> str:
    """A handoff reason without its particulars, so equal reasons group together.

    ``"handoff: customer is angry (1 dissatisfied in a row); intent complaint: ..."`` becomes
    ``"customer is angry"``: the prefix, the part after ``;`` (which may quote the customer), counts
    in parentheses and trailing punctuation go; the rest is lower-cased.
    """
    text = reason.removeprefix("handoff:").split(";", 1)[0]
    text = re.sub(r"\([^)]*\)", " ", text)
    text = re.sub(r"\s+", " ", text).strip(" .:,-").lower()
    return text[:80] or "unspecified"


def latest_activity(engine: Engine) -> datetime | None:
    """The newest turn or conversation in the store; None for an empty one."""
    with Session(engine) as session:
        turn = session.scalar(select(func.max(TurnAuditRow.created_at)))
        conversation = session.scalar(select(func.max(ConversationLogRow.last_at)))
    moments = [moment for moment in (turn, conversation) if moment is not None]
    return max(moments) if moments else None


def resolve_window(
    engine: Engine,
    since: date | None = None,
    until: date | None = None,
    channel: str | None = None,
    *,
    today: date | None = None,
) -> Window:
    """The window a request means: missing ends default to the last 30 days of data.

    Without ``until`` the window ends after the day of the store's latest activity (``today`` for an
    empty store, default the current UTC day), or 30 days after ``since`` when only that is given.

    Raises:
        InvalidInputError: see ``Window``.
    """
    if until is None:
        if since is not None:
            until = since + timedelta(days=DEFAULT_DAYS)
        else:
            latest = latest_activity(engine)
            last_day = latest.date() if latest is not None else today or datetime.now(UTC).date()
            until = last_day + timedelta(days=1)
    if since is None:
        since = until - timedelta(days=DEFAULT_DAYS)
    return Window(since, until, channel or None)


def load_turns(engine: Engine, window: Window) -> list[TurnRecord]:
    """The audited turns in the window (of its channel), oldest first."""
    row = TurnAuditRow
    query = (
        select(
            row.created_at,
            row.conversation_id,
            row.customer_id,
            row.intent,
            row.confidence,
            row.fallback,
            row.emotion,
            row.route,
            row.latency_ms,
            row.channel,
            row.question,
        )
        .where(row.created_at >= window.start, row.created_at < window.end)
        .order_by(row.created_at, row.id)
    )
    if window.channel is not None:
        query = query.where(row.channel == window.channel)
    with Session(engine) as session:
        return [
            TurnRecord(
                at=r.created_at,
                conversation_id=r.conversation_id,
                customer_id=r.customer_id,
                intent=r.intent or "",
                confidence=float(r.confidence),
                fallback=r.fallback,
                emotion=r.emotion or "calm",
                route=r.route,
                latency_ms=float(r.latency_ms),
                channel=r.channel,
                question=r.question,
            )
            for r in session.execute(query)
        ]


def load_conversations(engine: Engine, window: Window) -> list[ConversationRecord]:
    """The logged conversations that started in the window (on its channel), oldest first."""
    row = ConversationLogRow
    query = (
        select(row)
        .where(row.started_at >= window.start, row.started_at < window.end)
        .order_by(row.started_at, row.conversation_id)
    )
    if window.channel is not None:
        query = query.where(row.channel == window.channel)
    with Session(engine) as session:
        return [
            ConversationRecord(
                conversation_id=r.conversation_id,
                customer_id=r.customer_id,
                channel=r.channel,
                started_at=r.started_at,
                turns=r.turns,
                intents=dict(r.intents or {}),
                handoff_reason=r.handoff_reason,
                reached_close_deal=bool(r.reached_close_deal),
                satisfaction=r.satisfaction,
            )
            for r in session.scalars(query)
        ]


def load_handoffs(engine: Engine, window: Window) -> list[HandoffRecord]:
    """The handoffs created in the window (on its channel), oldest first."""
    row = HandoffRow
    query = (
        select(row.created_at, row.taken_at, row.status)
        .where(row.created_at >= window.start, row.created_at < window.end)
        .order_by(row.created_at, row.id)
    )
    if window.channel is not None:
        query = query.where(row.channel == window.channel)
    with Session(engine) as session:
        return [HandoffRecord(r.created_at, r.taken_at, r.status) for r in session.execute(query)]


def customers_in(engine: Engine, window: Window) -> list[str]:
    """The customers with a logged conversation that started in the window (on its channel), sorted."""
    row = ConversationLogRow
    query = select(row.customer_id).where(row.started_at >= window.start, row.started_at < window.end).distinct()
    if window.channel is not None:
        query = query.where(row.channel == window.channel)
    with Session(engine) as session:
        return sorted(session.scalars(query))


def customer_tiers(engine: Engine, customer_ids: Iterable[str]) -> dict[str, str]:
    """The membership tier of each known customer among ``customer_ids``."""
    wanted = sorted(set(customer_ids))
    tiers: dict[str, str] = {}
    with Session(engine) as session:
        for start in range(0, len(wanted), 500):  # SQLite limits the parameters of one statement
            chunk = wanted[start : start + 500]
            query = select(CustomerRow.id, CustomerRow.tier).where(CustomerRow.id.in_(chunk))
            tiers.update({r.id: r.tier for r in session.execute(query)})
    return tiers
