"""Built-in tools, run the way the graph runs them: through a ToolNode with the session's context."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from core.context import SupportContext
from core.ports import KnowledgePort
from core.settings import Settings
from core.store import SqlStore
from core.types import (
    Channel,
    Contribution,
    ConversationId,
    CustomerId,
    CustomerInsight,
    OrderStatus,
    Prediction,
    TicketKind,
)
from knowledge import KnowledgeBase
from tools import BUILTIN_TOOLS, ToolError, ToolRegistry, explain

SNAPSHOT = Path(__file__).with_name("tool_schemas.json")


def run_tool(
    store: SqlStore,
    customer: str,
    name: str,
    args: dict[str, Any],
    conversation: str = "t-1",
    knowledge: KnowledgePort | None = None,
    insight: CustomerInsight | None = None,
) -> ToolMessage:
    graph = StateGraph(MessagesState, context_schema=SupportContext)
    graph.add_node("act", ToolNode(list(BUILTIN_TOOLS), handle_tool_errors=explain))
    graph.add_edge(START, "act")
    call = ToolCall(name=name, args=args, id="call-1", type="tool_call")
    context = SupportContext(
        CustomerId(customer), ConversationId(conversation), Channel.WEB, store, knowledge=knowledge, insight=insight
    )
    result = graph.compile().invoke({"messages": [AIMessage("", tool_calls=[call])]}, context=context)
    message = result["messages"][-1]
    assert isinstance(message, ToolMessage)
    return message


def test_lookup_order_returns_the_customers_order(store: SqlStore) -> None:
    order = store.list_orders(CustomerId("C0002"), limit=1)[0]
    message = run_tool(store, "C0002", "lookup_order", {"order_id": order.id.lower()})
    assert message.status == "success"
    assert message.artifact["id"] == order.id
    assert message.artifact["status"] == order.status.value
    assert json.loads(message.text)["id"] == order.id


def test_a_customer_cannot_read_another_customers_order(store: SqlStore) -> None:
    foreign = store.list_orders(CustomerId("C0002"), limit=1)[0]
    message = run_tool(store, "C0001", "lookup_order", {"order_id": foreign.id})
    missing = run_tool(store, "C0001", "lookup_order", {"order_id": "KF999999"})
    assert message.status == "error"
    assert foreign.status.value not in message.text
    assert str(foreign.total) not in message.text
    # A foreign order reads exactly like a missing one.
    assert message.text.replace(foreign.id, "X") == missing.text.replace("KF999999", "X")


def test_tools_take_the_customer_from_the_session_not_from_arguments(store: SqlStore) -> None:
    message = run_tool(store, "C0001", "list_recent_orders", {"limit": 10, "customer_id": "C0002"})
    assert message.status == "success"
    assert {order["customer_id"] for order in message.artifact["orders"]} == {"C0001"}
    schemas = {tool.name: tool.tool_call_schema.model_json_schema() for tool in BUILTIN_TOOLS}
    assert all("customer_id" not in schema.get("properties", {}) for schema in schemas.values())
    assert all("runtime" not in schema.get("properties", {}) for schema in schemas.values())


def test_list_recent_orders_is_newest_first_and_bounded(store: SqlStore) -> None:
    message = run_tool(store, "C0001", "list_recent_orders", {"limit": 50})
    dates = [order["created_at"] for order in message.artifact["orders"]]
    assert 0 < len(dates) <= 10
    assert dates == sorted(dates, reverse=True)


def test_customer_profile_is_a_360_view_without_contact_details(store: SqlStore) -> None:
    message = run_tool(store, "C0001", "get_customer_profile", {})
    profile = message.artifact
    assert profile["customer"]["id"] == "C0001"
    assert profile["customer"]["tier"] == "vip"
    assert profile["order_count"] >= 5
    assert profile["lifetime_value"] > 0
    assert profile["recent_orders"]
    assert not {"name", "email", "phone", "city"} & set(profile["customer"]), "personal data stays out"
    assert "insight" not in profile, "no insight in the context, none in the profile"
    customer = store.get_customer(CustomerId("C0001"))
    assert customer is not None
    for secret in (customer.name, customer.email, customer.phone, customer.city):
        assert secret not in message.text


def test_customer_profile_carries_the_segment_and_rounded_scores_from_the_context(store: SqlStore) -> None:
    def prediction(target: str, score: float) -> Prediction:
        contributions = [
            Contribution(feature=name, value=value, effect=effect)
            for name, value, effect in (
                ("recency_days", 212.0, 1.4),
                ("orders_90d", 0.0, 0.8),
                ("complaints_90d", 2.0, 0.3),
                ("return_rate", 0.5, 0.1),
            )
        ]
        return Prediction(target=target, score=score, contributions=contributions, model_version="gb-test")

    insight = CustomerInsight(
        customer_id=CustomerId("C0001"),
        at=datetime(2026, 11, 1, 12),
        features={"recency_days": 212.0, "monetary_365d": 18999.0},
        rfm="R1F4M5",
        segment="at_risk",
        churn=prediction("churn_30d", 0.8765),
        repurchase=prediction("repurchase_3d", 0.0123),
    )
    message = run_tool(store, "C0001", "get_customer_profile", {}, insight=insight)
    assert message.status == "success"
    facts = message.artifact["insight"]
    assert facts == {
        "segment": "at_risk",
        "rfm": "R1F4M5",
        "churn_30d": {"score": 0.88, "drivers": ["recency_days", "orders_90d", "complaints_90d"]},
        "repurchase_3d": {"score": 0.01, "drivers": ["recency_days", "orders_90d", "complaints_90d"]},
    }
    assert json.loads(message.text)["insight"] == facts, "the model reads what the artifact holds"
    assert "18999" not in message.text, "feature values stay out; only the drivers' names go in"
    assert not {"name", "email", "phone", "city"} & set(message.artifact["customer"])

    untrained = insight.model_copy(update={"churn": None, "repurchase": None, "segment": None})
    bare = run_tool(store, "C0001", "get_customer_profile", {}, insight=untrained)
    assert bare.artifact["insight"] == {"segment": None, "rfm": "R1F4M5"}


def test_open_ticket_is_idempotent_per_conversation(store: SqlStore) -> None:
    first = run_tool(store, "C0002", "open_ticket", {"subject": "Broken strap", "kind": "complaint"}, "conv-a")
    again = run_tool(store, "C0002", "open_ticket", {"subject": "Broken strap", "kind": "complaint"}, "conv-a")
    other = run_tool(store, "C0002", "open_ticket", {"subject": "Broken strap", "kind": "complaint"}, "conv-b")
    assert first.artifact["id"] == again.artifact["id"] != other.artifact["id"]
    assert first.artifact["kind"] == TicketKind.COMPLAINT
    assert store.customer_profile(CustomerId("C0002")).open_tickets  # type: ignore[union-attr]


def test_request_human_opens_a_priority_handoff_ticket_for_vips(store: SqlStore) -> None:
    vip = run_tool(store, "C0001", "request_human", {"reason": "help"}, "conv-v")
    standard = next(
        c for c in ("C0010", "C0011", "C0012", "C0013") if store.get_customer(CustomerId(c)).tier == "standard"
    )  # type: ignore[union-attr]
    other = run_tool(store, standard, "request_human", {"reason": "help"}, "conv-s")
    assert vip.artifact["kind"] == "handoff"
    assert vip.artifact["priority"] < other.artifact["priority"]


def test_search_products_finds_by_feature_and_scenario_in_both_languages(store: SqlStore) -> None:
    english = run_tool(store, "C0001", "search_products", {"query": "noise cancelling headphones"})
    chinese = run_tool(store, "C0001", "search_products", {"query": "适合跑步的耳机"})
    assert english.artifact["products"]
    assert chinese.artifact["products"]
    assert any("跑步" in " ".join(p["scenarios_zh"] + [p["name_zh"]]) for p in chinese.artifact["products"])


def test_invalid_arguments_reach_the_model_as_an_error_message(store: SqlStore) -> None:
    message = run_tool(store, "C0001", "open_ticket", {"subject": "x", "kind": "bogus"})
    assert message.status == "error"


def test_explain_hides_internal_errors() -> None:
    assert explain(ToolError("No order KF1")) == "Error: No order KF1"
    assert "internal" in explain(RuntimeError("database password is hunter2"))
    assert "hunter2" not in explain(RuntimeError("database password is hunter2"))


def test_registry_refuses_duplicate_names() -> None:
    registry = ToolRegistry()
    assert registry.names[0] == "lookup_order"
    with pytest.raises(ValueError, match="already registered"):
        registry.add(BUILTIN_TOOLS[0])


def test_tool_schemas_match_the_snapshot() -> None:
    """The JSON schemas the model sees are part of the API: changing one must be deliberate.

    Regenerate with ``KEFU_UPDATE_SNAPSHOTS=1 pytest tests/tools``.
    """
    import os

    current = {tool.name: tool.tool_call_schema.model_json_schema() for tool in BUILTIN_TOOLS}
    if os.environ.get("KEFU_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert current == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_order_status_values_are_what_the_store_uses(store: SqlStore) -> None:
    statuses = {o.status for o in store.list_orders(CustomerId("C0001"), limit=50)}
    assert statuses <= set(OrderStatus)


def test_update_contact_changes_the_crm_record(store: SqlStore) -> None:
    message = run_tool(store, "C0002", "update_contact", {"phone": "+44 7700 900123", "email": "emma.new@example.com"})
    assert message.status == "success"
    assert message.artifact["updated"] == ["phone", "email"]
    customer = store.get_customer(CustomerId("C0002"))
    assert customer is not None and (customer.phone, customer.email) == ("+44 7700 900123", "emma.new@example.com")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({}, "Give the new phone number or e-mail address"),
        ({"phone": "<CN_MOBILE_3>"}, "That is not a phone number"),
        ({"phone": "12"}, "That is not a phone number"),
        ({"email": "not-an-address"}, "That is not an e-mail address"),
    ],
)
def test_update_contact_refuses_what_is_not_a_contact(store: SqlStore, args: dict[str, Any], reason: str) -> None:
    before = store.get_customer(CustomerId("C0002"))
    message = run_tool(store, "C0002", "update_contact", args)
    assert message.status == "error" and reason in message.text
    assert store.get_customer(CustomerId("C0002")) == before


def test_update_contact_will_not_take_another_customers_email(store: SqlStore) -> None:
    other = store.get_customer(CustomerId("C0001"))
    assert other is not None
    message = run_tool(store, "C0002", "update_contact", {"email": other.email.upper()})
    assert message.status == "error" and "belongs to another account" in message.text
    assert other.email not in message.text


def test_knowledge_tools_say_when_the_knowledge_base_is_missing(store: SqlStore) -> None:
    message = run_tool(store, "C0002", "search_knowledge", {"query": "return policy"})
    assert message.status == "error"
    assert "knowledge base is not available" in message.text


def test_compare_products_rejects_an_unknown_product_by_name(store: SqlStore) -> None:
    message = run_tool(store, "C0002", "compare_products", {"products": ["AUD-001", "Flux Capacitor"]})
    assert message.status == "error"
    assert "Flux Capacitor" in message.text


@pytest.fixture
def kb(settings: Settings, store: SqlStore) -> KnowledgeBase:
    return KnowledgeBase.open(settings.kb_path, store.list_products(), doc_paths=())


def test_search_knowledge_returns_passages_with_sources_and_scores(store: SqlStore, kb: KnowledgeBase) -> None:
    message = run_tool(store, "C0002", "search_knowledge", {"query": "Do you ship to Hong Kong?"}, knowledge=kb)
    passages = message.artifact["passages"]
    assert 1 <= len(passages) <= 3
    assert set(passages[0]) == {"id", "source", "title", "text", "score"}
    assert message.artifact["best_score"] == passages[0]["score"] > 0.3
    assert "Hong Kong" in passages[0]["text"] and passages[0]["id"].startswith(passages[0]["source"] + "#")


def test_recommend_products_leaves_out_what_the_customer_bought(store: SqlStore, kb: KnowledgeBase) -> None:
    need = {"need": "家里有猫，掉毛严重"}
    mine = run_tool(store, "C0001", "recommend_products", need, knowledge=kb)  # 王芳 owns the X1
    theirs = run_tool(store, "C0002", "recommend_products", need, knowledge=kb)
    assert theirs.artifact["recommendations"][0]["sku"] == "HOM-001"
    assert "HOM-001" not in {item["sku"] for item in mine.artifact["recommendations"]}
    assert all("←" in item["rationale"] for item in theirs.artifact["recommendations"])


def test_compare_products_by_name_or_sku(store: SqlStore, kb: KnowledgeBase) -> None:
    message = run_tool(
        store, "C0002", "compare_products", {"products": ["Lumo Air Pro ANC Earbuds", "aud-003"]}, knowledge=kb
    )
    assert message.status == "success", message.text
    assert message.artifact["skus"] == ["AUD-001", "AUD-003"]
    assert "active noise cancelling" in message.artifact["shared_features"]


def test_open_ticket_refuses_another_customers_order_number(store: SqlStore) -> None:
    own = run_tool(store, "C0001", "open_ticket", {"subject": "Strap broken on KF100268", "kind": "complaint"}, "t-own")
    assert own.status != "error" and own.artifact["subject"] == "Strap broken on KF100268"
    before = len(store.customer_profile(CustomerId("C0001")).open_tickets)  # type: ignore[union-attr]
    for subject in ("Cancel kf100001 please", "Refund KF999999"):  # C0011's order; nobody's order
        refused = run_tool(store, "C0001", "open_ticket", {"subject": subject, "kind": "return"}, "t-other")
        assert refused.status == "error"
        assert "No order" in str(refused.content) and "C0011" not in str(refused.content)
    assert len(store.customer_profile(CustomerId("C0001")).open_tickets) == before  # type: ignore[union-attr]
