"""Rule-based replies in Chinese and English, built from tool results without any model.

They answer when the intent is unsure, when the LLM is down or slow, and when an LLM reply fails
the grounding check. Facts come from tool artifacts, so even a degraded turn gives the real order
status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agent.machine import Intent
from core.types import Lang, OrderStatus

__all__ = [
    "INTENT_NAMES",
    "STATUS_LABELS",
    "ToolResult",
    "clarify",
    "clarify_choice",
    "compose",
    "excerpt",
    "fact_lines",
    "handoff_waiting",
    "not_sure",
    "offer_human",
    "order_fact",
    "passages_of",
    "status_label",
]

STATUS_LABELS: dict[OrderStatus, dict[Lang, str]] = {
    OrderStatus.PENDING_PAYMENT: {Lang.EN: "awaiting payment", Lang.ZH: "待付款"},
    OrderStatus.PAID: {Lang.EN: "paid, being prepared", Lang.ZH: "已付款，备货中"},
    OrderStatus.SHIPPED: {Lang.EN: "shipped", Lang.ZH: "已发货"},
    OrderStatus.DELIVERED: {Lang.EN: "delivered", Lang.ZH: "已签收"},
    OrderStatus.CANCELLED: {Lang.EN: "cancelled", Lang.ZH: "已取消"},
    OrderStatus.RETURN_REQUESTED: {Lang.EN: "return requested", Lang.ZH: "退货申请中"},
    OrderStatus.RETURNED: {Lang.EN: "returned", Lang.ZH: "已退货"},
    OrderStatus.REFUNDED: {Lang.EN: "refunded", Lang.ZH: "已退款"},
}

ToolResult = tuple[str, Mapping[str, Any] | None, str | None]
"""``(tool name, artifact, error message)`` of one tool call in this turn."""

_TEXT: dict[str, dict[Lang, str]] = {
    "greeting": {
        Lang.EN: "Hello! I'm Kefu, the shop's assistant. I can check orders, help with returns and suggest products. "
        "How can I help?",
        Lang.ZH: "您好！我是客服助手，可以帮您查询订单、办理退换货、推荐商品。请问有什么可以帮您？",
    },
    "goodbye": {Lang.EN: "Thank you for chatting with us. Have a great day!", Lang.ZH: "感谢您的咨询，祝您生活愉快！"},
    "clarify_1": {
        Lang.EN: "Sorry, I'm not sure I understood. Is it about an order, a return or refund, or a product?",
        Lang.ZH: "抱歉，我没太明白。请问是关于订单、退换货，还是商品咨询呢？",
    },
    "clarify_2": {
        Lang.EN: "Could you tell me a bit more? For an order, the order number (like KF100234) helps me most.",
        Lang.ZH: "能再具体说说吗？如果是订单问题，告诉我订单号（例如 KF100234）最方便。",
    },
    "out_of_scope": {
        Lang.EN: "I'm afraid that's outside what I can help with. I can check orders, handle returns and "
        "recommend products.",
        Lang.ZH: "抱歉，这超出了我能帮忙的范围。我可以帮您查询订单、办理退换货、推荐商品。",
    },
    "handoff": {
        Lang.EN: "I've passed this conversation to a human colleague (ticket #{ticket}) with everything you told me, "
        "so you won't need to repeat yourself. They'll reply here shortly.",
        Lang.ZH: "已为您转接人工客服（工单 #{ticket}），您刚才说的内容已一并转交，无需重复描述。"
        "请稍候，客服会在这里回复您。",
    },
    "handoff_waiting": {
        Lang.EN: "A human colleague has your conversation and will reply here shortly.",
        Lang.ZH: "人工客服已接到您的会话，会尽快在这里回复您。",
    },
    "ticket": {
        Lang.EN: "I've opened ticket #{ticket} ({subject}); our team will follow up.",
        Lang.ZH: "已为您创建工单 #{ticket}（{subject}），我们会尽快跟进。",
    },
    "no_orders": {Lang.EN: "I can't find any orders on your account.", Lang.ZH: "您的账户下暂时没有订单。"},
    "recent_orders": {Lang.EN: "Your most recent orders:", Lang.ZH: "您最近的订单："},
    "products": {Lang.EN: "Here is what I found:", Lang.ZH: "为您找到以下商品："},
    "no_products": {
        Lang.EN: "I couldn't find a matching product. Could you describe what you need?",
        Lang.ZH: "没有找到合适的商品，能描述一下您的需求吗？",
    },
    "profile": {
        Lang.EN: "You are a {tier} member with {count} orders.",
        Lang.ZH: "您是{tier}会员，共有 {count} 笔订单。",
    },
    "contact_phone": {Lang.EN: "Your phone number is now {value}.", Lang.ZH: "您的联系电话已更新为{value}。"},
    "contact_email": {Lang.EN: "Your e-mail address is now {value}.", Lang.ZH: "您的邮箱已更新为{value}。"},
    "purchase": {
        Lang.EN: "Great choice! You can add it to your cart on the product page and check out there.",
        Lang.ZH: "好的！您可以在商品页面加入购物车并结算下单。",
    },
    "offer_human": {
        Lang.EN: "I'm sorry I haven't understood. Would you like me to connect you with a human colleague?",
        Lang.ZH: "抱歉，我一直没能理解您的问题。需要为您转接人工客服吗？",
    },
    "clarify_choice_1": {
        Lang.EN: "Just to be sure: do you want to {a}, or to {b}?",
        Lang.ZH: "想确认一下：您是想{a}，还是{b}？",
    },
    "clarify_choice_2": {
        Lang.EN: "Sorry, I'm still not sure. Is it to {a}? Or maybe to {b}?",
        Lang.ZH: "抱歉我还不太确定。是要{a}吗？或者是{b}？",
    },
    "payment_invoice": {
        Lang.EN: "I've noted your payment or invoice request; a colleague will confirm the details with you.",
        Lang.ZH: "已记录您的支付或发票需求，客服同事会与您确认细节。",
    },
    "not_sure": {
        Lang.EN: "I'm not sure about that, and I'd rather not guess. Would you like me to connect you with a human "
        "colleague who can check?",
        Lang.ZH: "这个问题我不太确定，不想随便回答误导您。需要为您转接人工客服帮您确认吗？",
    },
    "knowledge": {Lang.EN: "Here is what our {title} says:", Lang.ZH: "根据《{title}》："},
    "sources": {Lang.EN: "Source: {refs}", Lang.ZH: "来源：{refs}"},
    "recommend": {Lang.EN: "Based on what you need, I'd suggest:", Lang.ZH: "根据您的需求，为您推荐："},
    "no_recommend": {
        Lang.EN: "I couldn't find a product that clearly fits that. What will you mainly use it for?",
        Lang.ZH: "暂时没有找到明确适合的商品。请问您主要在什么场景下使用呢？",
    },
    "why": {Lang.EN: "why: {rationale}", Lang.ZH: "理由：{rationale}"},
    "compare": {Lang.EN: "{names} side by side:", Lang.ZH: "{names} 对比："},
    "fallback": {
        Lang.EN: "Sorry, I can't answer that fully right now. I can connect you with a human colleague if you like.",
        Lang.ZH: "抱歉，我暂时无法完整回答这个问题。如有需要，我可以为您转接人工客服。",
    },
}


INTENT_NAMES: dict[Intent, dict[Lang, str]] = {
    Intent.GREETING: {Lang.EN: "just say hello", Lang.ZH: "打个招呼"},
    Intent.ORDER_STATUS: {Lang.EN: "check an order's status", Lang.ZH: "查询订单状态"},
    Intent.CANCEL_ORDER: {Lang.EN: "cancel an order", Lang.ZH: "取消订单"},
    Intent.CHANGE_ORDER: {Lang.EN: "change an order", Lang.ZH: "修改订单"},
    Intent.RETURN_REFUND: {Lang.EN: "return an item or get a refund", Lang.ZH: "办理退货退款"},
    Intent.EXCHANGE: {Lang.EN: "exchange an item", Lang.ZH: "换货"},
    Intent.SHIPPING_DELIVERY: {Lang.EN: "ask about shipping and delivery", Lang.ZH: "了解配送和运费"},
    Intent.PAYMENT_INVOICE: {Lang.EN: "sort out a payment or an invoice", Lang.ZH: "处理支付或发票"},
    Intent.PRODUCT_INQUIRY: {Lang.EN: "ask about a product", Lang.ZH: "咨询商品信息"},
    Intent.PRODUCT_RECOMMENDATION: {Lang.EN: "get a product recommendation", Lang.ZH: "获取商品推荐"},
    Intent.PURCHASE: {Lang.EN: "buy something", Lang.ZH: "购买商品"},
    Intent.COMPLAINT: {Lang.EN: "make a complaint", Lang.ZH: "投诉"},
    Intent.ACCOUNT_PROFILE: {Lang.EN: "ask about your account or membership", Lang.ZH: "查询账户或会员信息"},
    Intent.HUMAN_AGENT: {Lang.EN: "talk to a human colleague", Lang.ZH: "转人工客服"},
    Intent.GOODBYE: {Lang.EN: "finish the chat", Lang.ZH: "结束对话"},
    Intent.CHITCHAT: {Lang.EN: "just chat", Lang.ZH: "随便聊聊"},
    Intent.OUT_OF_SCOPE: {Lang.EN: "ask about something else", Lang.ZH: "咨询其他事情"},
}
"""How a clarifying question names each intent."""


def _t(key: str, lang: Lang, **values: Any) -> str:
    return _TEXT[key][lang].format(**values)


def status_label(status: str, lang: Lang) -> str:
    """The customer-facing name of an order status."""
    return STATUS_LABELS[OrderStatus(status)][lang]


def order_fact(order: Mapping[str, Any], lang: Lang) -> str:
    """One sentence with an order's real status, carrier, tracking number and delivery date."""
    label = status_label(order["status"], lang)
    carrier, tracking = order.get("carrier"), order.get("tracking_number")
    eta = str(order.get("estimated_delivery") or "")[:10]
    if lang is Lang.ZH:
        parts = [f"订单 {order['id']} 当前状态：{label}"]
        if carrier and tracking:
            parts.append(f"承运商 {carrier}，运单号 {tracking}")
        if eta and order["status"] in (OrderStatus.SHIPPED, OrderStatus.PAID):
            parts.append(f"预计 {eta} 送达")
        return "，".join(parts) + "。"
    parts = [f"Order {order['id']} is {label}"]
    if carrier and tracking:
        parts.append(f"carrier {carrier}, tracking number {tracking}")
    if eta and order["status"] in (OrderStatus.SHIPPED, OrderStatus.PAID):
        parts.append(f"estimated delivery {eta}")
    return ", ".join(parts) + "."


