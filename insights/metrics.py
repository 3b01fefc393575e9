"""How good a score is: ROC AUC, precision@k per snapshot, Brier score, calibration error, reliability.

Precision@k is computed the way the scores are used: at each snapshot (one week), rank the
customers, take the top ``k`` (the top 10 % of that week's customers, or the top 20), and count how
many of them were positive; the numbers reported are the means over the test snapshots. Random
ranking scores the positive rate (``prevalence``), which is reported next to it.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

__all__ = [
    "BINS",
    "expected_calibration_error",
    "precision_at_k",
    "ranking_metrics",
    "reliability",
    "roc_points",
    "score_metrics",
]

FloatArray = npt.NDArray[np.float64]
BINS: Final = 10
"""Equal-width probability bins of the reliability table and the calibration error."""
TOP_SHARE: Final = 0.10
TOP_N: Final = 20


def precision_at_k(
    y: npt.NDArray[np.int64], score: FloatArray, groups: npt.NDArray[np.int64], *, share: float | None, n: int | None
) -> float:
    """Mean over ``groups`` (snapshots) of the positive rate among each group's top-``k`` scores.

    ``k`` is ``ceil(share × group size)`` or ``n`` (capped at the group size); ties are broken by
    row order, so the result is deterministic.
    """
    rates = []
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        k = min(len(rows), int(np.ceil(share * len(rows))) if share is not None else int(n or 1))
        top = rows[np.argsort(-score[rows], kind="stable")[:k]]
        rates.append(float(y[top].mean()))
    return float(np.mean(rates)) if rates else float("nan")


def reliability(y: npt.NDArray[np.int64], probability: FloatArray, bins: int = BINS) -> list[dict[str, Any]]:
    """The reliability table: per probability bin, its range, count, mean prediction and observed rate.

    An empty bin has None for its mean prediction and observed rate (JSON has no NaN).
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "mean_predicted": float(probability[members].mean()) if count else None,
                "observed": float(y[members].mean()) if count else None,
            }
        )
    return table


def expected_calibration_error(y: npt.NDArray[np.int64], probability: FloatArray, bins: int = BINS) -> float:
    """Σ over bins of (bin share) × |mean prediction − observed rate|."""
    total = len(y)
    return float(
        sum(
            row["count"] / total * abs(row["mean_predicted"] - row["observed"])
            for row in reliability(y, probability, bins)
            if row["count"]
        )
    )


def ranking_metrics(y: npt.NDArray[np.int64], score: FloatArray, groups: npt.NDArray[np.int64]) -> dict[str, float]:
    """AUC and precision@k of any score (probabilities or a raw baseline feature)."""
    return {
        "auc": float(roc_auc_score(y, score)),
        "precision_at_10pct": precision_at_k(y, score, groups, share=TOP_SHARE, n=None),
        "precision_at_20": precision_at_k(y, score, groups, share=None, n=TOP_N),
    }


def score_metrics(
    y: npt.NDArray[np.int64], probability: FloatArray, groups: npt.NDArray[np.int64], ranking: FloatArray
) -> dict[str, Any]:
    """Ranking metrics of the raw score plus Brier score, calibration error and reliability of probabilities.

    Ranking by the raw score keeps a model honest whose calibration collapsed to a constant (a model
    without signal): its AUC is that of its own ranking, not a flat 0.5.
    """
    return {
        **ranking_metrics(y, ranking, groups),
        "brier": float(brier_score_loss(y, probability)),
        "ece": expected_calibration_error(y, probability),
        "prevalence": float(np.mean(y)),
        "rows": len(y),
        "snapshots": len(np.unique(groups)),
        "reliability": reliability(y, probability),
    }


def roc_points(y: npt.NDArray[np.int64], score: FloatArray) -> tuple[FloatArray, FloatArray]:
    """False and true positive rates along the ROC curve."""
    fpr, tpr, _ = roc_curve(y, score)
    return np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
