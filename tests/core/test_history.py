"""Tests of ``core.history``: the demo service history is deterministic, text-safe, consistent, and carries signal.

The signal is measured by counting, not with a model: customers with a product conversation in the
three days before a weekly snapshot order within three days far more often, and a complaint in the
two weeks before a snapshot makes "no order in the next 30 days" likelier.
"""

from __future__ import annotations

import bisect
import doctest
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import core.history
import core.seed
from core.db import ConversationLogRow, CustomerRow, OrderItemRow, OrderRow, TicketRow, TurnAuditRow, make_engine
from core.history import TURN_DAYS, HistoryCustomer, ServiceHistory, service_history
from core.seed import REFERENCE_DATE, seed
from core.settings import Settings

_PRODUCT_INTENTS = {"product_inquiry", "product_recommendation", "purchase"}
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")


@dataclass(frozen=True)
class Demo:
    """The seeded demo store, read once."""

    engine: Engine
    customers: list[CustomerRow]
    logs: list[ConversationLogRow]
    turns: list[TurnAuditRow]
    orders: dict[str, list[datetime]]
    """Order times per customer, sorted."""


@pytest.fixture(scope="module")
def demo(make_database_url: Callable[..., str]) -> Demo:
    engine = make_engine(make_database_url())
    seed(engine)
    with Session(engine) as session:
        customers = list(session.scalars(select(CustomerRow).order_by(CustomerRow.id)))
        logs = list(session.scalars(select(ConversationLogRow).order_by(ConversationLogRow.conversation_id)))
        turns = list(session.scalars(select(TurnAuditRow).order_by(TurnAuditRow.id)))
        orders: dict[str, list[datetime]] = defaultdict(list)
        for customer_id, created_at in session.execute(select(OrderRow.customer_id, OrderRow.created_at)):
            orders[customer_id].append(created_at)
    for times in orders.values():
        times.sort()
    return Demo(engine, customers, logs, turns, dict(orders))


def _rows(engine: Engine, table: Any, key: Any) -> list[tuple[object, ...]]:
    with Session(engine) as session:
        rows = session.scalars(select(table).order_by(key)).all()
        return [tuple(getattr(row, c.key) for c in table.__table__.columns if c.key != "id") for row in rows]


def _ordered_between(demo: Demo, customer_id: str, after: datetime, until: datetime) -> bool:
    times = demo.orders.get(customer_id, [])
    at = bisect.bisect_right(times, after)
    return at < len(times) and times[at] <= until


def test_the_module_example_runs() -> None:
    assert doctest.testmod(core.history, raise_on_error=True).attempted > 0


def test_the_history_is_deterministic(demo: Demo) -> None:
    again = make_engine("sqlite://")
    seed(again)
    for table, key in ((ConversationLogRow, ConversationLogRow.conversation_id), (TurnAuditRow, TurnAuditRow.id)):
        assert _rows(again, table, key) == _rows(demo.engine, table, key)
    customers = [
        HistoryCustomer("C0100", "en", datetime(2025, 2, 1)),
        HistoryCustomer("C0101", "zh", datetime(2024, 1, 1)),
    ]
    orders = [{"customer_id": "C0100", "created_at": datetime(2026, 5, 5, 10), "status": "delivered"}]
    first = service_history(random.Random(3), customers, orders, now=REFERENCE_DATE)
    assert service_history(random.Random(3), customers, orders, now=REFERENCE_DATE) == first
    assert service_history(random.Random(4), customers, orders, now=REFERENCE_DATE) != first


def test_adding_the_history_changed_no_existing_row(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.seed, "service_history", lambda *_args, **_kwargs: ServiceHistory([], []))
    without = make_engine("sqlite://")
    summary = seed(without)
    assert summary.conversations == 0
    for table, key in (
        (CustomerRow, CustomerRow.id),
        (OrderRow, OrderRow.id),
        (OrderItemRow, OrderItemRow.id),
        (TicketRow, TicketRow.id),
    ):
        assert _rows(without, table, key) == _rows(demo.engine, table, key), table.__tablename__


def test_volumes_and_summary(demo: Demo) -> None:
    with Session(demo.engine) as session:
        assert core.seed._summary(session, created=False).conversations == len(demo.logs)
    assert 1_500 <= len(demo.logs) <= 5_000
    assert 300 <= len(demo.turns) <= 2_000
    talked = {log.customer_id for log in demo.logs}
    assert len(talked & {c.id for c in demo.customers[2:]}) >= 0.95 * (len(demo.customers) - 2)
    assert not talked & {"C0001", "C0002"}, "the demo customers start clean"


