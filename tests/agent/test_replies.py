"""Rule-based replies in ``agent.replies``, built from real demo-store artifacts."""

# Chinese expectations use full-width punctuation, as the replies do.

from __future__ import annotations

from typing import Any

import pytest

from agent.machine import Intent
from agent.replies import STATUS_LABELS, clarify, compose, handoff_waiting, order_fact, status_label
from core.seed import DEMO_CUSTOMER_EN, DEMO_CUSTOMER_ZH
from core.store import SqlStore
from core.types import CustomerId, Lang, Order, OrderStatus, TicketKind

BOTH = (Lang.EN, Lang.ZH)


def _order(store: SqlStore, status: OrderStatus, customer: str = DEMO_CUSTOMER_ZH) -> Order:
    return next(order for order in store.list_orders(CustomerId(customer), limit=20) if order.status is status)


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _artifact(store: SqlStore, status: OrderStatus, customer: str = DEMO_CUSTOMER_ZH) -> dict[str, Any]:
    return _order(store, status, customer).model_dump(mode="json")


# ------------------------------------------------------------------------------------- status labels


def test_every_status_has_a_distinct_label_in_both_languages() -> None:
    assert set(STATUS_LABELS) == set(OrderStatus)
    for lang in BOTH:
        labels = [status_label(status.value, lang) for status in OrderStatus]
        assert all(labels)
        assert len(set(labels)) == len(labels)


def test_status_label_examples() -> None:
    assert status_label("shipped", Lang.EN) == "shipped"
    assert status_label("shipped", Lang.ZH) == "已发货"
    assert status_label("delivered", Lang.ZH) == "已签收"
    assert status_label("return_requested", Lang.EN) == "return requested"


def test_status_label_rejects_unknown_statuses() -> None:
    with pytest.raises(ValueError):
        status_label("teleported", Lang.EN)


# ------------------------------------------------------------------------------------- order_fact


def test_order_fact_for_a_shipped_order_in_english(store: SqlStore) -> None:
    order = _order(store, OrderStatus.SHIPPED)
    assert order.carrier and order.tracking_number and order.estimated_delivery
    fact = order_fact(order.model_dump(mode="json"), Lang.EN)
    eta = order.estimated_delivery.date().isoformat()
    assert fact == (
        f"Order {order.id} is shipped, carrier {order.carrier}, tracking number {order.tracking_number}, "
        f"estimated delivery {eta}."
    )


def test_order_fact_for_a_shipped_order_in_chinese(store: SqlStore) -> None:
    order = _order(store, OrderStatus.SHIPPED)
    assert order.carrier and order.tracking_number and order.estimated_delivery
    fact = order_fact(order.model_dump(mode="json"), Lang.ZH)
    eta = order.estimated_delivery.date().isoformat()
    assert fact == (
        f"订单 {order.id} 当前状态：已发货，承运商 {order.carrier}，运单号 {order.tracking_number}，预计 {eta} 送达。"
    )


@pytest.mark.parametrize("lang", BOTH)
def test_order_fact_for_the_english_demo_customer(store: SqlStore, lang: Lang) -> None:
    order = _order(store, OrderStatus.SHIPPED, DEMO_CUSTOMER_EN)
    fact = order_fact(order.model_dump(mode="json"), lang)
    for part in (order.id, order.carrier, order.tracking_number, status_label("shipped", lang)):
        assert part and part in fact


@pytest.mark.parametrize("lang", BOTH)
def test_order_fact_for_a_delivered_order_has_no_eta(store: SqlStore, lang: Lang) -> None:
    order = _order(store, OrderStatus.DELIVERED)
    assert order.estimated_delivery is not None
    fact = order_fact(order.model_dump(mode="json"), lang)
    assert order.id in fact
    assert status_label("delivered", lang) in fact
    assert order.tracking_number and order.tracking_number in fact
    assert order.estimated_delivery.date().isoformat() not in fact


