"""Next best action on the seeded demo store and the real demo knowledge base."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.errors import NotFoundError
from core.settings import Settings
from core.store import SqlStore
from core.types import ConversationId, CustomerId, Lang, TicketKind
from knowledge import KnowledgeBase

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
