"""Training data for the churn and repurchase models: weekly snapshots, labels, a time-based split.

A *snapshot* at time ``t`` holds one row per customer who existed at ``t`` and had placed an order
before it: their features at ``t`` (``insights.features``, nothing from ``t`` on) and a label from
the orders after it (an order counts unless its final status is cancelled):

- ``churn_30d``: no order placed in ``(t, t + 30 days]``;
- ``repurchase_3d``: an order placed in ``(t, t + 3 days]``.

Snapshots run every ``step_days`` backwards from the last moment whose label window is complete
(the latest activity minus the horizon) to ``WARM_UP_DAYS`` after the first order, so features
always have some history behind them.

**Split, by time** (``split``): the latest ``TEST_SHARE`` of the snapshots are the test period, the
``CALIBRATION_SHARE`` before them the calibration slice, the rest the training set. A snapshot
whose label window would reach into the next period is dropped (purged), so no training label
looks at calibration or test time and no calibration label at test time; ``Split`` asserts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from core.errors import InvalidInputError
from insights.features import FEATURES, FeatureTable, features_at
from insights.timeline import History, day_number

__all__ = ["HORIZONS", "Dataset", "Split", "build_dataset", "split"]

HORIZONS: Final = {"churn_30d": 30, "repurchase_3d": 3}
"""Each target and its label window in days."""
BASELINES: Final = {"churn_30d": "recency_days", "repurchase_3d": "orders_90d"}
"""The one-feature score each model is compared with: longer since the last order → more churn;
more orders lately → more repurchase."""
WARM_UP_DAYS: Final = 90
TEST_SHARE: Final = 0.25
CALIBRATION_SHARE: Final = 0.2


@dataclass(frozen=True)
class Dataset:
    """Stacked snapshots of one target: ``X[i]`` is ``customers[i]`` at ``snapshots[snapshot[i]]``."""

    target: str
    horizon_days: int
    snapshots: tuple[datetime, ...]
    """Snapshot times, oldest first."""
    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    snapshot: npt.NDArray[np.int64]
    customers: tuple[str, ...]

    @property
    def baseline(self) -> npt.NDArray[np.float64]:
        """The one-feature baseline score of each row (higher means more likely positive)."""
        return self.X[:, FEATURES.index(BASELINES[self.target])]

    def rows(self, mask: npt.NDArray[np.bool_]) -> Dataset:
        """The rows where ``mask`` is true (snapshot indices keep pointing at ``snapshots``)."""
        return Dataset(
            self.target,
            self.horizon_days,
            self.snapshots,
            self.X[mask],
            self.y[mask],
            self.snapshot[mask],
            tuple(c for c, keep in zip(self.customers, mask, strict=True) if keep),
        )


@dataclass(frozen=True)
class Split:
    """Row masks of the three periods and the periods' first and last snapshot times."""

    train: npt.NDArray[np.bool_]
    calibration: npt.NDArray[np.bool_]
    test: npt.NDArray[np.bool_]
    periods: dict[str, tuple[datetime, datetime]]

    def check(self, horizon_days: int) -> None:
        """Assert that no label window of a period reaches into a later period.

        Raises:
            AssertionError: a training (or calibration) label window ends after the next period starts.
        """
        horizon = timedelta(days=horizon_days)
        train_end, calibration_end = self.periods["train"][1], self.periods["calibration"][1]
        calibration_start, test_start = self.periods["calibration"][0], self.periods["test"][0]
        if train_end + horizon > calibration_start or calibration_end + horizon > test_start:
            raise AssertionError(f"label windows overlap the next period: {self.periods}")


def snapshot_times(history: History, horizon_days: int, step_days: int) -> list[datetime]:
    """Snapshot times, oldest first (see the module docstring)."""
    if step_days < 1:
        raise InvalidInputError(f"snapshots must be at least 1 day apart, got {step_days}")
    if not history.order_created.size:
        return []
    last = history.latest_datetime() - timedelta(days=horizon_days)
    first = history_first_order(history) + timedelta(days=WARM_UP_DAYS)
    times: list[datetime] = []
    moment = last
    while moment >= first:
        times.append(moment)
        moment -= timedelta(days=step_days)
    return times[::-1]