@pytest.mark.parametrize("lang", BOTH)
def test_order_fact_for_an_unshipped_order_has_no_carrier(store: SqlStore, lang: Lang) -> None:
    order = _order(store, OrderStatus.PAID)
    assert order.carrier is None
    fact = order_fact(order.model_dump(mode="json"), lang)
    assert fact.startswith("订单 " if lang is Lang.ZH else "Order ")
    assert order.id in fact
    assert status_label("paid", lang) in fact
    assert "承运商" not in fact
    assert "carrier" not in fact


def test_order_fact_for_a_paid_order_with_a_promised_date() -> None:
    order = {"id": "KF999001", "status": "paid", "carrier": None, "estimated_delivery": "2026-11-08T18:00:00"}
    assert order_fact(order, Lang.EN) == "Order KF999001 is paid, being prepared, estimated delivery 2026-11-08."
    assert order_fact(order, Lang.ZH) == "订单 KF999001 当前状态：已付款，备货中，预计 2026-11-08 送达。"


# ------------------------------------------------------------------------------------- clarify, handoff


@pytest.mark.parametrize("lang", BOTH)
def test_second_clarification_asks_differently(lang: Lang) -> None:
    first, second = clarify(1, lang), clarify(2, lang)
    assert first and second
    assert first != second
    assert clarify(0, lang) == first
    assert clarify(3, lang) == second


def test_clarify_speaks_the_customers_language() -> None:
    assert _has_cjk(clarify(1, Lang.ZH))
    assert _has_cjk(clarify(2, Lang.ZH))
    assert not _has_cjk(clarify(1, Lang.EN))
    assert not _has_cjk(clarify(2, Lang.EN))
    assert clarify(1, Lang.EN) != clarify(1, Lang.ZH)


def test_handoff_waiting_in_both_languages() -> None:
    assert "human" in handoff_waiting(Lang.EN)
    assert "人工" in handoff_waiting(Lang.ZH)


# ------------------------------------------------------------------------------------- compose: artifacts


@pytest.mark.parametrize("lang", BOTH)
def test_compose_lookup_order(store: SqlStore, lang: Lang) -> None:
    artifact = _artifact(store, OrderStatus.SHIPPED)
    reply = compose(Intent.ORDER_STATUS, [("lookup_order", artifact, None)], lang)
    assert reply == order_fact(artifact, lang)


@pytest.mark.parametrize("lang", BOTH)
def test_compose_list_recent_orders(store: SqlStore, lang: Lang) -> None:
    orders = store.list_orders(CustomerId(DEMO_CUSTOMER_ZH), limit=3)
    assert len(orders) == 3
    artifact = {"orders": [order.model_dump(mode="json") for order in orders]}
    lines = compose(Intent.ORDER_STATUS, [("list_recent_orders", artifact, None)], lang).splitlines()
    assert lines[0] == ("您最近的订单：" if lang is Lang.ZH else "Your most recent orders:")
    assert lines[1:] == [f"- {order_fact(order, lang)}" for order in artifact["orders"]]


@pytest.mark.parametrize(
    ("lang", "expected"),
    [(Lang.EN, "I can't find any orders on your account."), (Lang.ZH, "您的账户下暂时没有订单。")],
)
def test_compose_list_recent_orders_empty(lang: Lang, expected: str) -> None:
    assert compose(Intent.ORDER_STATUS, [("list_recent_orders", {"orders": []}, None)], lang) == expected


def test_compose_search_products_in_english(store: SqlStore) -> None:
    products = store.search_products("earbuds")
    assert any(p.stock > 0 for p in products)
    assert any(p.stock == 0 for p in products)
    artifact = {"products": [p.model_dump(mode="json") for p in products]}
    lines = compose(Intent.PRODUCT_RECOMMENDATION, [("search_products", artifact, None)], Lang.EN).splitlines()
    assert lines[0] == "Here is what I found:"
    assert len(lines) == 1 + len(products)
    for line, product in zip(lines[1:], products, strict=True):
        stock = "in stock" if product.stock > 0 else "out of stock"
        assert line == f"- {product.name_en} (¥{product.price:.2f}, {stock}): {', '.join(product.features_en[:3])}"


