"""``Insights``: the one object serving holds to ask about customers (features, segment, model scores).

It reads the whole history once (``insights.timeline.History``, a few tens of milliseconds on the
demo store), computes everyone's features, RFM codes, segments and scores at once, and keeps the
result for ``ttl_s`` seconds; answers for an explicit ``at`` are cached the same way (a few of
them). Thread-safe: the service calls it from worker threads.

Scores exist only for customers the models were trained on: those with at least one kept order
before ``at``. The churn and repurchase models are loaded at construction and by ``reload``; a
model that cannot be loaded (none trained yet, another scikit-learn version) is logged and its
scores are None, so a service starts either way.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from core.errors import InvalidInputError, ModelError
from core.types import Contribution, CustomerId, CustomerInsight, Prediction, SegmentInfo
from insights.dataset import HORIZONS
from insights.features import FEATURES, FeatureTable, features_at
from insights.models import ScoreModel
from insights.segments import Segmentation, rfm_scores
from insights.timeline import History

__all__ = ["TOP_CONTRIBUTIONS", "Insights"]

log = logging.getLogger(__name__)

TOP_CONTRIBUTIONS: Final = 5
"""How many contributions a ``Prediction`` carries (the largest by absolute effect)."""
_CACHED_TIMES: Final = 8


@dataclass(frozen=True)
class _View:
    """Everyone's features, RFM, segment and scores at one moment."""

    table: FeatureTable
    rfm: list[str]
    segments: list[str | None]
    scores: dict[str, npt.NDArray[np.float64]]


@dataclass(frozen=True)
class _Current:
    """The store as last read: its history, the segmentation fitted at its latest activity, the view there."""

    history: History
    segmentation: Segmentation | None
    view: _View
    read_at: float
    """``time.monotonic()`` when the store was read."""


class Insights:
    """Customer features, segments and churn/repurchase scores over one store database, cached briefly."""

    def __init__(self, engine: Engine, model_dir: Path, *, ttl_s: float = 300.0) -> None:
        """Read from ``engine``; load trained models (if any) from ``model_dir``; cache answers ``ttl_s``."""
        self._engine = engine
        self._model_dir = model_dir
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._models: dict[str, ScoreModel] = {}
        self._current: _Current | None = None
        self._views: dict[datetime, _View] = {}
        self._load_models()

    @property
    def models(self) -> dict[str, ScoreModel]:
        """The loaded models by target (empty until ``kefu insights train``)."""
        return dict(self._models)

    def customer_insight(self, customer_id: CustomerId, at: datetime | None = None) -> CustomerInsight | None:
        """Features, RFM, segment and model scores of one customer; None for an unknown customer.

        ``at`` defaults to the store's latest activity. Scores are None until models are trained.
        """
        view = self._view(at)
        position = view.table.position(customer_id)
        if position is None:
            return None
        row = view.table.values[position]
        predictions = {
            target: self._prediction(target, view, position) if view.table.column("orders_lifetime")[position] else None
            for target in HORIZONS
        }
        return CustomerInsight(
            customer_id=customer_id,
            at=view.table.at,
            features={name: float(value) for name, value in zip(FEATURES, row, strict=True)},
            rfm=view.rfm[position],
            segment=view.segments[position],
            churn=predictions["churn_30d"],
            repurchase=predictions["repurchase_3d"],
        )

    def segments(self) -> list[SegmentInfo]:
        """The named segments with their sizes and traits (computed on first use, then cached)."""
        segmentation = self._read().segmentation
        return list(segmentation.segments) if segmentation is not None else []

    def segment_of(self, customer_id: CustomerId) -> str | None:
        """The customer's segment slug, or None for an unknown customer."""
        view = self._read().view
        position = view.table.position(customer_id)
        return None if position is None else view.segments[position]

    def computed_at(self) -> datetime | None:
        """When the current features were computed (just after the latest activity); None for an empty store."""
        view = self._read().view
        return view.table.at if view.table.customer_ids else None

    def reload(self) -> None:
        """Forget cached answers and reload the models (after ``kefu insights train``)."""
        with self._lock:
            self._current = None
            self._views.clear()
            self._load_models()

    # ------------------------------------------------------------------------------------ internals

    def _load_models(self) -> None:
        self._models = {}
        for target in HORIZONS:
            try:
                self._models[target] = ScoreModel.load(self._model_dir, target)
            except ModelError as exc:
                level = logging.WARNING if (self._model_dir / f"{target}.json").exists() else logging.INFO
                log.log(level, "no %s scores: %s", target, exc)

    def _read(self) -> _Current:
        """The current state, reading the store again once ``ttl_s`` has passed."""
        with self._lock:
            current = self._current
            if current is not None and time.monotonic() - current.read_at < self._ttl:
                return current
            history = History.load(self._engine)
            table = features_at(history, history.latest_datetime() + timedelta(seconds=1))
            segmentation: Segmentation | None = None
            try:
                segmentation = Segmentation.fit(table)
            except InvalidInputError as exc:
                log.info("no segments: %s", exc)
            current = _Current(history, segmentation, self._make_view(table, segmentation), time.monotonic())
            self._current = current
            self._views.clear()
            return current

    def _view(self, at: datetime | None) -> _View:
        current = self._read()
        if at is None:
            return current.view
        with self._lock:
            view = self._views.get(at)
            if view is None:
                view = self._make_view(features_at(current.history, at), current.segmentation)
                if len(self._views) >= _CACHED_TIMES:
                    self._views.pop(next(iter(self._views)))
                self._views[at] = view
            return view

    def _make_view(self, table: FeatureTable, segmentation: Segmentation | None) -> _View:
        if not table.customer_ids:
            return _View(table, [], [], {})
        if segmentation is None:
            segments: list[str | None] = [None] * len(table.customer_ids)
        elif table.customer_ids == tuple(segmentation.assignments):
            segments = [segmentation.assignments[c] for c in table.customer_ids]
        else:
            segments = list(segmentation.predict(table))
        scores = {target: model.predict(table.values) for target, model in self._models.items()}
        return _View(table, rfm_scores(table), segments, scores)

    def _prediction(self, target: str, view: _View, position: int) -> Prediction | None:
        model = self._models.get(target)
        if model is None or target not in view.scores:
            return None
        row = view.table.values[position : position + 1]
        effects, _bias = model.explain(row)
        order = np.argsort(-np.abs(effects[0]), kind="stable")[:TOP_CONTRIBUTIONS]
        return Prediction(
            target=target,
            score=round(float(view.scores[target][position]), 4),
            contributions=[
                Contribution(feature=FEATURES[i], value=float(row[0, i]), effect=round(float(effects[0, i]), 4))
                for i in order
            ],
            model_version=model.version,
        )