def history_first_order(history: History) -> datetime:
    """When the first order was placed."""
    return datetime(1970, 1, 1) + timedelta(days=float(history.order_created.min()))


def build_dataset(history: History, target: str, step_days: int = 7) -> Dataset:
    """All snapshots of ``target`` over the history.

    Raises:
        InvalidInputError: an unknown target or step.
    """
    if target not in HORIZONS:
        raise InvalidInputError(f"unknown target {target!r}; choose one of {sorted(HORIZONS)}")
    horizon = HORIZONS[target]
    times = snapshot_times(history, horizon, step_days)
    kept = ~history.order_cancelled
    blocks: list[tuple[FeatureTable, npt.NDArray[np.int64]]] = []
    for t in times:
        table = features_at(history, t)
        start = day_number(t)
        window = kept & (history.order_created > start) & (history.order_created <= start + horizon)
        counts = np.bincount(history.order_customer[window], minlength=len(history.customer_ids))
        index = np.searchsorted(history.customer_ids, table.customer_ids)
        labels = counts[index] > 0 if target == "repurchase_3d" else counts[index] == 0
        blocks.append((table, labels.astype(np.int64)))
    eligible = [table.column("orders_lifetime") > 0 for table, _ in blocks]
    width = len(FEATURES)
    return Dataset(
        target=target,
        horizon_days=horizon,
        snapshots=tuple(times),
        X=np.vstack([t.values[m] for (t, _), m in zip(blocks, eligible, strict=True)] or [np.empty((0, width))]),
        y=np.concatenate([y[m] for (_, y), m in zip(blocks, eligible, strict=True)] or [np.empty(0, np.int64)]),
        snapshot=np.concatenate(
            [np.full(int(m.sum()), i, dtype=np.int64) for i, m in enumerate(eligible)] or [np.empty(0, np.int64)]
        ),
        customers=tuple(
            c
            for (t, _), m in zip(blocks, eligible, strict=True)
            for c, keep in zip(t.customer_ids, m, strict=True)
            if keep
        ),
    )


def split(dataset: Dataset, test_start: datetime | None = None) -> Split:
    """The time-based split of a dataset, with purged boundaries (see the module docstring).

    Args:
        dataset: The snapshots to split.
        test_start: Start the test period here instead of at the latest ``TEST_SHARE`` of the
            snapshots (evaluation of a saved model uses the start it was trained with).

    Raises:
        InvalidInputError: too few snapshots for three periods, or a period without both labels.
    """
    times = dataset.snapshots
    n = len(times)
    if n < 8:
        raise InvalidInputError(f"only {n} snapshots of {dataset.target}: need more order history (seed the store)")
    horizon = timedelta(days=dataset.horizon_days)
    first_test = (
        next((i for i, t in enumerate(times) if t >= test_start), n)
        if test_start is not None
        else n - max(1, round(n * TEST_SHARE))
    )
    first_calibration = first_test - max(1, round(n * CALIBRATION_SHARE))
    test_times = set(range(first_test, n))
    calibration_times = {i for i in range(first_calibration, first_test) if times[i] + horizon <= times[first_test]}
    train_times = {i for i in range(first_calibration) if times[i] + horizon <= times[first_calibration]}
    masks = {
        name: np.isin(dataset.snapshot, sorted(chosen))
        for name, chosen in (("train", train_times), ("calibration", calibration_times), ("test", test_times))
    }
    periods: dict[str, tuple[datetime, datetime]] = {}
    for name, chosen in (("train", train_times), ("calibration", calibration_times), ("test", test_times)):
        labels = dataset.y[masks[name]]
        if not chosen or np.unique(labels).size < 2:
            raise InvalidInputError(f"the {name} period of {dataset.target} has too few snapshots or only one label")
        periods[name] = (times[min(chosen)], times[max(chosen)])
    result = Split(masks["train"], masks["calibration"], masks["test"], periods)
    result.check(dataset.horizon_days)
    return result