def clarify(attempt: int, lang: Lang) -> str:
    """A clarifying question; the second attempt asks differently, so the customer never sees a loop."""
    return _t("clarify_1" if attempt <= 1 else "clarify_2", lang)


def clarify_choice(first: Intent, second: Intent, lang: Lang, variant: int) -> str:
    """A targeted clarifying question offering two intents; ``variant`` 1 or 2 words it differently."""
    key = "clarify_choice_1" if variant <= 1 else "clarify_choice_2"
    return _t(key, lang, a=INTENT_NAMES[first][lang], b=INTENT_NAMES[second][lang])


def offer_human(lang: Lang) -> str:
    """Offer a human after repeated unsure turns."""
    return _t("offer_human", lang)


def not_sure(lang: Lang) -> str:
    """The knowledge base has nothing good enough: say so and offer a human instead of guessing."""
    return _t("not_sure", lang)


def handoff_waiting(lang: Lang) -> str:
    """What the bot says while a human owns the conversation."""
    return _t("handoff_waiting", lang)


def compose(intent: Intent | None, results: Sequence[ToolResult], lang: Lang) -> str:
    """A reply from the turn's intent and tool results alone."""
    lines: list[str] = []
    for name, artifact, error in results:
        if error is not None:
            lines.append(_error_line(error, lang))
        elif artifact is not None:
            lines.extend(_artifact_lines(name, artifact, lang))
    if not lines:
        key = {
            Intent.GREETING: "greeting",
            Intent.CHITCHAT: "greeting",
            Intent.GOODBYE: "goodbye",
            Intent.OUT_OF_SCOPE: "out_of_scope",
            Intent.PURCHASE: "purchase",
            Intent.PAYMENT_INVOICE: "payment_invoice",
        }.get(intent or Intent.OUT_OF_SCOPE, "fallback")
        lines.append(_t(key, lang))
    return "\n".join(lines)


