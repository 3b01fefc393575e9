"""Next best action on the seeded demo store and the real demo knowledge base."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.errors import NotFoundError
from core.settings import Settings
from core.store import SqlStore
from core.types import (
    Contribution,
    ConversationId,
    CustomerId,
    CustomerInsight,
    Lang,
    Prediction,
    TicketKind,
)
from knowledge import KnowledgeBase
from knowledge.nba import CHURN_RISK_THRESHOLD, REPURCHASE_FULL, REPURCHASE_THRESHOLD, SCORE_CEILING

NOW = datetime(2026, 11, 23, 12, 0)


@pytest.fixture
def kb(settings: Settings, store: SqlStore) -> KnowledgeBase:
    return KnowledgeBase.open(settings.kb_path, store.list_products(), doc_paths=())


def test_a_stated_need_gets_the_graphs_best_product_with_its_path(kb: KnowledgeBase, store: SqlStore) -> None:
    action = kb.next_best_action(store, CustomerId("C0002"), context="I have a cat that sheds everywhere")
    assert (action.action, action.product_id) == ("recommend_product", "HOM-001")
    assert "SUITS" in action.rationale and "Nestia X1" in action.rationale
    assert 0.5 < action.confidence <= 1.0


def test_an_open_complaint_comes_before_any_offer(kb: KnowledgeBase, store: SqlStore) -> None:
    store.open_ticket(CustomerId("C0002"), ConversationId("nba-1"), TicketKind.COMPLAINT, "parcel arrived broken", 3)
    action = kb.next_best_action(store, CustomerId("C0002"), context="I have a cat that sheds everywhere")
    assert action.action == "resolve_open_ticket" and action.product_id is None
    assert "parcel arrived broken" in action.rationale


def test_an_accessory_of_a_recent_purchase_in_the_customers_language(kb: KnowledgeBase, store: SqlStore) -> None:
    action = kb.next_best_action(store, CustomerId("C0017"), lang=Lang.ZH, now=NOW)
    assert (action.action, action.product_id) == ("recommend_accessory", "OUT-006")
    assert "ACCESSORY_OF" in action.rationale and "Trailo 折叠露营椅" in action.rationale


def test_nothing_to_do_is_said_plainly(kb: KnowledgeBase, store: SqlStore) -> None:
    action = kb.next_best_action(store, CustomerId("C0002"), now=NOW)
    assert (action.action, action.product_id, action.confidence) == ("none", None, 0.0)


def test_an_unknown_customer_is_an_error(kb: KnowledgeBase, store: SqlStore) -> None:
    with pytest.raises(NotFoundError):
        kb.next_best_action(store, CustomerId("C9999"))


def _insight(customer: str, churn: float, repurchase: float) -> CustomerInsight:
    """Scores as ``insights.profile.Insights`` hands them over, with made-up contributions."""

    def prediction(target: str, score: float) -> Prediction:
        return Prediction(
            target=target,
            score=score,
            contributions=[
                Contribution(feature="recency_days", value=94.0, effect=0.83),
                Contribution(feature="tier", value=0.0, effect=-0.4),
                Contribution(feature="purchase_intent_7d", value=1.0, effect=0.52),
            ],
            model_version=f"{target}-test",
        )

    return CustomerInsight(
        customer_id=CustomerId(customer),
        at=NOW,
        features={},
        rfm="R1F2M3",
        segment="at_risk",
        churn=prediction("churn_30d", churn),
        repurchase=prediction("repurchase_3d", repurchase),
    )


def test_a_high_churn_risk_proposes_a_retention_offer_to_any_tier(kb: KnowledgeBase, store: SqlStore) -> None:
    customer = store.get_customer(CustomerId("C0017"))
    assert customer is not None and customer.tier.value in ("standard", "silver")
    insight = _insight("C0017", churn=0.97, repurchase=0.01)
    action = kb.next_best_action(store, CustomerId("C0017"), lang=Lang.EN, now=NOW, insight=insight)
    assert action.action == "retention_offer" and action.product_id is None
    assert action.drivers == ["churn_30d=0.97", "recency_days=94 (+0.83)", "purchase_intent_7d=1 (+0.52)"]
    assert action.scores == {"churn_30d": 0.97, "repurchase_3d": 0.01}
    assert "churn risk 0.97" in action.rationale and "recency_days=94 (+0.83)" in action.rationale
    expected = 0.5 + (SCORE_CEILING - 0.5) * (0.97 - CHURN_RISK_THRESHOLD) / (1 - CHURN_RISK_THRESHOLD)
    assert action.confidence == pytest.approx(expected, abs=1e-3)
    zh = kb.next_best_action(store, CustomerId("C0017"), lang=Lang.ZH, now=NOW, insight=insight)
    assert zh.rationale.startswith("流失风险 0.97")


def test_below_the_thresholds_the_scores_change_nothing_but_are_reported(kb: KnowledgeBase, store: SqlStore) -> None:
    insight = _insight("C0002", churn=CHURN_RISK_THRESHOLD - 0.01, repurchase=REPURCHASE_THRESHOLD - 0.01)
    action = kb.next_best_action(store, CustomerId("C0002"), now=NOW, insight=insight)
    assert (action.action, action.product_id, action.confidence) == ("none", None, 0.0)
    assert set(action.scores) == {"churn_30d", "repurchase_3d"} and action.drivers[0].startswith("churn_30d=")


def test_a_high_repurchase_score_proposes_what_they_usually_buy(kb: KnowledgeBase, store: SqlStore) -> None:
    insight = _insight("C0002", churn=0.3, repurchase=0.4)
    action = kb.next_best_action(store, CustomerId("C0002"), lang=Lang.EN, now=NOW, insight=insight)
    assert action.action in ("recommend_accessory", "recommend_product") and action.product_id
    owned = {item.sku for order in store.list_orders(CustomerId("C0002"), limit=50) for item in order.items}
    assert action.product_id not in owned
    assert action.drivers[:2] == ["repurchase_3d=0.40", "recency_days=94 (+0.83)"]
    path = action.drivers[-1]
    assert "←" in path
    assert path in action.rationale or path == f"{path.split(' ← ')[0]} ← ACCESSORY_OF ← {action.product_id}"
    assert "repurchase propensity 0.40" in action.rationale
    strength = 0.4 / REPURCHASE_FULL
    assert 0 < action.confidence <= round(SCORE_CEILING * strength**0.5, 3)  # graph confidence ≤ 1


def test_a_likely_buyer_gets_an_offer_where_the_plain_rules_see_nothing(kb: KnowledgeBase, store: SqlStore) -> None:
    later = NOW.replace(year=NOW.year + 1)  # every purchase is older than the plain accessory rule looks
    plain = kb.next_best_action(store, CustomerId("C0017"), lang=Lang.ZH, now=later)
    assert plain.action == "none"
    insight = _insight("C0017", churn=0.2, repurchase=0.5)
    action = kb.next_best_action(store, CustomerId("C0017"), lang=Lang.ZH, now=later, insight=insight)
    assert action.action in ("recommend_accessory", "recommend_product") and action.product_id
    owned = {item.sku for order in store.list_orders(CustomerId("C0017"), limit=50) for item in order.items}
    assert action.product_id not in owned
    assert action.rationale.startswith("3 天内复购可能 0.50") and "←" in action.drivers[-1]


def test_an_open_ticket_still_comes_before_a_score_driven_offer(kb: KnowledgeBase, store: SqlStore) -> None:
    store.open_ticket(CustomerId("C0017"), ConversationId("nba-2"), TicketKind.RETURN, "wrong size", 2)
    insight = _insight("C0017", churn=1.0, repurchase=0.9)
    action = kb.next_best_action(store, CustomerId("C0017"), now=NOW, insight=insight)
    assert action.action == "resolve_open_ticket"
    assert action.drivers[0].startswith("ticket #") and action.scores["churn_30d"] == 1.0
