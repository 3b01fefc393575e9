"""Customer features: computed only from rows before the cutoff, with the values a hand count gives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, delete, insert
from sqlalchemy.orm import Session

from core.db import ConversationLogRow, CustomerRow, OrderItemRow, OrderRow, TicketRow, make_engine
from core.seed import REFERENCE_DATE
from insights.features import FEATURES, NEVER_DAYS, NO_RATING, build_features, features_at
from insights.timeline import History

AT = REFERENCE_DATE - timedelta(days=60)
"""A cutoff inside the demo history, with orders and conversations on both sides."""
NEW = "C9001"
"""A customer this module adds, with a history small enough to count by hand."""


@pytest.fixture(scope="module")
def engine(make_database_url: Callable[..., str]) -> Iterator[Engine]:
    """A private copy of the seeded demo store, plus one hand-made customer."""
    engine = make_engine(make_database_url(seeded=True))
    _add_hand_made_customer(engine)
    yield engine
    engine.dispose()


def _add_hand_made_customer(engine: Engine) -> None:
    day = timedelta(days=1)
    orders = [
        # (id, created, updated, status, total)
        ("KF9001", AT - 100 * day, AT - 90 * day, "delivered", 300.0),
        ("KF9002", AT - 40 * day, AT - 30 * day, "returned", 200.0),
        ("KF9003", AT - 10 * day, AT - 9 * day, "delivered", 500.0),
        ("KF9004", AT - 5 * day, AT - 4 * day, "cancelled", 80.0),
        ("KF9005", AT - 2 * day, AT + 3 * day, "cancelled", 60.0),  # cancelled only after AT: still placed at AT
    ]
    conversations = [
        # (id, channel, last_at, turns, intents, negative, handoff, close, rating)
        ("h-1", "app", AT - 3 * day, 4, {"product_inquiry": 2, "purchase": 1}, 0, None, True, 5),
        ("h-2", "wechat", AT - 20 * day, 5, {"complaint": 3}, 3, "customer asked for a human", False, 1),
        ("h-3", "app", AT - 200 * day, 2, {"return_refund": 2}, 0, None, False, None),
    ]
    with Session(engine) as session, session.begin():
        session.execute(
            insert(CustomerRow),
            [
                {
                    "id": NEW,
                    "name": "Hand Made",
                    "email": "hand.made@example.com",
                    "phone": "+1 202 555 0100",
                    "tier": "gold",
                    "lang": "en",
                    "city": "London",
                    "created_at": AT - 400 * day,
                }
            ],
        )
        for order_id, created, updated, status, total in orders:
            session.execute(
                insert(OrderRow),
                [{"id": order_id, "customer_id": NEW, "status": status, "created_at": created,
                  "updated_at": updated, "total": total, "carrier": None, "tracking_number": None,
                  "estimated_delivery": None}],
            )  # fmt: skip
            session.execute(insert(OrderItemRow), [{"order_id": order_id, "sku": "AUD-001", "quantity": 1,
                                                    "unit_price": total}])  # fmt: skip
        session.execute(
            insert(TicketRow),
            [{"customer_id": NEW, "conversation_id": "h-2", "kind": "complaint", "status": "open", "priority": 2,
              "subject": "late", "created_at": AT - 20 * day}],
        )  # fmt: skip
        for conversation_id, channel, last_at, turns, intents, negative, handoff, close, rating in conversations:
            session.execute(
                insert(ConversationLogRow),
                [{"conversation_id": conversation_id, "customer_id": NEW, "channel": channel, "lang": "en",
                  "started_at": last_at - timedelta(minutes=5), "last_at": last_at, "turns": turns,
                  "intents": intents, "negative_turns": negative, "fallback_turns": 0, "handoff_reason": handoff,
                  "reached_close_deal": close, "satisfaction": rating, "variant": None, "seeded": False}],
            )  # fmt: skip


def test_features_are_a_stable_ordered_tuple() -> None:
    assert len(FEATURES) == len(set(FEATURES))
    assert FEATURES[0] == "recency_days" and "satisfaction_mean" in FEATURES


def test_hand_made_customer_has_the_values_counted_by_hand(engine: Engine) -> None:
    row = build_features(engine, AT).row(NEW)
    assert row is not None
    placed = 4  # KF9004 was cancelled before AT; KF9005's cancellation came after it
    assert row["orders_lifetime"] == placed
    assert row["recency_days"] == pytest.approx(2.0)
    assert row["orders_30d"] == 2 and row["orders_90d"] == 3 and row["orders_365d"] == placed
    assert row["monetary_365d"] == pytest.approx(300 + 500 + 60)  # the returned order is not spend
    assert row["avg_order_value"] == pytest.approx((300 + 500 + 60) / 3)
    assert row["return_rate"] == pytest.approx(1 / placed)
    assert row["cancel_rate"] == pytest.approx(1 / 5)
    assert row["tenure_days"] == pytest.approx(400.0)
    assert row["mean_gap_days"] == pytest.approx((100 - 2) / (placed - 1))
    assert row["overdue_ratio"] == pytest.approx(2.0 / ((100 - 2) / 3), abs=1e-6)  # stored to 6 places
    assert row["tier"] == 2.0 and row["categories_365d"] == 1
    assert row["complaint_tickets_90d"] == 1
    assert row["conversations_30d"] == 2 and row["conversations_90d"] == 2
    assert row["negative_turn_share_90d"] == pytest.approx(3 / 9)
    assert row["handoffs_90d"] == 1 and row["complaint_conversations_90d"] == 1
    assert row["complaint_conversations_30d"] == 1 and row["days_since_complaint"] == pytest.approx(20.0)
    assert row["purchase_intent_7d"] == 1 and row["close_deal_30d"] == 1
    assert row["days_since_last_conversation"] == pytest.approx(3.0)
    assert row["satisfaction_mean"] == pytest.approx(3.0)  # the unrated conversation does not count
    assert row["share_app"] == pytest.approx(2 / 3) and row["share_wechat"] == pytest.approx(1 / 3)
    assert row["share_web"] == 0.0


def test_missing_values_are_explicit(engine: Engine) -> None:
    early = AT - timedelta(days=390)  # the hand-made customer exists, nothing else of theirs yet
    row = build_features(engine, early).row(NEW)
    assert row is not None
    assert row["orders_lifetime"] == 0
    assert row["recency_days"] == pytest.approx(10.0) == row["tenure_days"] == row["mean_gap_days"]
    assert row["days_since_last_conversation"] == NEVER_DAYS and row["days_since_complaint"] == NEVER_DAYS
    assert row["satisfaction_mean"] == NO_RATING


def test_customers_who_join_later_are_left_out(engine: Engine) -> None:
    table = build_features(engine, AT - timedelta(days=500))
    assert NEW not in table.customer_ids and table.row(NEW) is None
    assert list(table.customer_ids) == sorted(table.customer_ids)
    assert table.values.shape == (len(table.customer_ids), len(FEATURES))


def test_rows_at_or_after_the_cutoff_change_nothing(engine: Engine) -> None:
    before = build_features(engine, AT)
    from_history = features_at(History.load(engine), AT)
    np.testing.assert_array_equal(before.values, from_history.values)
    later = {"created_at": AT, "updated_at": AT + timedelta(days=1)}
    with Session(engine) as session, session.begin():
        session.execute(
            insert(OrderRow),
            [{"id": "KF9100", "customer_id": NEW, "status": "delivered", "total": 999.0, "carrier": None,
              "tracking_number": None, "estimated_delivery": None, **later}],
        )  # fmt: skip
        session.execute(insert(OrderItemRow), [{"order_id": "KF9100", "sku": "CMP-001", "quantity": 1,
                                                "unit_price": 999.0}])  # fmt: skip
        session.execute(
            insert(TicketRow),
            [{"customer_id": "C0002", "conversation_id": None, "kind": "complaint", "status": "open",
              "priority": 1, "subject": "x", "created_at": AT}],
        )  # fmt: skip
        session.execute(
            insert(ConversationLogRow),
            [{"conversation_id": "late-1", "customer_id": "C0002", "channel": "web", "lang": "en",
              "started_at": AT - timedelta(minutes=1), "last_at": AT + timedelta(minutes=1), "turns": 3,
              "intents": {"purchase": 3}, "negative_turns": 2, "fallback_turns": 0, "handoff_reason": "angry",
              "reached_close_deal": True, "satisfaction": 1, "variant": None, "seeded": False}],
        )  # fmt: skip
        session.execute(
            insert(CustomerRow),
            [{"id": "C9002", "name": "Late Comer", "email": "late@example.com", "phone": "+1 202 555 0101",
              "tier": "vip", "lang": "en", "city": "Paris", "created_at": AT}],
        )  # fmt: skip
    try:
        after = build_features(engine, AT)
        np.testing.assert_array_equal(before.values, after.values)
        assert before.customer_ids == after.customer_ids
        np.testing.assert_array_equal(features_at(History.load(engine), AT).values, before.values)
        assert build_features(engine, AT + timedelta(days=1)).row(NEW) != before.row(NEW)  # and it is seen later
    finally:
        with Session(engine) as session, session.begin():
            session.execute(delete(OrderItemRow).where(OrderItemRow.order_id == "KF9100"))
            session.execute(delete(OrderRow).where(OrderRow.id == "KF9100"))
            session.execute(delete(TicketRow).where(TicketRow.created_at == AT))
            session.execute(delete(ConversationLogRow).where(ConversationLogRow.conversation_id == "late-1"))
            session.execute(delete(CustomerRow).where(CustomerRow.id == "C9002"))


def test_the_whole_store_at_the_reference_date(engine: Engine) -> None:
    history = History.load(engine)
    table = features_at(history, REFERENCE_DATE)
    assert len(table.customer_ids) == 221  # the demo's 220 and the hand-made one
    assert np.isfinite(table.values).all()
    assert (table.column("orders_lifetime") >= table.column("orders_365d")).all()
    assert (table.column("orders_365d") >= table.column("orders_90d")).all()
    assert ((table.column("return_rate") >= 0) & (table.column("return_rate") <= 1)).all()
    shares = table.column("share_web") + table.column("share_app") + table.column("share_wechat")
    talked = table.column("days_since_last_conversation") < NEVER_DAYS
    assert np.allclose(shares[talked & (table.column("conversations_90d") > 0)], 1.0, atol=1e-5)
    assert history.latest_datetime() <= REFERENCE_DATE