def test_rows_are_consistent_with_the_customers_and_each_other(demo: Demo) -> None:
    customers = {c.id: c for c in demo.customers}
    since = REFERENCE_DATE - timedelta(days=TURN_DAYS)
    turns_of: dict[str, list[TurnAuditRow]] = defaultdict(list)
    for turn in demo.turns:
        turns_of[turn.conversation_id].append(turn)
    for log in demo.logs:
        customer = customers[log.customer_id]
        assert log.seeded and log.variant is None
        assert log.conversation_id.startswith(f"seed-{log.customer_id}-")
        assert log.lang == customer.lang and log.channel in {"web", "app", "wechat"}
        assert customer.created_at <= log.started_at <= log.last_at < REFERENCE_DATE
        assert log.started_at >= REFERENCE_DATE - timedelta(days=731)
        assert log.turns == sum(log.intents.values()) >= 1
        assert log.satisfaction is None or 1 <= log.satisfaction <= 5
        turns = turns_of.pop(log.conversation_id, [])
        if log.started_at < since:
            assert not turns
            continue
        assert len(turns) == log.turns
        assert Counter(t.intent for t in turns) == Counter(log.intents)
        assert (turns[0].created_at, turns[-1].created_at) == (log.started_at, log.last_at)
        assert sum(t.emotion in ("dissatisfied", "angry") for t in turns) == log.negative_turns
        assert sum(t.fallback is not None for t in turns) == log.fallback_turns
        assert log.reached_close_deal == any(t.state == "close_deal" for t in turns)
        assert (log.handoff_reason is not None) == any(t.state == "handoff" for t in turns)
        assert all(t.customer_id == log.customer_id and t.channel == log.channel for t in turns)
    assert not turns_of, "every turn belongs to a logged conversation"
    rated = sum(log.satisfaction is not None for log in demo.logs) / len(demo.logs)
    assert 0.3 < rated < 0.5


def test_turns_look_like_the_agents_own(demo: Demo) -> None:
    for turn in demo.turns:
        assert 0 <= turn.confidence <= 1 and turn.latency_ms > 0
        assert turn.stage in {"classifier", "llm", "classifier:llm-down"}
        assert turn.route in {"llm", "rules"} and turn.llm_calls in (0, 1, 2)
        assert turn.emotion in {"calm", "confused", "dissatisfied", "angry"}
        assert turn.state in {"need_confirm", "answer", "recommend", "close_deal", "handoff", "end"}
        assert turn.thresholds == "accept=0.8 gap=0.3 unsure_below=0.45" and turn.decision.startswith("classifier ")
        unsure = (turn.fallback or "").startswith(("unsure", "offered a human"))
        assert unsure == (turn.confidence < 0.45), turn.decision
    kinds = Counter((t.fallback or "none").split(":")[0].split(" after")[0] for t in demo.turns)
    assert kinds["none"] > len(demo.turns) / 2
    assert kinds["unsure"] and kinds["handoff"] and kinds["knowledge"] and kinds["LLM down"]


def test_questions_hold_placeholders_never_personal_data(demo: Demo) -> None:
    questions = [t.question for t in demo.turns]
    assert all(questions)
    identities = [value for c in demo.customers for value in (c.name, c.email, c.phone, c.phone.replace(" ", ""))]
    for question in questions:
        assert question is not None
        assert not [value for value in identities if value in question], question
        assert not re.search(r"\d{5,}|@", _PLACEHOLDER.sub("", question)), question
    placeholders = {m.group(1) for q in questions if q for m in _PLACEHOLDER.finditer(q)}
    assert placeholders and placeholders <= {"PERSON", "CN_MOBILE", "EMAIL_ADDRESS"}
    zh = {c.id for c in demo.customers if c.lang == "zh"}
    for turn in demo.turns:
        assert turn.question is not None
        assert bool(re.search(r"[\u4e00-\u9fff]", turn.question)) == (turn.customer_id in zh), turn.question


