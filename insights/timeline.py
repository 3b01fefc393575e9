"""The store's history as numpy arrays: the rows the customer features are computed from.

``History.load`` reads customers, orders with their lines' categories, tickets and the text-free
``conversation_log`` in five queries; ``insights.features`` then computes a feature table for any
cutoff from memory. Times are fractional days since 1970 (the store keeps naive local times).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.db import ConversationLogRow, CustomerRow, OrderItemRow, OrderRow, ProductRow, TicketRow
from core.types import OrderStatus, TicketKind, Tier

__all__ = ["CHANNELS", "History", "day_number"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TIER_ORDINAL: Final = {Tier.STANDARD.value: 0.0, Tier.SILVER.value: 1.0, Tier.GOLD.value: 2.0, Tier.VIP.value: 3.0}
_RETURNED = frozenset({OrderStatus.RETURN_REQUESTED.value, OrderStatus.RETURNED.value, OrderStatus.REFUNDED.value})
_DISPUTE_INTENTS = frozenset({"return_refund", "exchange"})
"""Intents that make a conversation a complaint only when the customer was also upset in it."""
_PURCHASE_INTENTS = frozenset({"product_inquiry", "product_recommendation", "purchase"})
CHANNELS: Final = ("web", "app", "wechat")
"""The channels whose share of conversations is a feature (``share_<channel>``)."""
_SECONDS_PER_DAY = 86_400.0
_EPOCH = datetime(1970, 1, 1)


def day_number(moment: datetime) -> float:
    """A naive datetime as fractional days since 1970."""
    return (moment.replace(tzinfo=None) - _EPOCH).total_seconds() / _SECONDS_PER_DAY


@dataclass(frozen=True)
class History:
    """Every row the features read, as arrays; times are fractional days since 1970.

    ``*_customer`` arrays index into ``customer_ids``; ``item_order`` indexes into the orders.
    """

    customer_ids: tuple[str, ...]
    customer_created: FloatArray
    tier: FloatArray
    order_customer: IntArray
    order_created: FloatArray
    order_updated: FloatArray
    order_cancelled: BoolArray
    """The order's final status is cancelled (known from ``order_updated`` on)."""
    order_returned: BoolArray
    """Return requested, returned or refunded (known from ``order_updated`` on)."""
    order_total: FloatArray
    item_order: IntArray
    item_category: IntArray
    ticket_customer: IntArray
    ticket_created: FloatArray
    ticket_complaint: BoolArray
    conv_customer: IntArray
    conv_last: FloatArray
    conv_turns: FloatArray
    conv_negative: FloatArray
    conv_handoff: BoolArray
    conv_complaint: BoolArray
    """A ``complaint`` turn, or a return or exchange with negative turns (a calm return is no complaint)."""
    conv_purchase: BoolArray
    conv_close: BoolArray
    conv_satisfaction: FloatArray
    """NaN where the conversation was not rated."""
    conv_channel: IntArray
    """Index into web, app, wechat; -1 for another channel (the terminal)."""

    @property
    def latest(self) -> float:
        """The latest activity (order, ticket or conversation), in days since 1970; 0 for an empty store."""
        times = [self.order_created, self.ticket_created, self.conv_last]
        return max((float(t.max()) for t in times if t.size), default=0.0)

    def latest_datetime(self) -> datetime:
        """``latest`` as a datetime, to the second."""
        return _EPOCH + timedelta(seconds=round(self.latest * _SECONDS_PER_DAY))

    @classmethod
    def load(cls, engine: Engine, until: datetime | None = None) -> History:
        """Read the store; with ``until``, only rows created (conversations: ended) before it.

        Args:
            engine: The store's database.
            until: Leave out everything at or after this moment (customers who joined later too).
        """
        with Session(engine) as session:
            customers = _rows(
                session, select(CustomerRow.id, CustomerRow.created_at, CustomerRow.tier), until, CustomerRow.created_at
            )
            orders = _rows(
                session,
                select(
                    OrderRow.id,
                    OrderRow.customer_id,
                    OrderRow.created_at,
                    OrderRow.updated_at,
                    OrderRow.status,
                    OrderRow.total,
                ).order_by(OrderRow.created_at, OrderRow.id),
                until,
                OrderRow.created_at,
            )
            items = _rows(
                session,
                select(OrderItemRow.order_id, ProductRow.category, OrderRow.created_at)
                .join(ProductRow, ProductRow.sku == OrderItemRow.sku)
                .join(OrderRow, OrderRow.id == OrderItemRow.order_id),
                until,
                OrderRow.created_at,
            )
            tickets = _rows(
                session,
                select(TicketRow.customer_id, TicketRow.created_at, TicketRow.kind),
                until,
                TicketRow.created_at,
            )
            conversations = _rows(
                session,
                select(
                    ConversationLogRow.customer_id,
                    ConversationLogRow.last_at,
                    ConversationLogRow.turns,
                    ConversationLogRow.negative_turns,
                    ConversationLogRow.handoff_reason,
                    ConversationLogRow.intents,
                    ConversationLogRow.reached_close_deal,
                    ConversationLogRow.satisfaction,
                    ConversationLogRow.channel,
                ),
                until,
                ConversationLogRow.last_at,
            )
        customer_ids = tuple(sorted(row[0] for row in customers))
        index = {customer_id: i for i, customer_id in enumerate(customer_ids)}
        created = {row[0]: row for row in customers}
        orders = [row for row in orders if row[1] in index]
        order_index = {row[0]: i for i, row in enumerate(orders)}
        items = [row for row in items if row[0] in order_index]
        categories = {category: i for i, category in enumerate(sorted({row[1] for row in items}))}
        tickets = [row for row in tickets if row[0] in index]
        conversations = [row for row in conversations if row[0] in index]
        return cls(
            customer_ids=customer_ids,
            customer_created=_floats(day_number(created[c][1]) for c in customer_ids),
            tier=_floats(TIER_ORDINAL.get(created[c][2], 0.0) for c in customer_ids),
            order_customer=_ints(index[row[1]] for row in orders),
            order_created=_floats(day_number(row[2]) for row in orders),
            order_updated=_floats(day_number(row[3]) for row in orders),
            order_cancelled=_bools(row[4] == OrderStatus.CANCELLED.value for row in orders),
            order_returned=_bools(row[4] in _RETURNED for row in orders),
            order_total=_floats(float(row[5]) for row in orders),
            item_order=_ints(order_index[row[0]] for row in items),
            item_category=_ints(categories[row[1]] for row in items),
            ticket_customer=_ints(index[row[0]] for row in tickets),
            ticket_created=_floats(day_number(row[1]) for row in tickets),
            ticket_complaint=_bools(row[2] == TicketKind.COMPLAINT.value for row in tickets),
            conv_customer=_ints(index[row[0]] for row in conversations),
            conv_last=_floats(day_number(row[1]) for row in conversations),
            conv_turns=_floats(row[2] for row in conversations),
            conv_negative=_floats(row[3] for row in conversations),
            conv_handoff=_bools(row[4] is not None for row in conversations),
            conv_complaint=_bools(_complaint(row[5] or {}, row[3]) for row in conversations),
            conv_purchase=_bools(bool(_PURCHASE_INTENTS & set(row[5] or {})) for row in conversations),
            conv_close=_bools(bool(row[6]) for row in conversations),
            conv_satisfaction=_floats(np.nan if row[7] is None else float(row[7]) for row in conversations),
            conv_channel=_ints(CHANNELS.index(row[8]) if row[8] in CHANNELS else -1 for row in conversations),
        )


def _complaint(intents: dict[str, int], negative_turns: int) -> bool:
    return "complaint" in intents or (negative_turns > 0 and bool(_DISPUTE_INTENTS & set(intents)))


def _rows(session: Session, query: Any, until: datetime | None, column: Any) -> Sequence[Any]:
    if until is not None:
        query = query.where(column < until)
    return session.execute(query).all()


def _floats(values: Any) -> FloatArray:
    return np.fromiter(values, dtype=np.float64)


def _ints(values: Any) -> IntArray:
    return np.fromiter(values, dtype=np.int64)


def _bools(values: Any) -> BoolArray:
    return np.fromiter(values, dtype=np.bool_)
