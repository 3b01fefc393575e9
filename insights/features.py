"""Per-customer features at a cutoff time, computed only from what was known strictly before it.

``insights.timeline.History`` reads the rows the features need (customers, orders and their lines,
tickets, the text-free ``conversation_log``) in five queries into numpy arrays; ``features_at``
turns that history into one row per customer for a cutoff ``at``, vectorised, so the ~100 weekly
snapshots of a training set cost one load and a few milliseconds each. ``build_features`` does
both for one cutoff and reads only rows from before it.

No leakage, by construction:

- an order counts from its ``created_at``; its cancellation or return counts only when the order's
  ``updated_at`` (the time its status was set) is also before ``at``, otherwise it is still open;
- a conversation counts once it is over (``last_at`` before ``at``); its satisfaction rating has no
  time of its own and is taken as given at ``last_at`` (ratings come at the end of a conversation);
- customers who joined at or after ``at`` are left out; the tier is the one exception: the store
  keeps only the current tier, so ``tier`` is today's value (it changes rarely and slowly).

Missing values are explicit: ``recency_days`` of a customer without a kept order is their tenure
(as if joining were the last event), ``mean_gap_days`` with fewer than two orders is the time since
the first order (or the tenure), ``days_since_last_conversation`` without any is ``NEVER_DAYS`` and
``satisfaction_mean`` without a rating is ``NO_RATING``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from insights.timeline import CHANNELS, History, day_number

__all__ = ["FEATURES", "NEVER_DAYS", "NO_RATING", "FeatureTable", "build_features", "features_at"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

FEATURES: Final[tuple[str, ...]] = (
    "recency_days",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "orders_lifetime",
    "monetary_365d",
    "avg_order_value",
    "return_rate",
    "cancel_rate",
    "tenure_days",
    "mean_gap_days",
    "overdue_ratio",
    "tier",
    "categories_365d",
    "complaint_tickets_90d",
    "conversations_30d",
    "conversations_90d",
    "negative_turn_share_90d",
    "handoffs_90d",
    "complaint_conversations_90d",
    "complaint_conversations_30d",
    "days_since_complaint",
    "purchase_intent_7d",
    "close_deal_30d",
    "days_since_last_conversation",
    "satisfaction_mean",
    "share_web",
    "share_app",
    "share_wechat",
)
"""The feature columns, in the order of ``FeatureTable.values`` and of the models' inputs."""

NEVER_DAYS: Final = 999.0
"""``days_since_last_conversation`` of a customer who never talked to the shop before ``at``."""
NO_RATING: Final = 0.0
"""``satisfaction_mean`` of a customer who never rated a conversation (ratings are 1 to 5)."""


@dataclass(frozen=True)
class FeatureTable:
    """One row of ``FEATURES`` per customer who existed at ``at``."""

    at: datetime
    customer_ids: tuple[str, ...]
    values: FloatArray
    """Shape ``(len(customer_ids), len(FEATURES))``."""

    def column(self, name: str) -> FloatArray:
        """One feature for every customer."""
        return self.values[:, FEATURES.index(name)]

    def position(self, customer_id: str) -> int | None:
        """The row of a customer, or None if they are not in the table."""
        found = np.searchsorted(self.customer_ids, customer_id)
        if found < len(self.customer_ids) and self.customer_ids[found] == customer_id:
            return int(found)
        return None

    def row(self, customer_id: str) -> dict[str, float] | None:
        """A customer's features by name, or None if they are not in the table."""
        position = self.position(customer_id)
        if position is None:
            return None
        return {name: float(value) for name, value in zip(FEATURES, self.values[position], strict=True)}


def build_features(engine: Engine, at: datetime) -> FeatureTable:
    """The feature table at ``at``, reading only rows from before it."""
    return features_at(History.load(engine, until=at), at)


def features_at(history: History, at: datetime) -> FeatureTable:
    """The feature table at ``at`` from a loaded history (rows at or after ``at`` are ignored)."""
    t = day_number(at)
    keep = history.customer_created < t
    n = len(history.customer_ids)
    columns: dict[str, FloatArray] = {}
    columns.update(_order_features(history, t, n))
    columns.update(_service_features(history, t, n))
    tenure = t - history.customer_created
    columns["tenure_days"] = tenure
    columns["tier"] = history.tier
    lifetime = columns["orders_lifetime"]
    since_first = columns.pop("_since_first")
    columns["recency_days"] = np.where(lifetime > 0, columns["recency_days"], tenure)
    columns["mean_gap_days"] = np.where(
        lifetime >= 2, columns["mean_gap_days"], np.where(lifetime > 0, since_first, tenure)
    )
    columns["overdue_ratio"] = columns["recency_days"] / np.maximum(columns["mean_gap_days"], 1.0)
    values: FloatArray = np.column_stack([columns[name] for name in FEATURES])[keep].astype(np.float64)
    ids = tuple(customer_id for customer_id, kept in zip(history.customer_ids, keep, strict=True) if kept)
    return FeatureTable(at=at, customer_ids=ids, values=values.round(6))


