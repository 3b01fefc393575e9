"""RFM scores and named customer segments (KMeans on standardised log features).

**RFM**: recency (days since the last kept order), frequency (orders in the last 365 days) and
monetary value (spend in the last 365 days) are each scored 1 to 5 by quintile over the
customers in the table, 5 best (most recent, most orders, most spend); ties share a score.

**Segments**: ``Segmentation.fit`` clusters the customers on ``CLUSTER_FEATURES`` (recency,
frequency, monetary, return rate, complaints), each ``log1p``-transformed and standardised, with
``KMeans(k, random_state=seed, n_init=10)``. Names come from the centroids by one rule: every
``SLUGS`` entry has a profile, a weighted sum of the centroid's z-scores (recency counted as
freshness, i.e. negated; ``tenure`` is the clustered customers' mean log tenure, z-scored the same
way, used only for naming); the best-scoring (cluster, name) pair is matched first, then the best
pair among the clusters and names left, and so on (ties: lower cluster number, then ``SLUGS``
order), so two clusters never share a name and the same data always gets the same names. A
cluster whose matched profile scores below ``MIN_FIT``, or that finds no name left, is
``regulars``; when several are, the one nearest the average keeps the plain name and the others
are ``regulars_2``, ``regulars_3``, ... in order of distance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from core.errors import InvalidInputError
from core.types import SegmentInfo
from insights.features import FeatureTable

__all__ = ["CLUSTER_FEATURES", "SLUGS", "Segmentation", "rfm_scores"]

FloatArray = npt.NDArray[np.float64]


class _Name(NamedTuple):
    label_en: str
    label_zh: str
    weights: dict[str, float]
    """Profile: weights of the centroid's z-scores (``fresh`` = −recency)."""
    phrase: str


SLUGS: Final[dict[str, _Name]] = {
    "champions": _Name(
        "Champions",
        "高价值活跃",
        {"fresh": 1.0, "frequency": 1.0, "monetary": 1.0},
        "bought recently, often, spend a lot",
    ),
    "loyal": _Name(
        "Loyal", "忠实客户", {"frequency": 1.0, "monetary": 0.5, "fresh": 0.3, "tenure": 0.3}, "buy steadily over years"
    ),
    "new": _Name("New", "新客户", {"tenure": -1.5, "fresh": 0.5, "frequency": -0.3}, "joined recently, few orders yet"),
    "promising": _Name(
        "Promising", "潜力客户", {"fresh": 1.0, "frequency": -0.5, "monetary": -0.3}, "bought recently, not often yet"
    ),
    "at_risk": _Name(
        "At risk", "流失风险", {"fresh": -1.0, "frequency": 0.5, "monetary": 0.7}, "used to spend well, not lately"
    ),
    "hibernating": _Name(
        "Hibernating", "沉睡客户", {"fresh": -1.0, "frequency": -1.0, "monetary": -0.5}, "long gone, rarely bought"
    ),
    "complainers": _Name(
        "Complainers", "投诉较多", {"complaints": 2.0, "returns": 1.0}, "complain or return more than others"
    ),
    "returners": _Name(
        "Returners", "退货较多", {"returns": 2.0, "complaints": 0.5}, "send back a large share of orders"
    ),
}
"""Segment names with their labels and profiles; ``SegmentInfo.name`` is one of these or ``regulars``."""

MIN_FIT: Final = 0.5
"""A cluster takes a name only if its profile score reaches this (half a standard deviation);
otherwise, or when the names run out, it is ``regulars`` (``regulars_2``, ... for more than one)."""
_FALLBACK: Final = "regulars"
_REGULARS: Final = _Name("Regulars", "普通客户", {}, "no trait far from the average")

CLUSTER_FEATURES: Final = ("recency_days", "orders_365d", "monetary_365d", "return_rate", "complaints")
"""What the clusters are built on (``complaints`` = complaint tickets + complaint conversations, 90 days)."""
_AXES: Final = {"fresh": 0, "frequency": 1, "monetary": 2, "returns": 3, "complaints": 4}


def rfm_scores(table: FeatureTable) -> list[str]:
    """``R5F3M4``-style RFM codes, one per row of ``table``, by quintile within the table."""
    recency = _quintile(-table.column("recency_days"))
    frequency = _quintile(table.column("orders_365d"))
    monetary = _quintile(table.column("monetary_365d"))
    return [f"R{r}F{f}M{m}" for r, f, m in zip(recency, frequency, monetary, strict=True)]


def _quintile(values: FloatArray) -> list[int]:
    """1 to 5 by rank (higher value → higher score); equal values share a score."""
    if values.size == 0:
        return []
    share = (_average_ranks(values) - 0.5) / values.size
    return [int(score) for score in np.clip(np.ceil(share * 5), 1, 5)]


def _average_ranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1)
    _unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return np.asarray(sums[inverse] / counts[inverse], dtype=np.float64)


def _cluster_inputs(table: FeatureTable) -> FloatArray:
    complaints = table.column("complaint_tickets_90d") + table.column("complaint_conversations_90d")
    columns = [table.column(name) for name in CLUSTER_FEATURES[:4]] + [complaints]
    return np.log1p(np.maximum(np.column_stack(columns), 0.0))


