"""The dashboard's numbers on a tiny hand-built store with known answers, on an empty store, and its CSV tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db import ConversationLogRow, CustomerRow, HandoffRow, TurnAuditRow, make_engine
from core.embeddings import SentenceEncoder, sentence_encoder
from core.errors import InvalidInputError
from insights.dashboard import Summary, build_summary
from insights.dashboard_tables import TABLES, table
from insights.drift import DriftPolicy
from insights.questions import CachingEncoder, Question, cluster_questions, unanswered
from insights.turns import (
    TurnRecord,
    Window,
    customer_tiers,
    customers_in,
    fallback_kind,
    normalise_reason,
    resolve_window,
)

JAN = datetime(2025, 1, 1)
ASKED = "customer asked for a human"
ANGRY_AGAIN = "customer is angry (2 dissatisfied in a row)"
FRYER = "What's the capacity of the air fryer?"
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 4))
SEGMENTS = {"C1": "champions", "C2": "at_risk"}
LABELS = {"champions": ("Champions", "核心客户")}


def _conversation(cid: str, customer: str, channel: str, started: datetime, intents: dict[str, int], **kw: Any) -> Any:
    return ConversationLogRow(
        conversation_id=cid,
        customer_id=customer,
        channel=channel,
        lang="en",
        started_at=started,
        last_at=started,
        turns=sum(intents.values()),
        intents=intents,
        negative_turns=0,
        fallback_turns=0,
        handoff_reason=kw.get("handoff"),
        reached_close_deal=kw.get("deal", False),
        satisfaction=kw.get("rating"),
        seeded=False,
    )


def _turn(at: datetime, intent: str, confidence: float, latency: float, **kw: Any) -> TurnAuditRow:
    return TurnAuditRow(
        conversation_id=kw.get("conversation", "c1"),
        customer_id=kw.get("customer", "C1"),
        created_at=at,
        intent=intent,
        confidence=confidence,
        stage="classifier",
        thresholds="",
        decision="",
        fallback=kw.get("fallback"),
        emotion=kw.get("emotion", "calm"),
        state="answer",
        events=[],
        tools=[],
        route=kw.get("route", "llm"),
        llm_calls=0,
        latency_ms=latency,
        channel=kw.get("channel", "web"),
        question=kw.get("question"),
    )


def _fill(engine: Engine) -> None:
    d = datetime
    with Session(engine) as session, session.begin():
        session.add_all(
            [
                CustomerRow(
                    id=c, name=c, email=f"{c}@x", phone="1", tier=t, lang="en", city="x", created_at=d(2025, 1, 1)
                )
                for c, t in (("C1", "gold"), ("C2", "standard"), ("C3", "vip"))
            ]
        )
        session.add_all(
            [
                _conversation("c0", "C1", "web", d(2026, 2, 28, 23, 59), {"greeting": 1}),  # before the window
                _conversation("c1", "C1", "web", d(2026, 3, 1, 10), {"order_status": 2}, rating=5),
                _conversation(
                    "c2",
                    "C2",
                    "app",
                    d(2026, 3, 1, 11),
                    {"complaint": 1, "human_agent": 1},
                    handoff="customer is angry (1 dissatisfied in a row)",
                    rating=1,
                ),
                _conversation(
                    "c3", "C1", "web", d(2026, 3, 2, 9), {"purchase": 2, "product_inquiry": 1}, deal=True, rating=4
                ),
                _conversation(
                    "c4", "C3", "web", d(2026, 3, 2, 12), {"out_of_scope": 1}, handoff="customer asked for a human"
                ),
                _conversation(
                    "c5",
                    "C2",
                    "web",
                    d(2026, 3, 3, 12),
                    {"greeting": 1},
                    handoff=ANGRY_AGAIN,
                ),
                _conversation("c6", "C1", "web", d(2026, 3, 4), {"goodbye": 1}),  # until is exclusive
            ]
        )
        session.add_all(
            [
                _turn(d(2026, 3, 1, 10), "order_status", 0.9, 100),
                _turn(
                    d(2026, 3, 1, 10, 1),
                    "order_status",
                    0.3,
                    200,
                    emotion="confused",
                    fallback="unsure: clarifying question",
                    question="Can I buy a gift card?",
                ),
                _turn(d(2026, 3, 1, 11), "complaint", 0.8, 300, question="My parcel is late"),
                _turn(
                    d(2026, 3, 1, 11, 1),
                    "complaint",
                    0.9,
                    400,
                    emotion="angry",
                    channel="app",
                    fallback="handoff: customer is angry (1 dissatisfied in a row)",
                ),
                _turn(
                    d(2026, 3, 1, 11, 5),
                    "",
                    0.0,
                    5,
                    route="human",
                    emotion="angry",
                    fallback="a human agent (lin) owns the conversation",
                    question="hello?",
                ),
                _turn(
                    d(2026, 3, 2, 9),
                    "product_inquiry",
                    0.6,
                    1000,
                    fallback="knowledge: best passage scored 0.20 < 0.35",
                    question="What's the capacity of the air fryer?",
                ),
                _turn(
                    d(2026, 3, 2, 12),
                    "out_of_scope",
                    0.2,
                    3000,
                    fallback="unsure: clarifying question",
                    question="Do you sell gift cards?",
                ),
                _turn(d(2026, 3, 4, 1), "goodbye", 0.9, 50),  # after the window
            ]
        )
        session.add_all(
            [
                HandoffRow(
                    conversation_id=cid,
                    customer_id="C2",
                    channel="web",
                    status=status,
                    reason="r",
                    tier="standard",
                    emotion="angry",
                    packet={},
                    created_at=created,
                    taken_at=taken,
                )
                for cid, status, created, taken in (
                    ("c2", "active", d(2026, 3, 1, 11, 5), d(2026, 3, 1, 11, 7)),
                    ("c4", "closed", d(2026, 3, 2, 12, 1), d(2026, 3, 2, 12, 11)),
                    ("c5", "waiting", d(2026, 3, 3, 12), None),
                )
            ]
        )


@pytest.fixture(scope="module")
def engine(make_database_url: Callable[..., str]) -> Iterator[Engine]:
    engine = make_engine(make_database_url())
    _fill(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return sentence_encoder()


@pytest.fixture(scope="module")
def summary(engine: Engine, encoder: SentenceEncoder) -> Summary:
    return build_summary(engine, WINDOW, segments=SEGMENTS, encoder=encoder, segment_labels=LABELS)


def test_headline_numbers(summary: Summary) -> None:
    totals = summary.totals
    assert (totals.conversations, totals.customers, totals.contained, totals.handoffs) == (5, 3, 2, 3)
    assert (totals.containment, totals.handoff_rate) == (0.4, 0.6)
    assert (totals.conversions, totals.conversion_rate) == (1, 0.2)
    # The human agent's turn is neither a fallback nor a latency of the bot's.
    assert (totals.turns, totals.human_turns, totals.fallback_turns, totals.fallback_rate) == (6, 1, 4, 0.6667)
    assert (totals.latency_p50, totals.latency_p90, totals.latency_p99) == (350.0, 2000.0, 2900.0)


def test_handoff_reasons_fallback_kinds_intents_and_emotions(summary: Summary) -> None:
    assert [(s.key, s.count, s.share) for s in summary.handoff_reasons] == [
        ("customer is angry", 2, 0.6667),
        ("customer asked for a human", 1, 0.3333),
    ]
    assert [(s.key, s.count, s.share) for s in summary.fallback_kinds] == [
        ("unsure", 2, 0.5),
        ("handoff", 1, 0.25),
        ("knowledge_miss", 1, 0.25),
    ]
    assert [(s.key, s.count) for s in summary.intents] == [
        ("order_status", 2),
        ("purchase", 2),
        ("complaint", 1),
        ("greeting", 1),
        ("human_agent", 1),
        ("out_of_scope", 1),
        ("product_inquiry", 1),
    ]
    assert summary.intents[0].share == round(2 / 9, 4)
    assert [(s.key, s.count) for s in summary.emotions] == [("calm", 4), ("angry", 1), ("confused", 1)]


def test_daily_rows(summary: Summary) -> None:
    first, second, third = summary.daily
    assert [row.day for row in summary.daily] == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    assert (first.conversations, first.contained, first.containment, first.handoffs) == (2, 1, 0.5, 1)
    assert (first.turns, first.fallback_turns, first.fallback_rate) == (4, 2, 0.5)
    assert (first.latency_p50, first.latency_p90, first.latency_p99) == (250.0, 370.0, 397.0)
    assert first.emotions == {"angry": 0.25, "calm": 0.5, "confused": 0.25}
    assert first.satisfaction_mean == 3.0
    assert (second.conversions, second.satisfaction_mean, second.fallback_rate) == (1, 4.0, 1.0)
    assert (second.latency_p50, second.latency_p90, second.latency_p99) == (2000.0, 2800.0, 2980.0)
    assert second.emotions == {"calm": 1.0}
    # A day with a conversation but no turns: rates of turns are "no data", not zero.
    assert (third.conversations, third.containment, third.turns) == (1, 0.0, 0)
    assert third.fallback_rate is None and third.latency_p50 is None and third.emotions == {}
    assert third.satisfaction_mean is None


def test_satisfaction_and_pickup(summary: Summary) -> None:
    rated = summary.satisfaction
    assert (rated.count, rated.mean, rated.rated_share) == (3, 3.333, 0.6)
    assert rated.distribution == {"1": 1, "2": 0, "3": 0, "4": 1, "5": 1}
    pickup = summary.pickup
    assert (pickup.handoffs, pickup.taken, pickup.waiting) == (3, 2, 1)
    assert (pickup.median_wait_s, pickup.p90_wait_s) == (360.0, 552.0)


def test_per_segment_table(summary: Summary) -> None:
    segments = summary.segments
    assert segments.basis == "segment"
    rows = {row.segment: row for row in segments.rows}
    assert [row.segment for row in segments.rows] == ["at_risk", "champions", "unknown"]
    champions = rows["champions"]
    assert (champions.label_en, champions.label_zh) == ("Champions", "核心客户")
    assert (champions.customers, champions.conversations, champions.containment, champions.handoff_rate) == (
        1,
        2,
        1.0,
        0.0,
    )
    assert (champions.satisfaction_mean, champions.satisfaction_count, champions.conversion_rate) == (4.5, 2, 0.5)
    at_risk = rows["at_risk"]
    assert (at_risk.label_en, at_risk.containment, at_risk.satisfaction_mean, at_risk.conversion_rate) == (
        "at_risk",
        0.0,
        1.0,
        0.0,
    )
    unknown = rows["unknown"]
    assert (unknown.conversations, unknown.handoff_rate, unknown.satisfaction_mean, unknown.satisfaction_count) == (
        1,
        1.0,
        None,
        0,
    )


def test_tiers_stand_in_for_segments(engine: Engine) -> None:
    customers = customers_in(engine, WINDOW)
    assert customers == ["C1", "C2", "C3"]
    assert customer_tiers(engine, [*customers, "C404"]) == {"C1": "gold", "C2": "standard", "C3": "vip"}


def test_unanswered_questions_are_grouped_by_meaning(summary: Summary) -> None:
    gift, fryer = summary.questions
    assert gift.count == 2
    wordings = {"Do you sell gift cards?", "Can I buy a gift card?"}
    assert {gift.representative, *gift.examples} == wordings and len(gift.examples) == 1
    assert gift.reasons == {"out_of_scope": 1, "unsure": 1}
    assert gift.last_at == datetime(2026, 3, 2, 12)
    assert (fryer.count, fryer.representative, fryer.examples) == (1, "What's the capacity of the air fryer?", [])
    assert fryer.reasons == {"knowledge_miss": 1} and fryer.intents == {"product_inquiry": 1}


def test_a_channel_filter(engine: Engine, encoder: SentenceEncoder) -> None:
    window = Window(WINDOW.since, WINDOW.until, "app")
    app = build_summary(engine, window, segments=SEGMENTS, encoder=encoder)
    assert (app.totals.conversations, app.totals.handoffs, app.totals.turns, app.totals.fallback_rate) == (1, 1, 1, 1.0)
    assert app.questions == [] and app.channel == "app"
    assert app.pickup.handoffs == 0  # every handoff row in the store came from the web


def test_an_empty_store_reads_no_data(make_database_url: Callable[..., str], encoder: SentenceEncoder) -> None:
    empty = make_engine(make_database_url())
    window = resolve_window(empty, today=date(2026, 5, 10))
    assert (window.since, window.until) == (date(2026, 4, 11), date(2026, 5, 11))
    result = build_summary(empty, window, segments={}, encoder=encoder)
    totals = result.totals
    assert (totals.conversations, totals.turns, totals.fallback_turns) == (0, 0, 0)
    assert totals.containment is None and totals.fallback_rate is None and totals.latency_p50 is None
    assert len(result.daily) == 30 and all(row.conversations == 0 and row.turns == 0 for row in result.daily)
    assert result.satisfaction.mean is None and result.satisfaction.distribution["5"] == 0
    assert result.pickup.median_wait_s is None
    assert result.segments.rows == [] and result.questions == [] and result.intents == []
    assert result.drift.alerts == [] and result.drift.proposals == []
    for name in TABLES:
        header, rows = table(result, name)
        assert header and (rows == [] or name in ("daily", "drift"))
    empty.dispose()


def test_the_default_window_ends_with_the_data(engine: Engine) -> None:
    window = resolve_window(engine)
    assert (window.since, window.until) == (date(2026, 2, 3), date(2026, 3, 5))
    assert resolve_window(engine, since=date(2026, 1, 1)).until == date(2026, 1, 31)
    assert resolve_window(engine, until=date(2026, 3, 2)).since == date(2026, 1, 31)


@pytest.mark.parametrize(
    ("since", "until", "channel", "reason"),
    [
        (date(2026, 3, 2), date(2026, 3, 2), None, "must be before until"),
        (date(2026, 3, 5), date(2026, 3, 2), None, "must be before until"),
        (date(2020, 1, 1), date(2026, 1, 1), None, "at most 1096 days"),
        (date(2026, 3, 1), date(2026, 3, 2), "fax", "unknown channel 'fax'"),
    ],
)
def test_a_bad_window_is_refused_with_the_reason(since: date, until: date, channel: str | None, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        Window(since, until, channel)


def test_csv_tables(summary: Summary) -> None:
    header, rows = table(summary, "daily")
    assert header[:4] == ["day", "conversations", "contained", "containment"]
    assert rows[0][:4] == ["2026-03-01", 2, 1, 0.5]
    assert rows[2][header.index("latency_p50_ms")] is None
    assert rows[0][header.index("emotion_angry")] == 0.25 and rows[0][header.index("emotion_dissatisfied")] == 0.0
    assert table(summary, "intents") == (
        ["intent", "count", "share"],
        [[s.key, s.count, s.share] for s in summary.intents],
    )
    header, rows = table(summary, "handoff_reasons")
    assert rows[0] == ["customer is angry", 2, 0.6667]
    header, rows = table(summary, "segments")
    assert header[:4] == ["segment", "label_en", "label_zh", "basis"] and rows[1][:4] == [
        "champions",
        "Champions",
        "核心客户",
        "segment",
    ]
    header, rows = table(summary, "questions")
    assert header == ["rank", "count", "representative", "examples", "reasons", "intents", "last_at"]
    assert rows[0][:2] == [1, 2] and rows[0][6] == "2026-03-02T12:00:00"
    header, rows = table(summary, "drift")
    assert header[0] == "day" and len(rows) == 3
    with pytest.raises(InvalidInputError, match="unknown table 'bogus'"):
        table(summary, "bogus")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (None, None),
        ("handoff: customer asked for a human", "handoff"),
        ("unsure: clarifying question", "unsure"),
        ("offered a human after repeated unsure turns", "loop_breaker"),
        ("LLM down: rule-based reply", "llm_down"),
        ("LLM reply unavailable or ungrounded: template", "llm_template"),
        ("knowledge: best passage scored 0.20 < 0.35", "knowledge_miss"),
        ("a human agent (lin) owns the conversation", "human_owned"),
        ("something new", "other"),
    ],
)
def test_fallback_kinds(raw: str | None, kind: str | None) -> None:
    assert fallback_kind(raw) == kind


def test_handoff_reasons_lose_their_particulars() -> None:
    assert normalise_reason("handoff: customer is angry (3 dissatisfied in a row)") == "customer is angry"
    assert normalise_reason("Customer asked for a human; intent human_agent: get me a person!") == (
        "customer asked for a human"
    )
    assert normalise_reason("a human was offered and the customer is still unclear.") == (
        "a human was offered and the customer is still unclear"
    )
    assert normalise_reason("  ") == "unspecified"


def _record(
    question: str | None, intent: str, confidence: float, fallback: str | None, route: str = "llm"
) -> TurnRecord:
    return TurnRecord(
        datetime(2026, 3, 1), "c", "C1", intent, confidence, fallback, "calm", route, 1.0, "web", question
    )


def test_which_turns_count_as_unanswered() -> None:
    turns = [
        _record("weather?", "out_of_scope", 0.9, None),
        _record("hmm", "order_status", 0.3, None),  # low confidence, no fallback recorded
        _record("which one?", "order_status", 0.7, "unsure: clarifying question"),
        _record("warranty of X?", "product_inquiry", 0.9, "knowledge: best passage scored 0.1 < 0.35"),
        _record("where is my order", "order_status", 0.9, None),  # answered
        _record(None, "out_of_scope", 0.1, None),  # words cleared after the retention
        _record("   ", "out_of_scope", 0.1, None),
        _record("hi?", "", 0.0, "a human agent (lin) owns the conversation", route="human"),
    ]
    assert [(q.text, q.reason) for q in unanswered(turns, 0.45)] == [
        ("weather?", "out_of_scope"),
        ("hmm", "unsure"),
        ("which one?", "unsure"),
        ("warranty of X?", "knowledge_miss"),
    ]


def test_grouping_counts_repeats_and_keeps_languages_together(encoder: SentenceEncoder) -> None:
    at = datetime(2026, 3, 1)
    texts = ["Can I buy a gift card?", "can i  buy a gift card?", "礼品卡怎么买", "有礼品卡吗", "tell me a joke"]
    clusters = cluster_questions([Question(text, "out_of_scope", "out_of_scope", at) for text in texts], encoder)
    assert [len(c.questions) for c in clusters] == [4, 1]
    gift = clusters[0]
    # The two spellings of one question count as one wording, shown as first seen most often.
    assert dict(gift.texts) == {"Can I buy a gift card?": 2, "礼品卡怎么买": 1, "有礼品卡吗": 1}
    assert gift.representative in dict(gift.texts)
    assert clusters[1].representative == "tell me a joke"
    assert cluster_questions([], encoder) == []


def test_the_caching_encoder_encodes_each_text_once(encoder: SentenceEncoder) -> None:
    calls: list[list[str]] = []

    class Counting:
        def encode(self, texts: list[str]) -> Any:
            calls.append(list(texts))
            return encoder.encode(texts)

    cached = CachingEncoder(Counting(), max_entries=2)
    first = cached.encode(["a", "b", "a"])
    again = cached.encode(["b", "a"])
    assert calls == [["a", "b"]]
    assert (first[0] == again[1]).all() and first.shape == (3, 512)
    cached.encode(["c"])  # the oldest entry ("a") goes
    cached.encode(["a"])
    assert calls[-1] == ["a"]
    assert cached.encode([]).shape == (0, 512)


def test_a_drift_policy_reads_the_settings() -> None:
    from core.settings import Settings

    settings = Settings(drift_low_confidence_share=0.5, drift_unknown_share=0.1, _env_file=None)  # type: ignore[call-arg]
    policy = DriftPolicy.from_settings(settings, 0.4, min_turns=2)
    assert (policy.unsure_below, policy.low_confidence_share, policy.unknown_share, policy.min_turns) == (
        0.4,
        0.5,
        0.1,
        2,
    )
