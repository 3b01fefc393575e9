"""The churn and repurchase models: gradient boosting, Platt calibration, metrics, files on disk.

``train`` fits a seeded ``GradientBoostingClassifier`` on the training period of a time-based
split (``insights.dataset``), calibrates it on the calibration slice and measures it on the test
period next to a one-feature baseline. ``ScoreModel.save`` writes ``<target>.pkl`` (the fitted
classifier) and ``<target>.json`` (features, seed, scikit-learn version, training window, metrics,
calibration and the SHA-256 of the pickle); ``ScoreModel.load`` refuses a file from another
scikit-learn version or one whose hash does not match. The pickle is code: load only your own.

**Calibration: sigmoid (Platt) on the raw log-odds, fitted on the calibration slice.** The slice
is a few thousand rows with few positives for the repurchase target (about 2-5 %); isotonic
regression needs many more to be stable, makes a step function whose ties cost ranking quality
(AUC, precision@k), and overfits its slice. Boosting with the log-loss already scores in
log-odds, so what drifts between training and later weeks is mostly a shift and a scale, which
two parameters correct, and a monotone map keeps the ranking exactly. ``evaluate`` reports the test
calibration error with no calibration, sigmoid and isotonic side by side, so the choice is
checked on data. A fit whose slope comes out negative (a model with no signal) is replaced by the
constant slice rate, so the map is always non-decreasing and within [0, 1].
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from core.errors import ModelError
from insights.dataset import BASELINES, Dataset, Split
from insights.explain import Forest
from insights.features import FEATURES
from insights.metrics import expected_calibration_error, ranking_metrics, score_metrics

__all__ = ["PARAMS", "Calibration", "ScoreModel", "evaluate", "train"]

FloatArray = npt.NDArray[np.float64]

PARAMS: Final = {"n_estimators": 100, "learning_rate": 0.05, "max_depth": 2, "min_samples_leaf": 50, "subsample": 0.8}
"""Gradient-boosting settings, fixed (not tuned on the test period): the repurchase target has only
a hundred or so positives in a training period, so leaves need 50 rows, trees of depth 2 allow
pairwise interactions only, and shrinkage with row subsampling damps the rest."""


@dataclass(frozen=True)
class Calibration:
    """``p = 1 / (1 + exp(−(slope × raw + intercept)))``, fitted on the calibration slice."""

    slope: float
    intercept: float

    def __call__(self, raw: FloatArray) -> FloatArray:
        """Calibrated probabilities of raw log-odds."""
        return np.asarray(1.0 / (1.0 + np.exp(-(self.slope * raw + self.intercept))), dtype=np.float64)

    @classmethod
    def fit(cls, raw: FloatArray, y: npt.NDArray[np.int64]) -> Calibration:
        """Platt scaling of ``raw`` to ``y``; a constant (the slice's rate) if the slope is not positive."""
        fitted = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
        slope = float(fitted.coef_[0, 0])
        if slope > 0:
            return cls(slope, float(fitted.intercept_[0]))
        rate = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
        return cls(0.0, float(np.log(rate / (1 - rate))))


@dataclass(frozen=True)
class ScoreModel:
    """A trained model of one target with its calibration and metadata."""

    target: str
    classifier: Any
    """The fitted ``GradientBoostingClassifier``."""
    calibration: Calibration
    meta: dict[str, Any]
    forest: Forest = field(init=False, repr=False, compare=False)
    """The trees stacked for fast explanations."""

    def __post_init__(self) -> None:
        """Stack the trees once (``insights.explain.Forest``)."""
        object.__setattr__(self, "forest", Forest.of(self.classifier))

    @property
    def version(self) -> str:
        """``<target>-<first 12 hex digits of the pickle's SHA-256>``."""
        return str(self.meta["version"])

    def raw(self, X: FloatArray) -> FloatArray:
        """The uncalibrated log-odds."""
        return np.asarray(self.classifier.decision_function(X), dtype=np.float64)

    def predict(self, X: FloatArray) -> FloatArray:
        """Calibrated probabilities."""
        return self.calibration(self.raw(X))

    def explain(self, X: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Per-feature log-odds contributions and the bias (``insights.explain``)."""
        return self.forest.contributions(X, len(FEATURES))

    def save(self, directory: Path) -> Path:
        """Write ``<target>.pkl`` and ``<target>.json`` into ``directory``; return the JSON's path."""
        directory.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps(self.classifier, protocol=5)
        (directory / f"{self.target}.pkl").write_bytes(blob)
        meta_path = directory / f"{self.target}.json"
        meta_path.write_text(json.dumps(self.meta, indent=2, ensure_ascii=False), encoding="utf-8")
        return meta_path

    @classmethod
    def load(cls, directory: Path, target: str) -> ScoreModel:
        """Load a model written by ``save``.

        Raises:
            ModelError: no model, unreadable metadata, another scikit-learn version, or a pickle that
                does not match its recorded SHA-256.
        """
        meta_path, blob_path = directory / f"{target}.json", directory / f"{target}.pkl"
        if not meta_path.is_file() or not blob_path.is_file():
            raise ModelError(f"no {target} model in {directory}: run `kefu insights train`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelError(f"{meta_path} is not valid JSON: run `kefu insights train`") from exc
        if meta.get("sklearn") != sklearn.__version__:
            raise ModelError(
                f"the {target} model was trained with scikit-learn {meta.get('sklearn')}, this is "
                f"{sklearn.__version__}: run `kefu insights train` again"
            )
        blob = blob_path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise ModelError(f"{blob_path} does not match the SHA-256 in {meta_path.name}: run `kefu insights train`")
        if meta.get("features") != list(FEATURES):
            raise ModelError(f"the {target} model was trained on other features: run `kefu insights train`")
        calibration = Calibration(float(meta["calibration"]["slope"]), float(meta["calibration"]["intercept"]))
        return cls(target, pickle.loads(blob), calibration, meta)  # our own file, hash-checked above


def train(dataset: Dataset, split: Split, *, seed: int = 0, step_days: int = 7, shuffled: bool = False) -> ScoreModel:
    """Fit, calibrate and measure a model of ``dataset.target``.

    Args:
        dataset: All snapshots of the target.
        split: The time-based split of ``dataset``.
        seed: Seeds the boosting's row subsampling (and the label permutation).
        step_days: Days between snapshots (recorded in the metadata).
        shuffled: Permute the training and calibration labels first: a control whose test AUC
            should be near 0.5, proving the real model's lift comes from signal.
    """
    y_train, y_calibration = dataset.y[split.train], dataset.y[split.calibration]
    if shuffled:
        rng = np.random.default_rng(seed)
        y_train, y_calibration = rng.permutation(y_train), rng.permutation(y_calibration)
    classifier = GradientBoostingClassifier(**PARAMS, random_state=seed).fit(dataset.X[split.train], y_train)
    raw = np.asarray(classifier.decision_function(dataset.X[split.calibration]), dtype=np.float64)
    calibration = Calibration.fit(raw, y_calibration)
    blob = pickle.dumps(classifier, protocol=5)
    digest = hashlib.sha256(blob).hexdigest()
    meta: dict[str, Any] = {
        "target": dataset.target,
        "version": f"{dataset.target}-{digest[:12]}",
        "sha256": digest,
        "sklearn": sklearn.__version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "features": list(FEATURES),
        "seed": seed,
        "params": PARAMS,
        "horizon_days": dataset.horizon_days,
        "snapshot_days": step_days,
        "shuffled_labels": shuffled,
        "periods": {
            name: {
                "first": first.isoformat(),
                "last": last.isoformat(),
                "rows": int(getattr(split, name).sum()),
                "positives": int(dataset.y[getattr(split, name)].sum()),
            }
            for name, (first, last) in split.periods.items()
        },
        "calibration": {"method": "sigmoid", "slope": calibration.slope, "intercept": calibration.intercept},
        "baseline": BASELINES[dataset.target],
    }
    model = ScoreModel(dataset.target, classifier, calibration, meta)
    meta["metrics"] = evaluate(model, dataset, split)
    return model


def evaluate(model: ScoreModel, dataset: Dataset, split: Split) -> dict[str, Any]:
    """Test-period metrics of the model, its baseline and the calibration alternatives."""
    X, y, groups = dataset.X[split.test], dataset.y[split.test], dataset.snapshot[split.test]
    raw = model.raw(X)
    probability = model.calibration(raw)
    isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
        model.raw(dataset.X[split.calibration]), dataset.y[split.calibration]
    )
    alternatives = {
        "none": 1.0 / (1.0 + np.exp(-raw)),
        "sigmoid": probability,
        "isotonic": np.asarray(isotonic.predict(raw), dtype=np.float64),
    }
    effects, _bias = model.explain(X)
    importance = np.abs(effects).mean(axis=0)
    return {
        "model": score_metrics(y, probability, groups, ranking=raw),
        "baseline": {"feature": BASELINES[dataset.target], **ranking_metrics(y, dataset.baseline[split.test], groups)},
        "calibration_alternatives": {
            name: {"ece": expected_calibration_error(y, p), "brier": float(brier_score_loss(y, p))}
            for name, p in alternatives.items()
        },
        "mean_abs_contribution": {
            name: round(float(value), 5)
            for name, value in sorted(zip(FEATURES, importance, strict=True), key=lambda item: -item[1])
        },
    }