def test_compose_search_products_in_chinese(store: SqlStore) -> None:
    products = store.search_products("耳机")
    assert products
    artifact = {"products": [p.model_dump(mode="json") for p in products]}
    lines = compose(Intent.PRODUCT_RECOMMENDATION, [("search_products", artifact, None)], Lang.ZH).splitlines()
    assert lines[0] == "为您找到以下商品："
    assert len(lines) == 1 + len(products)
    for line, product in zip(lines[1:], products, strict=True):
        stock = "有货" if product.stock > 0 else "暂时缺货"
        assert line == f"- {product.name_zh}（¥{product.price:.2f}，{stock}）：{'、'.join(product.features_zh[:3])}"


@pytest.mark.parametrize("lang", BOTH)
def test_compose_search_products_empty(store: SqlStore, lang: Lang) -> None:
    assert store.search_products("zzqqxx") == []
    reply = compose(Intent.PRODUCT_RECOMMENDATION, [("search_products", {"products": []}, None)], lang)
    assert reply == (
        "没有找到合适的商品，能描述一下您的需求吗？"
        if lang is Lang.ZH
        else "I couldn't find a matching product. Could you describe what you need?"
    )


def test_compose_get_customer_profile(store: SqlStore) -> None:
    profile = store.customer_profile(CustomerId(DEMO_CUSTOMER_ZH))
    assert profile is not None
    artifact = profile.model_dump(mode="json", exclude={"customer": {"email", "phone"}})
    tier = profile.customer.tier.value.upper()
    results = [("get_customer_profile", artifact, None)]
    assert compose(Intent.ACCOUNT_PROFILE, results, Lang.EN) == (
        f"You are a {tier} member with {profile.order_count} orders."
    )
    assert compose(Intent.ACCOUNT_PROFILE, results, Lang.ZH) == f"您是{tier}会员，共有 {profile.order_count} 笔订单。"


@pytest.mark.parametrize("lang", BOTH)
def test_compose_open_ticket(store: SqlStore, lang: Lang) -> None:
    ticket = store.open_ticket(CustomerId(DEMO_CUSTOMER_EN), None, TicketKind.COMPLAINT, "Late delivery", 2)
    reply = compose(Intent.COMPLAINT, [("open_ticket", ticket.model_dump(mode="json"), None)], lang)
    assert f"#{ticket.id}" in reply
    assert "Late delivery" in reply
    assert ("工单" in reply) if lang is Lang.ZH else ("ticket" in reply)


@pytest.mark.parametrize("lang", BOTH)
def test_compose_request_human(store: SqlStore, lang: Lang) -> None:
    ticket = store.open_ticket(CustomerId(DEMO_CUSTOMER_ZH), None, TicketKind.HANDOFF, "asked for a human", 1)
    reply = compose(Intent.HUMAN_AGENT, [("request_human", ticket.model_dump(mode="json"), None)], lang)
    assert f"#{ticket.id}" in reply
    assert ("人工" in reply) if lang is Lang.ZH else ("human" in reply)
    # The reason is for the colleague, not repeated to the customer.
    assert "asked for a human" not in reply


def test_compose_keeps_the_order_of_several_results(store: SqlStore) -> None:
    shipped = _artifact(store, OrderStatus.SHIPPED)
    delivered = _artifact(store, OrderStatus.DELIVERED)
    reply = compose(Intent.ORDER_STATUS, [("lookup_order", shipped, None), ("lookup_order", delivered, None)], Lang.EN)
    assert reply == order_fact(shipped, Lang.EN) + "\n" + order_fact(delivered, Lang.EN)


# ------------------------------------------------------------------------------------- compose: errors


def test_compose_error_in_english_shows_the_first_clause() -> None:
    error = "Error: No order KF999999 on this customer's account; ask them to re-check it."
    reply = compose(Intent.ORDER_STATUS, [("lookup_order", None, error)], Lang.EN)
    assert reply == "Sorry — No order KF999999 on this customer's account. Could you check it?"
    assert "ask them" not in reply


def test_compose_error_in_chinese_is_a_plain_line() -> None:
    error = "Error: No order KF999999 on this customer's account; ask them to re-check it."
    reply = compose(Intent.ORDER_STATUS, [("lookup_order", None, error)], Lang.ZH)
    assert reply == "抱歉，没有查到相关信息，请核对后再告诉我（例如订单号）。"
    assert "Error" not in reply


