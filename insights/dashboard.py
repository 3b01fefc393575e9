"""The support lead's dashboard: how well the bot serves, per day, per reason, per segment.

Conversation metrics come from the text-free service log (``conversation_log``, conversations that
started in the window); turn metrics from the turn audits (turns in the window), counting only the
bot's turns: a turn a human agent answered is neither a fallback nor a latency of the bot's.

- containment: conversations without a handoff / all conversations; handoff rate = 1 - containment
- handoff reasons: the log's reasons, normalised (``turns.normalise_reason``) and counted
- fallback rate: bot turns with a fallback / bot turns, and the turns of each fallback kind
- intent mix: the log's per-conversation intent counts, summed
- emotions: per day, the share of bot turns at each emotion
- satisfaction: mean, count and distribution of the 1-5 ratings
- conversion: conversations that reached ``close_deal`` / all conversations
- latency: p50, p90, p99 of the bot's ``latency_ms`` (linear interpolation), per day and overall
- pickup: how long handoffs waited for a human agent
- segments: the conversation metrics per customer segment (or tier), from a mapping given in
- unanswered questions (``insights.questions``) and the drift watch (``insights.drift``)

Rates are None where there is nothing to divide by, so an empty store reads "no data", not 0%.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine

from insights.drift import DriftPolicy, DriftReport, drift_report
from insights.questions import Encoder, QuestionGroup, top_unanswered
from insights.turns import (
    ConversationRecord,
    HandoffRecord,
    TurnRecord,
    Window,
    load_conversations,
    load_handoffs,
    load_turns,
    normalise_reason,
)

__all__ = [
    "EMOTIONS",
    "DayRow",
    "Pickup",
    "Satisfaction",
    "SegmentRow",
    "SegmentTable",
    "Share",
    "Summary",
    "Totals",
    "build_summary",
    "segment_table",
]

EMOTIONS = ("calm", "confused", "dissatisfied", "angry")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Share(_Model):
    """A key counted, with its share of the total."""

    key: str
    count: int
    share: float


class Totals(_Model):
    """The window's headline numbers."""

    conversations: int
    customers: int
    contained: int
    containment: float | None
    handoffs: int
    handoff_rate: float | None
    conversions: int
    conversion_rate: float | None
    turns: int
    """The bot's turns."""
    human_turns: int
    """Turns a human agent owned (not counted in fallbacks or latency)."""
    fallback_turns: int
    fallback_rate: float | None
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None


class DayRow(_Model):
    """One day of the window."""

    day: date
    conversations: int
    contained: int
    containment: float | None
    handoffs: int
    conversions: int
    satisfaction_mean: float | None
    turns: int
    fallback_turns: int
    fallback_rate: float | None
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None
    emotions: dict[str, float]
    """Share of the day's bot turns at each emotion; empty on a day without turns."""


class Satisfaction(_Model):
    """The customers' ratings."""

    count: int
    mean: float | None
    distribution: dict[str, int]
    """Ratings ``"1"`` to ``"5"`` counted."""
    rated_share: float | None
    """Rated conversations / conversations."""


class Pickup(_Model):
    """How long handoffs waited for a human."""

    handoffs: int
    taken: int
    waiting: int
    """Still in the queue."""
    median_wait_s: float | None
    p90_wait_s: float | None


class SegmentRow(_Model):
    """The conversation metrics of one segment."""

    segment: str
    label_en: str
    label_zh: str
    customers: int
    conversations: int
    containment: float | None
    handoff_rate: float | None
    satisfaction_mean: float | None
    satisfaction_count: int
    conversion_rate: float | None


class SegmentTable(_Model):
    """Per-segment metrics and what the segments are."""

    basis: str
    """``segment`` (the insight segments) or ``tier`` (membership tiers, when segments are not computed)."""
    note: str
    rows: list[SegmentRow]


