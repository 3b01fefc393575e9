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
5. ``retention_offer`` from the churn model (any tier): a calibrated ``churn_30d`` score of at least
   ``CHURN_RISK_THRESHOLD``; the confidence rises from 0.5 at the threshold to 0.8 at a score of 1,
   so an open ticket (0.8-0.9) still comes first.
6. ``recommend_accessory`` / ``recommend_product`` from the repurchase model: a ``repurchase_3d``
   score of at least ``REPURCHASE_THRESHOLD`` proposes what the customer usually buys: an in-stock
   accessory of a product they bought (any age), and the graph's best product for the scenario their
   purchases serve most, in their usual categories. The confidence is ``SCORE_CEILING`` × the
   geometric mean of the graph's confidence and the score's strength, ``min(1, score / REPURCHASE_FULL)``:
   both must be high, and an open ticket still comes first.

Otherwise the action is ``none``. Every proposal lists its ``drivers`` (the ticket, the lost order,
the graph path in SKUs, the score and the features that raised it, e.g. ``recency_days=94 (+0.83)``)
and carries the customer's model ``scores``; the rationale, in the customer's language, names the
top features and the graph path.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final

from core.errors import NotFoundError
from core.ports import SupportStore
from core.types import (
    CustomerId,
    CustomerInsight,
    Lang,
    NextBestAction,
    Order,
    OrderStatus,
    Prediction,
    Product,
    Recommendation,
    Sku,
    TicketKind,
    TicketStatus,
    Tier,
)

__all__ = ["CHURN_RISK_THRESHOLD", "REPURCHASE_FULL", "REPURCHASE_THRESHOLD", "SCORE_CEILING", "next_best_action"]

CHURN_RISK_THRESHOLD: Final = 0.9
"""A calibrated chance of no order in the next 30 days from which a retention offer is proposed.
Not buying for a month is common (about three in four customer-weeks of the demo store), so only the
top of the range is a risk worth an offer: on the demo store's test period about 7 % of customers
score this high."""
REPURCHASE_THRESHOLD: Final = 0.15
"""A calibrated chance of an order in the next 3 days from which the usual purchase is proposed:
three to five times the demo store's base rate (3-5 %); about 1.5 % of customers score this high."""
REPURCHASE_FULL: Final = 0.5
"""A repurchase score at which the score's strength counts as full (an even chance within 3 days)."""
ACCESSORY_PATH_CONFIDENCE: Final = 0.63
"""The graph confidence of a direct ``ACCESSORY_OF`` edge from a product the customer bought, as the
recommender scores a one-hop path of that relation from an exactly named product: 1 − e^(−2 × 0.5)."""
SCORE_CEILING: Final = 0.8
"""The most confidence a score-driven proposal gets: an open ticket (0.8-0.9; ties go to it) comes first."""
_TOP_DRIVERS: Final = 3

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
    insight: CustomerInsight | None = None,
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
        insight: The customer's churn and repurchase scores with their contributions (from
            ``insights.profile.Insights``); None leaves out the score-driven rules.

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
    scores = _scores(insight)

    def propose(action: str, product: Sku | None, confidence: float, rationale: str, drivers: list[str]) -> None:
        proposals.append(
            NextBestAction(
                customer_id=customer_id,
                action=action,
                product_id=product,
                confidence=round(min(max(confidence, 0.0), 1.0), 3),
                rationale=rationale,
                drivers=drivers,
                scores=scores,
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
            [f"ticket #{ticket.id} {ticket.kind.value} open since {since}"],
        )

    if context and context.strip():
        categories = _usual_categories(orders, catalog)
        found = recommend(context.strip(), lang=lang, owned=sorted(owned), preferred_categories=categories, limit=1)
        if found:
            best = found[0]
            propose("recommend_product", best.sku, best.confidence, best.rationale, [best.rationale])

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
                [f"tier={customer.tier.value}", f"order {order.id} {order.status.value} {order.updated_at.date()}"],
            )

    churn = insight.churn if insight is not None else None
    if churn is not None and churn.score >= CHURN_RISK_THRESHOLD:
        strength = (churn.score - CHURN_RISK_THRESHOLD) / (1 - CHURN_RISK_THRESHOLD)
        drivers = _drivers(churn)
        reasons = ", ".join(drivers[1:]) or "-"
        propose(
            "retention_offer",
            None,
            0.5 + (SCORE_CEILING - 0.5) * strength,
            f"流失风险 {churn.score:.2f}（30 天内不再下单的概率）；主要因素：{reasons}"
            if zh
            else f"churn risk {churn.score:.2f} (chance of no order in the next 30 days); top drivers: {reasons}",
            drivers,
        )

    repurchase = insight.repurchase if insight is not None else None
    if repurchase is not None and repurchase.score >= REPURCHASE_THRESHOLD:
        for proposal in _usual_purchase(repurchase, orders, owned, accessories, recommend, catalog, lang):
            propose(*proposal)

    if not proposals:
        return NextBestAction(
            customer_id=customer_id,
            action="none",
            product_id=None,
            confidence=0.0,
            rationale="没有未解决的问题、近期购买的配件或相关需求"
            if zh
            else "no open issue, no accessory for a recent purchase and no stated need",
            drivers=[f"{target}={score:.2f}" for target, score in scores.items()],
            scores=scores,
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
) -> tuple[Sku, float, str, list[str]] | None:
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
                return sku, confidence, rationale, [f"{item.sku} ← ACCESSORY_OF ← {sku}", f"bought {bought}"]
    return None