def fact_lines(results: Sequence[ToolResult], lang: Lang) -> list[str]:
    """The tool results as short sentences for the model to phrase: far fewer tokens than JSON.

    Orders also list their items; errors keep the tool's own words, which tell the model what to do.
    """
    lines: list[str] = []
    for name, artifact, error in results:
        if error is not None:
            lines.append(f"{name}: {error}")
        elif name == "search_knowledge" and artifact is not None:
            continue  # numbered below, across every search of the turn, so [n] is unambiguous
        elif artifact is not None and name not in _BUILTIN_FACTS:
            lines.extend(_other_tool_lines(name, artifact, for_model=True))
        elif artifact is not None:
            lines.extend(_artifact_lines(name, artifact, lang))
            if name == "lookup_order":
                lines.append(_items_line(artifact, lang))
    lines.extend(f"[{n}] {p['title']}: {excerpt(str(p['text']), 600)}" for n, p in enumerate(passages_of(results), 1))
    return lines


def passages_of(results: Sequence[ToolResult]) -> list[Mapping[str, Any]]:
    """Every knowledge passage found this turn, in the order the facts number them ([1], [2], ...)."""
    return [
        passage
        for name, artifact, error in results
        if name == "search_knowledge" and artifact is not None and error is None
        for passage in artifact.get("passages") or []
    ]