def _order_features(history: History, t: float, n: int) -> dict[str, FloatArray]:
    created, customer = history.order_created, history.order_customer
    known = history.order_updated < t  # the final status was set before t
    before = created < t
    cancelled = before & history.order_cancelled & known
    placed = before & ~cancelled
    returned = placed & history.order_returned & known
    spent = placed & ~returned
    age = t - created

    def count(mask: BoolArray) -> FloatArray:
        return np.bincount(customer[mask], minlength=n).astype(np.float64)

    def total(mask: BoolArray) -> FloatArray:
        return np.bincount(customer[mask], weights=history.order_total[mask], minlength=n).astype(np.float64)

    lifetime = count(placed)
    last = _group_max(customer[placed], created[placed], n, -np.inf)
    first = -_group_max(customer[placed], -created[placed], n, -np.inf)
    spent_count = count(spent)
    orders_ever = count(before)
    items = placed[history.item_order] & (age[history.item_order] <= 365)
    pairs = np.unique(customer[history.item_order[items]] * 1000 + history.item_category[items])
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "recency_days": np.where(lifetime > 0, t - last, 0.0),
            "orders_30d": count(placed & (age <= 30)),
            "orders_90d": count(placed & (age <= 90)),
            "orders_365d": count(placed & (age <= 365)),
            "orders_lifetime": lifetime,
            "monetary_365d": total(spent & (age <= 365)),
            "avg_order_value": np.where(spent_count > 0, total(spent) / spent_count, 0.0),
            "return_rate": np.where(lifetime > 0, count(returned) / lifetime, 0.0),
            "cancel_rate": np.where(orders_ever > 0, count(cancelled) / orders_ever, 0.0),
            "mean_gap_days": np.where(lifetime >= 2, (last - first) / np.maximum(lifetime - 1, 1), 0.0),
            "_since_first": np.where(lifetime > 0, t - first, 0.0),
            "categories_365d": np.bincount(pairs // 1000, minlength=n).astype(np.float64),
        }


def _service_features(history: History, t: float, n: int) -> dict[str, FloatArray]:
    ticket_age = t - history.ticket_created
    complaints = (history.ticket_created < t) & history.ticket_complaint & (ticket_age <= 90)
    customer, age = history.conv_customer, t - history.conv_last
    over = history.conv_last < t

    def count(mask: BoolArray, weights: FloatArray | None = None) -> FloatArray:
        return np.bincount(customer[mask], weights=None if weights is None else weights[mask], minlength=n).astype(
            np.float64
        )

    in_90, in_365 = over & (age <= 90), over & (age <= 365)
    turns_90 = count(in_90, history.conv_turns)
    rated = over & (age <= 365) & ~np.isnan(history.conv_satisfaction)
    ratings = count(rated)
    conversations_365 = count(in_365)
    last = _group_max(customer[over], history.conv_last[over], n, -np.inf)
    complained = over & history.conv_complaint
    last_complaint = _group_max(customer[complained], history.conv_last[complained], n, -np.inf)
    out: dict[str, FloatArray] = {
        "complaint_tickets_90d": np.bincount(history.ticket_customer[complaints], minlength=n).astype(np.float64),
        "conversations_30d": count(over & (age <= 30)),
        "conversations_90d": count(in_90),
        "negative_turn_share_90d": np.divide(
            count(in_90, history.conv_negative), turns_90, out=np.zeros(n), where=turns_90 > 0
        ),
        "handoffs_90d": count(in_90 & history.conv_handoff),
        "complaint_conversations_90d": count(in_90 & history.conv_complaint),
        "complaint_conversations_30d": count(over & (age <= 30) & history.conv_complaint),
        "days_since_complaint": np.where(np.isfinite(last_complaint), t - last_complaint, NEVER_DAYS),
        "purchase_intent_7d": count(over & (age <= 7) & history.conv_purchase),
        "close_deal_30d": count(over & (age <= 30) & history.conv_close),
        "days_since_last_conversation": np.where(np.isfinite(last), t - last, NEVER_DAYS),
        "satisfaction_mean": np.divide(
            count(rated, np.nan_to_num(history.conv_satisfaction)),
            ratings,
            out=np.full(n, NO_RATING),
            where=ratings > 0,
        ),
    }
    for code, channel in enumerate(CHANNELS):
        out[f"share_{channel}"] = np.divide(
            count(in_365 & (history.conv_channel == code)),
            conversations_365,
            out=np.zeros(n),
            where=conversations_365 > 0,
        )
    return out


def _group_max(groups: IntArray, values: FloatArray, n: int, empty: float) -> FloatArray:
    out = np.full(n, empty)
    np.maximum.at(out, groups, values)
    return out
