"""Churn and repurchase models on the demo store: split, determinism, signal, explanations, files, Insights."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine

from core.db import make_engine
from core.errors import InvalidInputError, ModelError
from core.types import CustomerId
from insights.dataset import HORIZONS, Dataset, Split, build_dataset, split
from insights.explain import init_log_odds
from insights.features import FEATURES
from insights.metrics import expected_calibration_error, precision_at_k, reliability
from insights.models import Calibration, ScoreModel, train
from insights.pipeline import shuffled_control
from insights.profile import TOP_CONTRIBUTIONS, Insights
from insights.timeline import History

Trained = dict[str, tuple[Dataset, Split, ScoreModel]]


@pytest.fixture(scope="module")
def engine(make_database_url: Callable[..., str]) -> Iterator[Engine]:
    engine = make_engine(make_database_url(seeded=True))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def trained(engine: Engine) -> Trained:
    """Both models trained once (seed 0) on the demo store's weekly snapshots."""
    history = History.load(engine)
    out: Trained = {}
    for target in HORIZONS:
        dataset = build_dataset(history, target)
        periods = split(dataset)
        out[target] = (dataset, periods, train(dataset, periods, seed=0))
    return out


@pytest.fixture(scope="module")
def shuffled(trained: Trained) -> dict[str, dict[str, Any]]:
    return {target: shuffled_control(d, s, seed=0, runs=3) for target, (d, s, _m) in trained.items()}


def test_snapshots_and_labels(trained: Trained) -> None:
    for target, (dataset, _periods, _model) in trained.items():
        assert len(dataset.snapshots) >= 80  # weekly over two years, less the warm-up and the horizon
        gaps = {b - a for a, b in zip(dataset.snapshots, dataset.snapshots[1:], strict=False)}
        assert gaps == {timedelta(days=7)}
        assert dataset.X.shape == (len(dataset.y), len(FEATURES)) and set(np.unique(dataset.y)) == {0, 1}
        assert (dataset.X[:, FEATURES.index("orders_lifetime")] > 0).all()  # only customers who have ordered
        assert 0.0 < dataset.y.mean() < 1.0, target


def test_the_split_is_by_time_and_no_label_window_reaches_a_later_period(trained: Trained) -> None:
    for dataset, periods, _model in trained.values():
        horizon = timedelta(days=dataset.horizon_days)
        train_times = {dataset.snapshots[i] for i in np.unique(dataset.snapshot[periods.train])}
        calibration_times = {dataset.snapshots[i] for i in np.unique(dataset.snapshot[periods.calibration])}
        test_times = {dataset.snapshots[i] for i in np.unique(dataset.snapshot[periods.test])}
        assert max(train_times) + horizon <= min(calibration_times)
        assert max(calibration_times) + horizon <= min(test_times)
        assert not (periods.train & periods.test).any() and not (periods.train & periods.calibration).any()
        assert max(test_times) == dataset.snapshots[-1]


def test_a_split_with_overlapping_label_windows_is_refused(trained: Trained) -> None:
    dataset, periods, _model = trained["churn_30d"]
    test_start = periods.periods["test"][0]
    leaky = replace(periods, periods={**periods.periods, "train": (periods.periods["train"][0], test_start)})
    with pytest.raises(AssertionError, match="overlap"):
        leaky.check(dataset.horizon_days)


def test_training_is_deterministic_with_a_seed(trained: Trained) -> None:
    dataset, periods, model = trained["repurchase_3d"]
    again = train(dataset, periods, seed=0)
    np.testing.assert_array_equal(again.raw(dataset.X), model.raw(dataset.X))
    assert again.meta["sha256"] == model.meta["sha256"] and again.calibration == model.calibration
    assert again.meta["metrics"] == model.meta["metrics"]


def test_shuffled_labels_score_near_chance_and_the_real_model_clearly_above(
    trained: Trained, shuffled: dict[str, dict[str, Any]]
) -> None:
    for target, (_dataset, _periods, model) in trained.items():
        control = shuffled[target]
        real = model.meta["metrics"]["model"]["auc"]
        assert abs(control["auc_mean"] - 0.5) < 0.1, (target, control)
        assert real - control["auc_mean"] > 0.05, (target, real, control)
        assert real > 0.55, target


def test_the_repurchase_model_beats_its_one_feature_baseline(trained: Trained) -> None:
    metrics = trained["repurchase_3d"][2].meta["metrics"]
    assert metrics["model"]["auc"] > metrics["baseline"]["auc"]
    assert metrics["model"]["precision_at_10pct"] > metrics["model"]["prevalence"]


def test_contributions_plus_bias_equal_the_raw_score(trained: Trained) -> None:
    for dataset, periods, model in trained.values():
        X = dataset.X[periods.test]
        effects, bias = model.explain(X)
        assert effects.shape == X.shape
        np.testing.assert_allclose(effects.sum(axis=1) + bias, model.classifier.decision_function(X), atol=1e-9)
        prior = dataset.y[periods.train].mean()
        assert init_log_odds(model.classifier) == pytest.approx(np.log(prior / (1 - prior)))


