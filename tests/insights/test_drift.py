"""The drift watch: alerts fire exactly on the days above a threshold, and proposals are intent training JSONL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent.intents import load_examples
from core.db import TurnAuditRow, make_engine
from core.embeddings import SentenceEncoder, sentence_encoder
from insights.drift import DriftPolicy, DriftReport, drift_report, proposal_lines, write_proposals
from insights.turns import Window, load_turns

POLICY = DriftPolicy(unsure_below=0.45, low_confidence_share=0.35, unknown_share=0.20, min_turns=5)
WINDOW = Window(date(2026, 4, 1), date(2026, 4, 8))
GIFT = ["Do you sell gift cards?", "Can I buy a gift card?", "礼品卡怎么买", "有礼品卡吗"]
TRADE_IN = ["can I trade in my old phone", "旧手机能换新吗"]
UNSURE = "unsure: clarifying question"


def _row(day: int, n: int, intent: str, confidence: float, **kw: object) -> TurnAuditRow:
    return TurnAuditRow(
        conversation_id=f"d{day}",
        customer_id="C1",
        created_at=datetime(2026, 4, day, 9) + timedelta(minutes=n),
        intent=intent,
        confidence=confidence,
        stage="classifier",
        thresholds="",
        decision="",
        fallback=kw.get("fallback"),
        emotion="calm",
        state="answer",
        events=[],
        tools=[],
        route=kw.get("route", "llm"),
        llm_calls=0,
        latency_ms=10.0,
        channel="web",
        question=kw.get("question"),
    )


def _day(day: int, normal: int, low: list[tuple[str, str]], unknown: list[str], **kw: object) -> list[TurnAuditRow]:
    """``normal`` confident turns, low-confidence answered ones (text, intent), and unknown ones (text)."""
    rows = [_row(day, i, "order_status", 0.9, question="where is my order") for i in range(normal)]
    rows += [_row(day, 100 + i, intent, 0.4, question=text) for i, (text, intent) in enumerate(low)]
    rows += [
        _row(day, 200 + i, "out_of_scope", 0.2, fallback=kw.get("fallback", UNSURE), question=text)
        for i, text in enumerate(unknown)
    ]
    return rows


def _fill(engine: Engine) -> None:
    rows = [
        # Day 1: low 3/10 = 0.30, unknown 1/10 = 0.10: quiet.
        *_day(1, 7, [("tell me a joke", "chitchat")] * 2, ["what's the weather tomorrow"]),
        # Day 2: low 7/11 = 0.6364 (the unknown turns are low-confidence too), unknown 5/11 = 0.4545: both alert.
        *_day(2, 4, [(text, "exchange") for text in TRADE_IN], [*GIFT, "what's the weather tomorrow"]),
        # Day 3: low 2/10 = 0.20, unknown 0: quiet.
        *_day(3, 8, [("is it waterproof", "product_inquiry")] * 2, []),
        # Day 4: exactly on both thresholds (7/20 = 0.35 low, 4/20 = 0.20 unknown): not above, no alert.
        *_day(4, 13, [("hmm", "order_status")] * 3, ["gift card?"] * 4),
        # Day 5: every turn unknown, but only 3 turns (min_turns is 5): no alert.
        *_day(5, 0, [], ["gift card please"] * 3),
        # Day 6: a human agent answered; such turns (confidence 0) are not the classifier's.
        *[
            _row(6, i, "", 0.0, route="human", fallback="a human agent (lin) owns the conversation", question="hi")
            for i in range(6)
        ],
        # Day 7: unknown 2/8 = 0.25 by out_of_scope intents with no fallback, low-confidence 0: unknown alerts alone.
        *_day(7, 6, [], [], fallback=None),
        _row(7, 300, "out_of_scope", 0.9, question="are you hiring?"),
        _row(7, 301, "out_of_scope", 0.9, question="can you recommend a dentist?"),
    ]
    with Session(engine) as session, session.begin():
        session.add_all(rows)


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
def report(engine: Engine, encoder: SentenceEncoder) -> DriftReport:
    return drift_report(load_turns(engine, WINDOW), WINDOW.days, POLICY, encoder)


def test_daily_shares(report: DriftReport) -> None:
    shares = [(d.day.day, d.turns, d.low_confidence_share, d.unknown_share) for d in report.days]
    assert shares == [
        (1, 10, 0.3, 0.1),
        (2, 11, 0.6364, 0.4545),
        (3, 10, 0.2, 0.0),
        (4, 20, 0.35, 0.2),
        (5, 3, 1.0, 1.0),
        (6, 0, None, None),
        (7, 8, 0.0, 0.25),
    ]


def test_alerts_fire_exactly_on_the_days_above_a_threshold(report: DriftReport) -> None:
    assert [(a.day, a.metric, a.value, a.threshold, a.turns) for a in report.alerts] == [
        (date(2026, 4, 2), "low_confidence", 0.6364, 0.35, 11),
        (date(2026, 4, 2), "unknown_intent", 0.4545, 0.20, 11),
        (date(2026, 4, 7), "unknown_intent", 0.25, 0.20, 8),
    ]
    assert report.alert_days == [date(2026, 4, 2), date(2026, 4, 7)]
    assert (report.unsure_below, report.low_confidence_threshold, report.unknown_threshold, report.min_turns) == (
        0.45,
        0.35,
        0.2,
        5,
    )


def test_a_lower_minimum_lets_a_quiet_day_alert(engine: Engine, encoder: SentenceEncoder) -> None:
    policy = DriftPolicy(min_turns=3)
    report = drift_report(load_turns(engine, WINDOW), WINDOW.days, policy, encoder)
    assert date(2026, 4, 5) in report.alert_days


def test_proposals_group_the_alert_days_questions_with_labels(report: DriftReport) -> None:
    groups = {group.label: group for group in report.proposals}
    gift = next(group for group in report.proposals if group.basis == "new_topic")
    assert gift.count == 4 and gift.representative in GIFT
    assert gift.label == f"new topic: {gift.representative}"
    assert {(e.text, e.lang) for e in gift.examples} == {(t, "zh" if "礼" in t else "en") for t in GIFT}
    # Answered with the classifier's guess, merely unsure: that guess is the proposal.
    trade_in = groups["exchange"]
    assert (trade_in.basis, trade_in.guess, trade_in.count) == ("classifier", "exchange", 2)
    assert {e.text for e in trade_in.examples} == set(TRADE_IN)
    # Stray questions the classifier could not place are proposed as out of scope.
    strays = [group for group in report.proposals if group.basis == "out_of_scope"]
    assert {e.text for group in strays for e in group.examples} == {
        "what's the weather tomorrow",
        "are you hiring?",
        "can you recommend a dentist?",
    }
    texts = {e.text for group in report.proposals for e in group.examples}
    # Only the alert days' flagged turns: not day 1's jokes, day 4's or day 5's gift cards, nor confident answers.
    assert not texts & {"tell me a joke", "gift card?", "gift card please", "where is my order", "hi"}
    assert report.proposals[0].count >= report.proposals[-1].count


def test_the_proposal_file_is_intent_training_jsonl(report: DriftReport, tmp_path: Path) -> None:
    path = tmp_path / "proposals.jsonl"
    count = write_proposals(report, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert count == len(lines) == len(proposal_lines(report)) == 4 + 2 + 3
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"text", "label", "lang"} and row["lang"] in ("zh", "en")
    assert "礼品卡怎么买" in path.read_text(encoding="utf-8")  # readable UTF-8, not \\u escapes
    # What `kefu intents train --data` reads.
    examples = load_examples([path])
    assert [(e.text, e.label, e.lang) for e in examples] == [
        (row["text"], row["label"], row["lang"]) for row in map(json.loads, lines)
    ]
    assert {e.label for e in examples} >= {"exchange", "out_of_scope"}


def test_no_alert_no_proposals(engine: Engine, encoder: SentenceEncoder) -> None:
    quiet = Window(date(2026, 4, 3), date(2026, 4, 7))
    report = drift_report(load_turns(engine, quiet), quiet.days, POLICY, encoder)
    assert report.alerts == [] and report.proposals == [] and proposal_lines(report) == []


def test_the_seeded_demo_store_drifts_in_its_last_days(
    make_database_url: Callable[..., str], encoder: SentenceEncoder
) -> None:
    from insights.turns import resolve_window

    engine = make_engine(make_database_url(seeded=True))
    window = resolve_window(engine)
    report = drift_report(load_turns(engine, window), window.days, POLICY, encoder)
    engine.dispose()
    assert report.alerts, "the demo history has a drift spike at the end"
    assert max(report.alert_days) == window.until - timedelta(days=1)
    assert any(group.basis == "new_topic" for group in report.proposals)
