"""Next best action: what the shop should do next for one customer, with a confidence and a rationale.

The source documents' contract is ``{action, product_id, confidence, rationale}``. Each rule below
proposes at most one action from the customer's profile, order history and the product graph;
the most confident proposal wins (ties go to the earlier rule):

1. ``resolve_open_ticket``: an open complaint, return or handoff ticket comes first; nobody wants
   an offer while their problem is waiting.
2. ``recommend_product``: when the caller passes context (what the customer is asking about), the
   graph's best recommendation for it, with the graph path as the rationale.
3. ``recommend_accessory``: an in-stock accessory (``ACCESSORY_OF`` in the graph) of something
   bought in the last 120 days that the customer does not own yet; fresher purchases score higher.
4. ``retention_offer``: a gold or VIP customer with an order cancelled, returned or refunded in the
   last 60 days.

Otherwise the action is ``none``. Scores from the churn and repurchase models (issue 8) extend
these rules; the rationale always names what drove the decision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from core.errors import NotFoundError
from core.ports import SupportStore
from core.types import (
    CustomerId,
    Lang,
    NextBestAction,
    Order,
    OrderStatus,
    Product,
    Recommendation,
    Sku,
    TicketKind,
    TicketStatus,
    Tier,
)

__all__ = ["next_best_action"]

_ACCESSORY_WINDOW_DAYS = 120
_RETENTION_WINDOW_DAYS = 60
_KEPT = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.RETURN_REQUESTED})
_LOST = frozenset({OrderStatus.CANCELLED, OrderStatus.RETURNED, OrderStatus.REFUNDED})
_LOST_ZH = {OrderStatus.CANCELLED: "已取消", OrderStatus.RETURNED: "已退货", OrderStatus.REFUNDED: "已退款"}

Recommender = Callable[..., list[Recommendation]]
"""``KnowledgePort.recommend``."""
Accessories = Callable[[Sku], list[Sku]]
"""The products that are ``ACCESSORY_OF`` a product, from the graph."""


def next_best_action(
    store: SupportStore,
    recommend: Recommender,
    accessories: Accessories,
    customer_id: CustomerId,
    *,
    context: str | None = None,
    lang: Lang | None = None,
    now: datetime | None = None,
) -> NextBestAction:
    """The best next action for ``customer_id``.

    Args:
        store: The CRM and order history.
        recommend: The knowledge base's recommender (need → ranked products with graph paths).
        accessories: The graph's accessories of a product.
        customer_id: Whose next action.
        context: What the customer is talking about, if anything (e.g. "家里有猫，掉毛严重").
        lang: Language of the rationale; the customer's own by default.
        now: The reference time (defaults to the latest order's date or the current time).

    Raises:
        NotFoundError: no such customer.
    """
    customer = store.get_customer(customer_id)
    if customer is None:
        raise NotFoundError(f"unknown customer {customer_id!r}")
    lang = lang or customer.lang
    zh = lang is Lang.ZH
    orders = store.list_orders(customer_id, limit=50)
    profile = store.customer_profile(customer_id)
    now = now or datetime.now()
    owned = {item.sku for order in orders if order.status in _KEPT for item in order.items}
    catalog = {product.sku: product for product in store.list_products()}
    proposals: list[NextBestAction] = []

    def propose(action: str, product: Sku | None, confidence: float, rationale: str) -> None:
        proposals.append(
            NextBestAction(
                customer_id=customer_id,
                action=action,
                product_id=product,
                confidence=round(min(max(confidence, 0.0), 1.0), 3),
                rationale=rationale,
            )
        )

    open_tickets = [t for t in (profile.open_tickets if profile else []) if t.status is not TicketStatus.RESOLVED]
    urgent = [t for t in open_tickets if t.kind in (TicketKind.COMPLAINT, TicketKind.HANDOFF, TicketKind.RETURN)]
    if urgent:
        ticket = min(urgent, key=lambda t: (-t.priority, t.created_at))
        since = ticket.created_at.date().isoformat()
        propose(
            "resolve_open_ticket",
            None,
            0.9 if ticket.kind is TicketKind.COMPLAINT else 0.8,
            f"工单 #{ticket.id}（{ticket.kind.value}：{ticket.subject}）自 {since} 起未解决"
            if zh
            else f"ticket #{ticket.id} ({ticket.kind.value}: {ticket.subject}) open since {since}",
        )

    if context and context.strip():
        categories = _usual_categories(orders, catalog)
        found = recommend(context.strip(), lang=lang, owned=sorted(owned), preferred_categories=categories, limit=1)
        if found:
            best = found[0]
            propose("recommend_product", best.sku, best.confidence, best.rationale)

    accessory = _accessory(orders, owned, accessories, catalog, now, zh)
    if accessory is not None:
        propose("recommend_accessory", *accessory)

    if customer.tier in (Tier.GOLD, Tier.VIP):
        lost = [o for o in orders if o.status in _LOST and (now - o.updated_at).days <= _RETENTION_WINDOW_DAYS]
        if lost:
            order = lost[0]
            propose(
                "retention_offer",
                None,
                0.6,
                f"{customer.tier.value.upper()} 会员，订单 {order.id} 于 {order.updated_at.date()} "
                f"{_LOST_ZH[order.status]}"
                if zh
                else f"{customer.tier.value} member whose order {order.id} was {order.status.value} "
                f"on {order.updated_at.date()}",
            )

    if not proposals:
        return NextBestAction(
            customer_id=customer_id,
            action="none",
            product_id=None,
            confidence=0.0,
            rationale="没有未解决的问题、近期购买的配件或相关需求"
            if zh
            else "no open issue, no accessory for a recent purchase and no stated need",
        )
    return max(proposals, key=lambda p: p.confidence)  # max keeps the first of equals: rule order


def _usual_categories(orders: Sequence[Order], catalog: Mapping[Sku, Product]) -> list[str]:
    """The three categories the customer buys most."""
    counts = Counter(catalog[item.sku].category for order in orders for item in order.items if item.sku in catalog)
    return [category for category, _n in counts.most_common(3)]


def _accessory(
    orders: Sequence[Order],
    owned: set[Sku],
    accessories: Accessories,
    catalog: Mapping[Sku, Product],
    now: datetime,
    zh: bool,
) -> tuple[Sku, float, str] | None:
    """The freshest purchase's first in-stock accessory the customer does not own yet."""
    for order in orders:  # newest first
        age = (now - order.created_at).days
        if order.status not in _KEPT or age > _ACCESSORY_WINDOW_DAYS:
            continue
        for item in order.items:
            for sku in accessories(item.sku):
                product = catalog.get(sku)
                if sku in owned or product is None or product.stock <= 0:
                    continue
                confidence = 0.45 + 0.3 * (1 - age / _ACCESSORY_WINDOW_DAYS)
                bought = order.created_at.date().isoformat()
                rationale = (
                    f"{item.name_zh}（{bought} 购买）← ACCESSORY_OF ← {product.name_zh}"
                    if zh
                    else f"{item.name_en} (bought {bought}) ← ACCESSORY_OF ← {product.name_en}"
                )
                return sku, confidence, rationale
    return None
