"""What ``kefu insights train`` and ``kefu insights eval`` run: both models, from the store to files.

``train_models`` builds the snapshots of each target from one read of the store, splits them by
time, trains, calibrates, measures and saves. ``evaluate_models`` measures the saved models again
on the test period they were trained for (from the first test snapshot on; later data extends it),
optionally with plots and the shuffled-label control.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any, Final

from sqlalchemy import Engine

from insights.dataset import HORIZONS, Dataset, Split, build_dataset, split
from insights.models import ScoreModel, evaluate, train
from insights.plots import write_plots
from insights.timeline import History

__all__ = ["SHUFFLED_RUNS", "evaluate_models", "shuffled_control", "train_models"]

SHUFFLED_RUNS: Final = 5
"""Label permutations in the shuffled control. One run's AUC swings by about ±0.1 around 0.5 on
the demo store (a model fitted to noise is a random function of informative features), so the
control reports the mean of several runs and each of them."""


def train_models(engine: Engine, model_dir: Path, *, seed: int = 0, step_days: int = 7) -> list[ScoreModel]:
    """Train, calibrate, measure and save a model of every target (see ``insights.dataset.HORIZONS``).

    Raises:
        InvalidInputError: too little history for a time-based split, or a bad ``step_days``.
    """
    history = History.load(engine)
    models = []
    for target in HORIZONS:
        dataset = build_dataset(history, target, step_days)
        model = train(dataset, split(dataset), seed=seed, step_days=step_days)
        model.save(model_dir)
        models.append(model)
    return models


def evaluate_models(
    engine: Engine, model_dir: Path, *, plots: Path | None = None, shuffled_runs: int = 0
) -> dict[str, dict[str, Any]]:
    """Test-period metrics of each saved model, with its training metadata.

    Args:
        engine: The store's database.
        model_dir: Where ``train_models`` saved the models.
        plots: Write ROC, reliability and contribution plots here.
        shuffled_runs: Also train this many models on permuted labels and report their test AUC.

    Raises:
        ModelError: a model is missing, from another scikit-learn version or damaged.
        InvalidInputError: the store no longer has enough history for the split.
    """
    history = History.load(engine)
    reports: dict[str, dict[str, Any]] = {}
    for target in HORIZONS:
        model = ScoreModel.load(model_dir, target)
        dataset = build_dataset(history, target, int(model.meta["snapshot_days"]))
        periods = split(dataset, test_start=datetime.fromisoformat(model.meta["periods"]["test"]["first"]))
        metrics = evaluate(model, dataset, periods)
        report: dict[str, Any] = {
            "version": model.version,
            "trained": {key: model.meta[key] for key in ("created_at", "seed", "sklearn", "periods", "params")},
            "calibration": model.meta["calibration"],
            "metrics": metrics,
        }
        if shuffled_runs:
            report["shuffled_labels"] = shuffled_control(
                dataset, periods, seed=int(model.meta["seed"]), runs=shuffled_runs
            )
        if plots is not None:
            test = periods.test
            files = write_plots(
                target, dataset.y[test], model.raw(dataset.X[test]), dataset.baseline[test], metrics, plots
            )
            report["plots"] = [str(path) for path in files]
        reports[target] = report
    return reports


def shuffled_control(dataset: Dataset, periods: Split, *, seed: int = 0, runs: int = SHUFFLED_RUNS) -> dict[str, Any]:
    """Test AUC of models trained on permuted labels (seeds ``seed`` … ``seed + runs − 1``): near 0.5."""
    aucs = [
        float(train(dataset, periods, seed=seed + run, shuffled=True).meta["metrics"]["model"]["auc"])
        for run in range(runs)
    ]
    return {"runs": runs, "auc": aucs, "auc_mean": fmean(aucs), "auc_sd": pstdev(aucs)}