class Summary(_Model):
    """Everything the dashboard shows for one window."""

    since: date
    until: date
    """Exclusive."""
    channel: str | None
    totals: Totals
    daily: list[DayRow]
    handoff_reasons: list[Share]
    fallback_kinds: list[Share]
    intents: list[Share]
    emotions: list[Share]
    satisfaction: Satisfaction
    pickup: Pickup
    segments: SegmentTable
    questions: list[QuestionGroup]
    drift: DriftReport


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _percentiles(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    p50, p90, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 90, 99])
    return round(float(p50), 1), round(float(p90), 1), round(float(p99), 1)


def _shares(counts: Counter[str]) -> list[Share]:
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Share(key=key, count=count, share=round(count / total, 4)) for key, count in ordered if count]


def _totals(conversations: Sequence[ConversationRecord], turns: Sequence[TurnRecord]) -> Totals:
    bot = [turn for turn in turns if turn.by_bot]
    contained = sum(c.contained for c in conversations)
    conversions = sum(c.reached_close_deal for c in conversations)
    fallbacks = sum(turn.fallback is not None for turn in bot)
    p50, p90, p99 = _percentiles([turn.latency_ms for turn in bot])
    containment = _rate(contained, len(conversations))
    return Totals(
        conversations=len(conversations),
        customers=len({c.customer_id for c in conversations}),
        contained=contained,
        containment=containment,
        handoffs=len(conversations) - contained,
        handoff_rate=None if containment is None else round(1 - containment, 4),
        conversions=conversions,
        conversion_rate=_rate(conversions, len(conversations)),
        turns=len(bot),
        human_turns=len(turns) - len(bot),
        fallback_turns=fallbacks,
        fallback_rate=_rate(fallbacks, len(bot)),
        latency_p50=p50,
        latency_p90=p90,
        latency_p99=p99,
    )


def _daily(
    days: Sequence[date], conversations: Sequence[ConversationRecord], turns: Sequence[TurnRecord]
) -> list[DayRow]:
    talks: dict[date, list[ConversationRecord]] = defaultdict(list)
    for conversation in conversations:
        talks[conversation.started_at.date()].append(conversation)
    bot: dict[date, list[TurnRecord]] = defaultdict(list)
    for turn in turns:
        if turn.by_bot:
            bot[turn.at.date()].append(turn)
    rows = []
    for day in days:
        day_talks, day_turns = talks.get(day, []), bot.get(day, [])
        contained = sum(c.contained for c in day_talks)
        fallbacks = sum(turn.fallback is not None for turn in day_turns)
        p50, p90, p99 = _percentiles([turn.latency_ms for turn in day_turns])
        emotions = Counter(turn.emotion for turn in day_turns)
        rows.append(
            DayRow(
                day=day,
                conversations=len(day_talks),
                contained=contained,
                containment=_rate(contained, len(day_talks)),
                handoffs=len(day_talks) - contained,
                conversions=sum(c.reached_close_deal for c in day_talks),
                satisfaction_mean=_mean([c.satisfaction for c in day_talks if c.satisfaction is not None]),
                turns=len(day_turns),
                fallback_turns=fallbacks,
                fallback_rate=_rate(fallbacks, len(day_turns)),
                latency_p50=p50,
                latency_p90=p90,
                latency_p99=p99,
                emotions={key: round(count / len(day_turns), 4) for key, count in sorted(emotions.items())},
            )
        )
    return rows


def _satisfaction(conversations: Sequence[ConversationRecord]) -> Satisfaction:
    ratings = [c.satisfaction for c in conversations if c.satisfaction is not None]
    counts = Counter(ratings)
    return Satisfaction(
        count=len(ratings),
        mean=_mean(ratings),
        distribution={str(score): counts.get(score, 0) for score in range(1, 6)},
        rated_share=_rate(len(ratings), len(conversations)),
    )


def _pickup(handoffs: Sequence[HandoffRecord]) -> Pickup:
    waits = [wait for wait in (h.wait_s for h in handoffs) if wait is not None]
    median, p90 = (None, None) if not waits else np.percentile(np.asarray(waits), [50, 90])
    return Pickup(
        handoffs=len(handoffs),
        taken=len(waits),
        waiting=sum(h.status == "waiting" for h in handoffs),
        median_wait_s=None if median is None else round(float(median), 1),
        p90_wait_s=None if p90 is None else round(float(p90), 1),
    )


