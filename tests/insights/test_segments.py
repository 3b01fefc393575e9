"""RFM scores and named segments on the demo store, and the naming rule on made-up centroids."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest

from core.db import make_engine
from core.errors import InvalidInputError
from insights.features import FeatureTable, features_at
from insights.segments import MIN_FIT, SLUGS, Segmentation, _name_clusters, rfm_scores
from insights.timeline import History


@pytest.fixture(scope="module")
def table(make_database_url: Callable[..., str]) -> FeatureTable:
    """Every demo customer's features just after the store's latest activity."""
    engine = make_engine(make_database_url(seeded=True))
    history = History.load(engine)
    engine.dispose()
    return features_at(history, history.latest_datetime() + timedelta(seconds=1))


@pytest.fixture(scope="module")
def segmentation(table: FeatureTable) -> Segmentation:
    return Segmentation.fit(table)


def test_every_customer_is_in_exactly_one_named_segment(table: FeatureTable, segmentation: Segmentation) -> None:
    assert set(segmentation.assignments) == set(table.customer_ids)
    assert len(table.customer_ids) == 220
    sizes = {segment.name: segment.size for segment in segmentation.segments}
    assert sum(sizes.values()) == len(table.customer_ids)
    assert Counter(segmentation.assignments.values()) == sizes
    names = [segment.name for segment in segmentation.segments]
    assert len(names) == len(set(names)) == 5
    for segment in segmentation.segments:
        assert segment.label_en and segment.label_zh and segment.description
        assert set(segment.traits) >= {"recency_days", "orders_365d", "monetary_365d", "return_rate"}


def test_segments_are_deterministic(table: FeatureTable, segmentation: Segmentation) -> None:
    again = Segmentation.fit(table)
    assert again.assignments == segmentation.assignments
    assert again.segments == segmentation.segments
    assert segmentation.predict(table) == [segmentation.assignments[c] for c in table.customer_ids]


def test_names_follow_the_traits(segmentation: Segmentation) -> None:
    by_name = {segment.name: segment.traits for segment in segmentation.segments}
    if "champions" in by_name and "hibernating" in by_name:
        assert by_name["champions"]["recency_days"] < by_name["hibernating"]["recency_days"]
        assert by_name["champions"]["monetary_365d"] > by_name["hibernating"]["monetary_365d"]
    # The demo VIP buys often and recently: a valuable segment, not a lapsed one.
    assert segmentation.assignments["C0001"] in {"champions", "loyal", "promising"}


@pytest.mark.parametrize("k", [2, 3, 9, 12])
def test_names_stay_unique_for_any_k(table: FeatureTable, k: int) -> None:
    fitted = Segmentation.fit(table, k=k)
    names = [segment.name for segment in fitted.segments]
    assert len(names) == len(set(names)) == k
    assert sum(segment.size for segment in fitted.segments) == len(table.customer_ids)


def test_too_few_customers_or_segments_is_a_clear_error(table: FeatureTable) -> None:
    with pytest.raises(InvalidInputError, match="at least 2"):
        Segmentation.fit(table, k=1)
    tiny = FeatureTable(table.at, table.customer_ids[:3], table.values[:3])
    with pytest.raises(InvalidInputError, match="cannot make 5 segments"):
        Segmentation.fit(tiny)


def test_naming_rule_on_made_up_centroids() -> None:
    # columns: recency, frequency, monetary, returns, complaints (z-scores), tenure z
    centroids = np.array(
        [
            [-1.5, 1.5, 1.5, 0.0, 0.0, 0.0],  # recent, frequent, big spenders
            [2.0, -1.5, -1.5, 0.0, 0.0, 0.3],  # long gone
            [0.0, 0.0, 0.0, 0.2, 3.0, 0.0],  # complains a lot
            [-1.4, 1.4, 1.4, 0.0, 0.0, 0.0],  # a second champion-like cluster
            [0.05, 0.0, -0.05, 0.0, 0.0, 0.0],  # average on everything
        ]
    )
    names = _name_clusters(centroids)
    assert names[0] == "champions" and names[1] == "hibernating" and names[2] == "complainers"
    assert names[3] != "champions" and names[3] in SLUGS  # the twin gets the next-best name, never a duplicate
    assert names[4] == "regulars"  # no profile reaches MIN_FIT
    assert len(set(names)) == len(names)
    assert MIN_FIT > 0


def test_rfm_codes_are_quintiles(table: FeatureTable) -> None:
    codes = rfm_scores(table)
    assert len(codes) == len(table.customer_ids)
    assert all(re.fullmatch(r"R[1-5]F[1-5]M[1-5]", code) for code in codes)
    recency = Counter(int(code[1]) for code in codes)
    assert set(recency) == {1, 2, 3, 4, 5}
    assert all(30 <= count <= 60 for count in recency.values())  # about a fifth each (ties stay together)
    position = table.position("C0001")  # the demo VIP ordered hours before the latest activity
    assert position is not None and codes[position].startswith("R5")
    freshest = int(np.argmin(table.column("recency_days")))
    assert codes[freshest].startswith("R5")
    stale = int(np.argmax(table.column("recency_days")))
    assert codes[stale].startswith("R1")