def _items_line(order: Mapping[str, Any], lang: Lang) -> str:
    zh = lang is Lang.ZH
    items = ("、" if zh else ", ").join(
        f"{item['name_zh'] if zh else item['name_en']} ×{item['quantity']}" for item in order.get("items", [])
    )
    return (
        f"订单 {order['id']} 商品：{items}；金额 ¥{order['total']:.2f}"
        if zh
        else (f"Order {order['id']} items: {items}; total ¥{order['total']:.2f}")
    )


def _error_line(error: str, lang: Lang) -> str:
    # Tool errors are written for the model, in English; a Chinese customer gets a plain line.
    if lang is Lang.ZH:
        return "抱歉，没有查到相关信息，请核对后再告诉我（例如订单号）。"
    return "Sorry — " + error.removeprefix("Error: ").split(";")[0] + ". Could you check it?"


def _artifact_lines(name: str, artifact: Mapping[str, Any], lang: Lang) -> list[str]:
    if name == "lookup_order":
        return [order_fact(artifact, lang)]
    if name == "list_recent_orders":
        orders = artifact.get("orders") or []
        if not orders:
            return [_t("no_orders", lang)]
        return [_t("recent_orders", lang), *(f"- {order_fact(order, lang)}" for order in orders)]
    if name == "search_products":
        products = artifact.get("products") or []
        if not products:
            return [_t("no_products", lang)]
        return [_t("products", lang), *(_product_line(product, lang) for product in products)]
    if name == "get_customer_profile":
        customer = artifact.get("customer") or {}
        return [_t("profile", lang, tier=str(customer.get("tier", "")).upper(), count=artifact.get("order_count", 0))]
    if name == "update_contact":
        return [_t(f"contact_{field}", lang, value=artifact[field]) for field in artifact.get("updated", [])]
    if name == "search_knowledge":
        return _knowledge_lines(artifact.get("passages") or [], lang)
    if name == "recommend_products":
        return _recommend_lines(artifact.get("recommendations") or [], lang)
    if name == "compare_products":
        return _compare_lines(artifact, lang)
    if name == "request_human":
        return [_t("handoff", lang, ticket=artifact["id"])]
    if name == "open_ticket":
        return [_t("ticket", lang, ticket=artifact["id"], subject=artifact["subject"])]
    return _other_tool_lines(name, artifact, for_model=False)