def test_contributions_are_centred_on_the_training_data(trained: Trained) -> None:
    """Expectations recomputed from the leaves make the bias the mean training score and the effects
    average out to zero; sklearn's internal node values (mean gradients) would not."""
    dataset, periods, model = trained["churn_30d"]
    X = dataset.X[periods.train]
    effects, bias = model.explain(X)
    raw_mean = float(model.raw(X).mean())
    assert abs(bias[0] - raw_mean) < 0.01
    assert np.abs(effects.mean(axis=0)).max() < 0.01
    rate = model.classifier.learning_rate
    naive_bias = init_log_odds(model.classifier) + rate * sum(
        estimator.tree_.value[0, 0, 0] for estimator in model.classifier.estimators_[:, 0]
    )
    assert abs(naive_bias - raw_mean) > 5 * abs(bias[0] - raw_mean)


def test_calibration_maps_into_the_unit_interval_and_is_monotone(trained: Trained) -> None:
    grid = np.linspace(-20, 20, 401)
    for _dataset, _periods, model in trained.values():
        probabilities = model.calibration(grid)
        assert ((probabilities >= 0) & (probabilities <= 1)).all()
        assert (np.diff(probabilities) >= 0).all() and model.calibration.slope > 0
    y = np.array([1, 0, 1, 0, 1, 0] * 10)
    flat = Calibration.fit(np.linspace(-3, 3, 60), y)  # no signal, or an inverted one: a constant map
    assert flat.slope >= 0
    assert (np.diff(flat(grid)) >= 0).all()


def test_metrics_on_small_hand_made_examples() -> None:
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.6, 0.5, 0.3, 0.2])
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert precision_at_k(y, score, groups, share=None, n=2) == pytest.approx((0.5 + 0.5) / 2)
    assert precision_at_k(y, score, groups, share=0.25, n=None) == pytest.approx((1.0 + 0.0) / 2)
    perfect = np.array([0.05] * 20 + [0.95] * 20)
    labels = np.array([0] * 19 + [1] + [1] * 19 + [0])
    assert expected_calibration_error(labels, perfect) == pytest.approx(0.0, abs=1e-12)
    table = reliability(labels, perfect)
    assert len(table) == 10 and sum(row["count"] for row in table) == len(labels)


def test_saved_models_load_and_bad_files_are_refused(trained: Trained, tmp_path: Path) -> None:
    dataset, periods, model = trained["churn_30d"]
    model.save(tmp_path)
    loaded = ScoreModel.load(tmp_path, "churn_30d")
    np.testing.assert_array_equal(loaded.predict(dataset.X[periods.test]), model.predict(dataset.X[periods.test]))
    meta = json.loads((tmp_path / "churn_30d.json").read_text())
    assert meta["features"] == list(FEATURES) and meta["seed"] == 0 and meta["periods"]["test"]["rows"] > 0
    assert {"auc", "precision_at_10pct", "precision_at_20", "brier", "ece", "reliability"} <= set(
        meta["metrics"]["model"]
    )

    (tmp_path / "churn_30d.json").write_text(json.dumps({**meta, "sklearn": "0.24.2"}))
    with pytest.raises(ModelError, match=r"scikit-learn 0\.24\.2"):
        ScoreModel.load(tmp_path, "churn_30d")

    (tmp_path / "churn_30d.json").write_text(json.dumps(meta))
    blob = (tmp_path / "churn_30d.pkl").read_bytes()
    (tmp_path / "churn_30d.pkl").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ModelError, match="SHA-256"):
        ScoreModel.load(tmp_path, "churn_30d")
    with pytest.raises(ModelError, match="kefu insights train"):
        ScoreModel.load(tmp_path / "nowhere", "churn_30d")


def test_too_little_history_is_a_clear_error(trained: Trained) -> None:
    dataset, _periods, _model = trained["churn_30d"]
    short = dataset.rows(dataset.snapshot < 5)
    with pytest.raises(InvalidInputError, match="snapshots"):
        split(short)
    with pytest.raises(InvalidInputError, match="unknown target"):
        build_dataset(History.load(make_engine("sqlite://")), "churn_7d")


def test_insights_answer_with_scores_segments_and_contributions(
    engine: Engine, trained: Trained, tmp_path: Path
) -> None:
    insights = Insights(engine, tmp_path)
    before = insights.customer_insight(CustomerId("C0002"))
    assert before is not None and before.churn is None and before.repurchase is None
    assert before.segment in {s.name for s in insights.segments()}
    for _dataset, _periods, model in trained.values():
        model.save(tmp_path)
    insights.reload()
    insight = insights.customer_insight(CustomerId("C0002"))
    assert insight is not None and insight.churn is not None and insight.repurchase is not None
    assert insight.features.keys() == set(FEATURES) and insight.rfm.startswith("R")
    for prediction in (insight.churn, insight.repurchase):
        assert 0.0 <= prediction.score <= 1.0 and len(prediction.contributions) == TOP_CONTRIBUTIONS
        effects = [abs(c.effect) for c in prediction.contributions]
        assert effects == sorted(effects, reverse=True)
        assert prediction.model_version == trained[prediction.target][2].version
    assert insight.segment == insights.segment_of(CustomerId("C0002"))
    assert insights.customer_insight(CustomerId("C9999")) is None
    assert insights.segment_of(CustomerId("C9999")) is None
    past = insights.customer_insight(CustomerId("C0002"), at=datetime(2026, 3, 1))
    assert past is not None and past.at == datetime(2026, 3, 1) and past.features != insight.features
    assert sum(s.size for s in insights.segments()) == 220