def segment_table(
    conversations: Iterable[ConversationRecord],
    segment_of: Mapping[str, str],
    *,
    basis: str = "segment",
    note: str = "",
    labels: Mapping[str, tuple[str, str]] | None = None,
) -> SegmentTable:
    """Conversation metrics per segment; customers missing from ``segment_of`` count as ``unknown``.

    Args:
        conversations: The window's conversations.
        segment_of: Customer id to segment slug.
        basis: What the slugs are: ``segment`` or ``tier``.
        note: Shown with the table (e.g. why tiers stand in for segments).
        labels: Slug to (English, Chinese) label; the slug itself where missing.
    """
    groups: dict[str, list[ConversationRecord]] = defaultdict(list)
    for conversation in conversations:
        groups[segment_of.get(conversation.customer_id) or "unknown"].append(conversation)
    rows = []
    for segment, talks in groups.items():
        contained = sum(c.contained for c in talks)
        ratings = [c.satisfaction for c in talks if c.satisfaction is not None]
        label_en, label_zh = (labels or {}).get(segment, (segment, segment))
        rows.append(
            SegmentRow(
                segment=segment,
                label_en=label_en,
                label_zh=label_zh,
                customers=len({c.customer_id for c in talks}),
                conversations=len(talks),
                containment=_rate(contained, len(talks)),
                handoff_rate=_rate(len(talks) - contained, len(talks)),
                satisfaction_mean=_mean(ratings),
                satisfaction_count=len(ratings),
                conversion_rate=_rate(sum(c.reached_close_deal for c in talks), len(talks)),
            )
        )
    rows.sort(key=lambda row: (-row.conversations, row.segment))
    return SegmentTable(basis=basis, note=note, rows=rows)


def build_summary(
    engine: Engine,
    window: Window,
    *,
    segments: Mapping[str, str],
    encoder: Encoder,
    policy: DriftPolicy | None = None,
    segment_basis: str = "segment",
    segment_note: str = "",
    segment_labels: Mapping[str, tuple[str, str]] | None = None,
    question_limit: int = 20,
) -> Summary:
    """Everything the dashboard shows for ``window``.

    Args:
        engine: The store's database.
        window: The days (and channel) to look at.
        segments: Customer id to segment slug (see ``segment_table``).
        encoder: Groups similar questions (``core.embeddings.sentence_encoder()``).
        policy: Drift thresholds and the confidence policy's ``unsure_below``.
        segment_basis: ``segment`` or ``tier``.
        segment_note: Shown with the segment table.
        segment_labels: Slug to (English, Chinese) label.
        question_limit: How many groups of unanswered questions to list.
    """
    policy = policy or DriftPolicy()
    conversations = load_conversations(engine, window)
    turns = load_turns(engine, window)
    bot = [turn for turn in turns if turn.by_bot]
    intents: Counter[str] = Counter()
    for conversation in conversations:
        intents.update({intent: count for intent, count in conversation.intents.items() if intent})
    reasons = Counter(normalise_reason(c.handoff_reason) for c in conversations if c.handoff_reason is not None)
    return Summary(
        since=window.since,
        until=window.until,
        channel=window.channel,
        totals=_totals(conversations, turns),
        daily=_daily(window.days, conversations, turns),
        handoff_reasons=_shares(reasons),
        fallback_kinds=_shares(Counter(turn.kind for turn in bot if turn.kind is not None)),
        intents=_shares(intents),
        emotions=_shares(Counter(turn.emotion for turn in bot)),
        satisfaction=_satisfaction(conversations),
        pickup=_pickup(load_handoffs(engine, window)),
        segments=segment_table(conversations, segments, basis=segment_basis, note=segment_note, labels=segment_labels),
        questions=top_unanswered(turns, encoder, unsure_below=policy.unsure_below, limit=question_limit),
        drift=drift_report(turns, window.days, policy, encoder),
    )