def test_a_product_conversation_comes_before_buying(demo: Demo) -> None:
    """Weekly snapshots: did the customer talk about products in the 3 days before, and order in the 3 after?"""
    talked: dict[str, list[datetime]] = defaultdict(list)
    for log in demo.logs:
        if _PRODUCT_INTENTS & set(log.intents):
            talked[log.customer_id].append(log.last_at)
    groups = {True: [0, 0], False: [0, 0]}
    at = REFERENCE_DATE - timedelta(days=700)
    while at < REFERENCE_DATE - timedelta(days=3):
        for customer in demo.customers[2:]:
            if customer.created_at >= at:
                continue
            recent = any(at - timedelta(days=3) <= moment < at for moment in talked[customer.id])
            groups[recent][0] += 1
            groups[recent][1] += _ordered_between(demo, customer.id, at, at + timedelta(days=3))
        at += timedelta(days=7)
    with_talk, without = (groups[key][1] / groups[key][0] for key in (True, False))
    assert groups[True][0] >= 200
    assert with_talk > 5 * without
    assert with_talk < 0.8, "probabilistic: many product conversations are not followed by an order"


def test_a_complaint_makes_a_quiet_month_likelier(demo: Demo) -> None:
    """Weekly snapshots: a complaint in the 14 days before raises the share with no order in the 30 after."""
    complained: dict[str, list[datetime]] = defaultdict(list)
    for log in demo.logs:
        if {"complaint", "return_refund"} & set(log.intents) and log.negative_turns:
            complained[log.customer_id].append(log.last_at)
    groups = {True: [0, 0], False: [0, 0]}
    at = REFERENCE_DATE - timedelta(days=700)
    while at < REFERENCE_DATE - timedelta(days=30):
        for customer in demo.customers[2:]:
            if customer.created_at >= at or not _ordered_between(demo, customer.id, datetime.min, at):
                continue
            recent = any(at - timedelta(days=14) <= moment < at for moment in complained[customer.id])
            groups[recent][0] += 1
            groups[recent][1] += not _ordered_between(demo, customer.id, at, at + timedelta(days=30))
        at += timedelta(days=7)
    after_complaint, otherwise = (groups[key][1] / groups[key][0] for key in (True, False))
    assert groups[True][0] >= 150
    assert after_complaint > otherwise + 0.08
    assert after_complaint < 1.0, "probabilistic: some who complained still ordered within 30 days"


def test_unhappy_conversations_are_rated_lower(demo: Demo) -> None:
    def mean(logs: list[ConversationLogRow]) -> float:
        rated = [log.satisfaction for log in logs if log.satisfaction is not None]
        return sum(rated) / len(rated)

    unhappy = [log for log in demo.logs if log.negative_turns or log.handoff_reason]
    happy = [log for log in demo.logs if not (log.negative_turns or log.handoff_reason)]
    assert mean(happy) > 3.8 > 2.5 > mean(unhappy)
    contained = sum(log.handoff_reason is None for log in demo.logs) / len(demo.logs)
    assert 0.85 < contained < 0.99


def test_drift_fires_on_the_last_days_only(demo: Demo) -> None:
    settings = Settings(_env_file=None)
    days: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for turn in demo.turns:
        day = days[turn.created_at.date()]
        day[0] += 1
        day[1] += turn.intent == "out_of_scope" or (turn.fallback or "").startswith(("unsure", "offered a human"))
        day[2] += turn.confidence < 0.45
    unknown = [d for d, (n, u, _low) in sorted(days.items()) if u / n > settings.drift_unknown_share]
    low = [d for d, (n, _u, lo) in sorted(days.items()) if lo / n > settings.drift_low_confidence_share]
    last = max(days)
    assert last == REFERENCE_DATE.date()
    assert unknown == [last - timedelta(days=n) for n in range(len(unknown) - 1, -1, -1)], "one run up to the end"
    assert 3 <= len(unknown) <= 6
    assert low and set(low) <= set(unknown) and last in low
    new_topics = [
        t.question
        for t in demo.turns
        if t.question and re.search("礼品卡|以旧换新|直播间|gift card|trade-in|live-stream", t.question)
    ]
    assert len(new_topics) >= 50 and len(set(new_topics)) >= 12, "several paraphrases of each new topic"
    early = [t for t in demo.turns if t.created_at.date() < last - timedelta(days=7) and t.question in new_topics]
    assert 0 < len(early) < len(new_topics) / 5, "the new topics trickle in before they rise"