Proposal = tuple[str, Sku | None, float, str, list[str]]
"""``(action, product, confidence, rationale, drivers)``."""


def _scores(insight: CustomerInsight | None) -> dict[str, float]:
    predictions = (insight.churn, insight.repurchase) if insight is not None else ()
    return {p.target: p.score for p in predictions if p is not None}


def _drivers(prediction: Prediction) -> list[str]:
    """``churn_30d=0.91`` and the features that raised the score most, e.g. ``recency_days=94 (+0.83)``."""
    raising = [c for c in prediction.contributions if c.effect > 0][:_TOP_DRIVERS]
    return [f"{prediction.target}={prediction.score:.2f}"] + [
        f"{c.feature}={c.value:.0f} ({c.effect:+.2f})"
        if abs(c.value) >= 100
        else f"{c.feature}={c.value:.3g} ({c.effect:+.2f})"
        for c in raising
    ]


def _usual_purchase(
    repurchase: Prediction,
    orders: Sequence[Order],
    owned: set[Sku],
    accessories: Accessories,
    recommend: Recommender,
    catalog: Mapping[Sku, Product],
    lang: Lang,
) -> list[Proposal]:
    """What a customer likely to order soon usually buys.

    An in-stock accessory of something they bought, and the graph's best product for the scenario
    their purchases serve most.
    """
    zh = lang is Lang.ZH
    strength = min(1.0, repurchase.score / REPURCHASE_FULL)
    drivers = _drivers(repurchase)
    why = ", ".join(drivers[1:]) or "-"
    lead = (
        f"3 天内复购可能 {repurchase.score:.2f}（主要因素：{why}）"
        if zh
        else f"repurchase propensity {repurchase.score:.2f} within 3 days (top drivers: {why})"
    )
    glue = "；" if zh else "; "
    proposals: list[Proposal] = []
    kept = [order for order in orders if order.status in _KEPT]  # newest first
    for item, sku in ((i, s) for order in kept for i in order.items for s in accessories(i.sku)):
        product = catalog.get(sku)
        if sku in owned or product is None or product.stock <= 0:
            continue
        path = (
            f"{item.name_zh} ← ACCESSORY_OF ← {product.name_zh}"
            if zh
            else f"{item.name_en} ← ACCESSORY_OF ← {product.name_en}"
        )
        confidence = SCORE_CEILING * math.sqrt(ACCESSORY_PATH_CONFIDENCE * strength)
        sku_path = f"{item.sku} ← ACCESSORY_OF ← {sku}"
        proposals.append(("recommend_accessory", sku, confidence, lead + glue + path, [*drivers, sku_path]))
        break
    scenario = _usual_scenario(kept, catalog, zh)
    if scenario is not None:
        categories = _usual_categories(kept, catalog)
        found = recommend(scenario, lang=lang, owned=sorted(owned), preferred_categories=categories, limit=1)
        if found:
            best = found[0]
            confidence = SCORE_CEILING * math.sqrt(best.confidence * strength)
            proposals.append(
                ("recommend_product", best.sku, confidence, lead + glue + best.rationale, [*drivers, best.rationale])
            )
    return proposals


def _usual_scenario(orders: Sequence[Order], catalog: Mapping[Sku, Product], zh: bool) -> str | None:
    """The usage scenario the customer's purchases serve most (in the rationale's language)."""
    counts = Counter(
        scenario
        for order in orders
        for item in order.items
        if item.sku in catalog
        for scenario in (catalog[item.sku].scenarios_zh if zh else catalog[item.sku].scenarios_en)
    )
    return counts.most_common(1)[0][0] if counts else None