def test_compose_mixes_errors_and_artifacts(store: SqlStore) -> None:
    artifact = _artifact(store, OrderStatus.SHIPPED)
    reply = compose(
        Intent.ORDER_STATUS,
        [
            ("lookup_order", None, "Error: No order KF999999 on this customer's account"),
            ("lookup_order", artifact, None),
        ],
        Lang.EN,
    )
    first, second = reply.splitlines()
    assert first.startswith("Sorry — No order KF999999")
    assert second == order_fact(artifact, Lang.EN)


# ------------------------------------------------------------------------------------- compose: no results


@pytest.mark.parametrize(
    ("intent", "lang", "fragment"),
    [
        (Intent.GREETING, Lang.EN, "Hello!"),
        (Intent.GREETING, Lang.ZH, "您好！"),
        (Intent.GOODBYE, Lang.EN, "Thank you for chatting with us."),
        (Intent.GOODBYE, Lang.ZH, "感谢您的咨询"),
        (Intent.OUT_OF_SCOPE, Lang.EN, "outside what I can help with"),
        (Intent.OUT_OF_SCOPE, Lang.ZH, "超出了我能帮忙的范围"),
        (Intent.PURCHASE, Lang.EN, "add it to your cart"),
        (Intent.PURCHASE, Lang.ZH, "加入购物车"),
        (Intent.ORDER_STATUS, Lang.EN, "human colleague"),
        (Intent.ORDER_STATUS, Lang.ZH, "转接人工客服"),
    ],
)
def test_compose_without_results(intent: Intent, lang: Lang, fragment: str) -> None:
    assert fragment in compose(intent, [], lang)


@pytest.mark.parametrize("lang", BOTH)
def test_compose_without_results_is_distinct_per_intent(lang: Lang) -> None:
    greeting = compose(Intent.GREETING, [], lang)
    goodbye = compose(Intent.GOODBYE, [], lang)
    out_of_scope = compose(Intent.OUT_OF_SCOPE, [], lang)
    assert len({greeting, goodbye, out_of_scope}) == 3
    assert compose(Intent.CHITCHAT, [], lang) == greeting
    assert compose(None, [], lang) == out_of_scope


@pytest.mark.parametrize("lang", BOTH)
def test_compose_ignores_empty_and_unknown_results(lang: Lang) -> None:
    fallback = compose(Intent.ORDER_STATUS, [], lang)
    assert compose(Intent.ORDER_STATUS, [("lookup_order", None, None)], lang) == fallback
    assert compose(Intent.ORDER_STATUS, [("mystery_tool", {"x": 1}, None)], lang) == fallback


def test_a_developer_added_tool_reaches_the_facts_as_text_or_compact_json() -> None:
    """Tools Kefu has no sentence for still ground the reply (README "Add a tool", the τ² tools)."""
    from agent.replies import fact_lines

    text_only = ("check_warranty", {"text": "Order KF100234 is under warranty for 20 more days."}, None)
    structured = ("get_user_details", {"user_id": "u_1", "orders": ["#W1"], "balance": 17.5}, None)
    failed = ("check_warranty", None, "Error: no order KF1 on this customer's account")
    lines = fact_lines([text_only, structured, failed], Lang.EN)
    assert lines == [
        "check_warranty: Order KF100234 is under warranty for 20 more days.",
        'get_user_details: {"user_id":"u_1","orders":["#W1"],"balance":17.5}',
        "check_warranty: Error: no order KF1 on this customer's account",
    ]
    assert compose(None, [text_only], Lang.EN) == "Order KF100234 is under warranty for 20 more days."
    assert compose(None, [structured], Lang.EN) == compose(None, [], Lang.EN)  # no raw JSON for customers


def test_every_builtin_tool_has_its_own_sentences() -> None:
    from agent.replies import _BUILTIN_FACTS
    from tools import BUILTIN_TOOLS

    assert {tool.name for tool in BUILTIN_TOOLS} == _BUILTIN_FACTS
