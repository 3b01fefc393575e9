"""PNG plots of a model's test period: ROC (with the baseline), reliability curve, feature importance.

Matplotlib with the Agg backend (no display); ``write_plots`` returns the files it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from insights.metrics import roc_points

__all__ = ["write_plots"]

FloatArray = npt.NDArray[np.float64]
_TOP_FEATURES = 15


def write_plots(
    target: str,
    y: npt.NDArray[np.int64],
    score: FloatArray,
    baseline: FloatArray,
    metrics: dict[str, Any],
    folder: Path,
) -> list[Path]:
    """Write ``<target>_roc.png``, ``<target>_reliability.png`` and ``<target>_contributions.png``.

    Args:
        target: The model's target, for titles and file names.
        y: Test labels.
        score: The model's test scores (raw or calibrated: the ROC only needs the order).
        baseline: The baseline's test scores.
        metrics: What ``insights.models.evaluate`` returned for this model.
        folder: Where to write (created if missing).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    figure, axes = plt.subplots(figsize=(5, 5))
    for label, values, auc in (
        ("model", score, metrics["model"]["auc"]),
        (f"baseline ({metrics['baseline']['feature']})", baseline, metrics["baseline"]["auc"]),
    ):
        fpr, tpr = roc_points(y, values)
        axes.plot(fpr, tpr, label=f"{label}, AUC {auc:.3f}")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{target}: ROC on the test period")
    axes.legend(loc="lower right")
    written.append(_save(figure, folder / f"{target}_roc.png"))

    figure, axes = plt.subplots(figsize=(5, 5))
    rows = [row for row in metrics["model"]["reliability"] if row["count"]]
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    axes.plot(
        [row["mean_predicted"] for row in rows],
        [row["observed"] for row in rows],
        marker="o",
        label=f"model (ECE {metrics['model']['ece']:.3f})",
    )
    for row in rows:
        axes.annotate(str(row["count"]), (row["mean_predicted"], row["observed"]), fontsize=7)
    axes.set(xlabel="mean predicted probability", ylabel="observed rate", title=f"{target}: reliability (10 bins)")
    axes.legend(loc="upper left")
    written.append(_save(figure, folder / f"{target}_reliability.png"))

    importance = list(metrics["mean_abs_contribution"].items())[:_TOP_FEATURES][::-1]
    figure, axes = plt.subplots(figsize=(6, 5))
    axes.barh([name for name, _ in importance], [value for _, value in importance])
    axes.set(xlabel="mean |contribution| (log-odds)", title=f"{target}: what drives the score")
    figure.tight_layout()
    written.append(_save(figure, folder / f"{target}_contributions.png"))
    return written


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