def _other_tool_lines(name: str, artifact: Mapping[str, Any], *, for_model: bool) -> list[str]:
    """A tool Kefu has no sentence for (one a developer added): its text, or for the model its artifact as JSON.

    A customer-facing template quotes a text result but never raw JSON.
    """
    if set(artifact) == {"text"}:
        text = str(artifact["text"]).strip()
        return [f"{name}: {excerpt(text, 1200)}" if for_model else excerpt(text, 1200)] if text else []
    if not for_model:
        return []
    return [f"{name}: {excerpt(json.dumps(artifact, ensure_ascii=False, default=str, separators=(',', ':')), 1200)}"]


_BUILTIN_FACTS = frozenset(
    {
        "lookup_order",
        "list_recent_orders",
        "search_products",
        "get_customer_profile",
        "update_contact",
        "search_knowledge",
        "recommend_products",
        "compare_products",
        "request_human",
        "open_ticket",
    }
)
"""The tools ``_artifact_lines`` writes sentences for; any other tool's result goes to the model as it is."""

_SENTENCE_END = ("。", "！", "？", ". ", "! ", "? ")


def excerpt(text: str, limit: int = 360) -> str:
    """``text`` cut at the last sentence end before ``limit`` characters (or at ``limit`` with an ellipsis)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = max(text.rfind(end, 0, limit) for end in _SENTENCE_END)
    return text[: cut + 1].strip() if cut > limit // 3 else text[:limit].rstrip() + "…"


def _knowledge_lines(passages: Sequence[Mapping[str, Any]], lang: Lang) -> list[str]:
    """The best passage, quoted, with its source: a template answer is the document's own words."""
    if not passages:
        return [_t("not_sure", lang)]
    top = passages[0]
    title = str(top["title"])
    return [_t("knowledge", lang, title=title), excerpt(str(top["text"])), _t("sources", lang, refs=f"[1] {title}")]


def _recommend_lines(recommendations: Sequence[Mapping[str, Any]], lang: Lang) -> list[str]:
    if not recommendations:
        return [_t("no_recommend", lang)]
    zh = lang is Lang.ZH
    lines = [_t("recommend", lang)]
    for item in recommendations:
        name = item["name_zh"] if zh else item["name_en"]
        stock = ("有货" if zh else "in stock") if item["in_stock"] else ("暂时缺货" if zh else "out of stock")
        match = f"匹配度 {item['confidence']:.0%}" if zh else f"{item['confidence']:.0%} match"
        lines.append(
            f"- {name}（¥{item['price']:.2f}，{stock}，{match}）"
            if zh
            else f"- {name} (¥{item['price']:.2f}, {stock}, {match})"
        )
        lines.append("  " + _t("why", lang, rationale=item["rationale"]))
    return lines


def _compare_lines(comparison: Mapping[str, Any], lang: Lang) -> list[str]:
    lines = [_t("compare", lang, names=" vs ".join(comparison.get("names", [])))]
    for row in comparison.get("rows", []):
        lines.append(f"- {row['attribute']}: " + " | ".join(str(value) for value in row["values"]))
    return lines


def _product_line(product: Mapping[str, Any], lang: Lang) -> str:
    zh = lang is Lang.ZH
    name = product["name_zh"] if zh else product["name_en"]
    features = ("、" if zh else ", ").join((product["features_zh"] if zh else product["features_en"])[:3])
    stock = ("有货" if zh else "in stock") if product["stock"] > 0 else ("暂时缺货" if zh else "out of stock")
    return (
        f"- {name}（¥{product['price']:.2f}，{stock}）：{features}"
        if zh
        else (f"- {name} (¥{product['price']:.2f}, {stock}): {features}")
    )