@dataclass(frozen=True)
class Segmentation:
    """A fitted clustering with a name for each cluster, and the segments it found."""

    scaler: StandardScaler
    kmeans: KMeans
    names: tuple[str, ...]
    """The slug of cluster ``i``."""
    segments: tuple[SegmentInfo, ...]
    assignments: dict[str, str]
    """Customer id → slug, for the customers it was fitted on."""

    @classmethod
    def fit(cls, table: FeatureTable, *, k: int = 5, seed: int = 0) -> Segmentation:
        """Cluster the customers of ``table`` into ``k`` named segments.

        Raises:
            InvalidInputError: ``k`` below 2, or fewer customers than ``k``.
        """
        if k < 2:
            raise InvalidInputError(f"need at least 2 segments, got k={k}")
        if len(table.customer_ids) < k:
            raise InvalidInputError(f"{len(table.customer_ids)} customers cannot make {k} segments: seed the store")
        inputs = _cluster_inputs(table)
        scaler = StandardScaler().fit(inputs)
        kmeans = KMeans(n_clusters=k, random_state=seed, n_init=10).fit(scaler.transform(inputs))
        labels = np.asarray(kmeans.labels_)
        tenure = np.log1p(table.column("tenure_days"))
        tenure_z = (tenure - tenure.mean()) / (tenure.std() or 1.0)
        centroids = np.column_stack(
            [np.asarray(kmeans.cluster_centers_), [tenure_z[labels == c].mean() for c in range(k)]]
        )
        names = _name_clusters(centroids)
        segments = tuple(
            sorted(
                (_describe(names[c], table, labels == c) for c in range(k)),
                key=lambda segment: (-segment.size, segment.name),
            )
        )
        assignments = {customer: names[c] for customer, c in zip(table.customer_ids, labels, strict=True)}
        return cls(scaler, kmeans, tuple(names), segments, assignments)

    def predict(self, table: FeatureTable) -> list[str]:
        """The segment of each row of ``table`` (e.g. the same customers at another time)."""
        if not table.customer_ids:
            return []
        clusters = self.kmeans.predict(self.scaler.transform(_cluster_inputs(table)))
        return [self.names[int(c)] for c in clusters]


def _name_clusters(centroids: FloatArray) -> list[str]:
    """One slug per centroid row (z-scores of ``CLUSTER_FEATURES`` + tenure), unique (see module doc)."""
    slugs = [slug for slug in SLUGS if SLUGS[slug].weights]
    score = np.zeros((len(centroids), len(slugs)))
    for j, slug in enumerate(slugs):
        for axis, weight in SLUGS[slug].weights.items():
            column = centroids[:, -1] if axis == "tenure" else centroids[:, _AXES[axis]]
            score[:, j] += weight * (-column if axis == "fresh" else column)
    names = [_FALLBACK] * len(centroids)
    free_rows, free_cols = set(range(len(centroids))), set(range(len(slugs)))
    # the best (cluster, name) pair first, then the best of the rest; ties by cluster, then name order
    for flat in np.argsort(-score, axis=None, kind="stable"):
        row, col = divmod(int(flat), len(slugs))
        if row in free_rows and col in free_cols and score[row, col] >= MIN_FIT:
            names[row] = slugs[col]
            free_rows.discard(row)
            free_cols.discard(col)
    seen: Counter[str] = Counter()
    for row in np.argsort(np.abs(centroids).sum(axis=1), kind="stable"):
        if names[row] == _FALLBACK:  # the one nearest the average is plain "regulars"
            seen[_FALLBACK] += 1
            names[row] = _FALLBACK if seen[_FALLBACK] == 1 else f"{_FALLBACK}_{seen[_FALLBACK]}"
    return names


def _describe(slug: str, table: FeatureTable, members: npt.NDArray[np.bool_]) -> SegmentInfo:
    complaints = table.column("complaint_tickets_90d") + table.column("complaint_conversations_90d")
    traits = {
        "recency_days": float(table.column("recency_days")[members].mean()),
        "orders_365d": float(table.column("orders_365d")[members].mean()),
        "monetary_365d": float(table.column("monetary_365d")[members].mean()),
        "return_rate": float(table.column("return_rate")[members].mean()),
        "complaints_90d": float(complaints[members].mean()),
        "tenure_days": float(table.column("tenure_days")[members].mean()),
    }
    name = SLUGS.get(slug, _REGULARS)
    description = (
        f"{name.phrase}: last order {traits['recency_days']:.0f} days ago on average, "
        f"{traits['orders_365d']:.1f} orders and ¥{traits['monetary_365d']:,.0f} in a year, "
        f"{traits['return_rate']:.0%} returned, {traits['complaints_90d']:.2f} complaints in 90 days"
    )
    return SegmentInfo(
        name=slug,
        label_en=name.label_en,
        label_zh=name.label_zh,
        size=int(members.sum()),
        traits={key: round(value, 2) for key, value in traits.items()},
        description=description,
    )
