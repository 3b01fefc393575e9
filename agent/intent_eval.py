"""Quality of an intent model, as ``kefu intents eval`` reports it.

Accuracy, macro-F1, per-intent precision/recall, out-of-scope recall, latency, a confusion
matrix and a reliability diagram (used to choose the confidence thresholds).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold

from agent.intents import Example, IntentModel, Ranked

__all__ = ["Report", "cross_validate", "evaluate", "plot_confusion", "plot_reliability"]

OOS_LABELS = ("oos", "out_of_scope")


@dataclass
class Report:
    """What ``kefu intents eval`` prints."""

    n: int
    accuracy: float
    macro_f1: float
    per_label: dict[str, tuple[float, float, int]]
    """label → (precision, recall, support)."""
    oos_recall: float | None
    """Share of out-of-scope messages predicted out-of-scope (or rejected below ``reject_below``)."""
    latency_p50_ms: float
    latency_p99_ms: float
    gold: list[str] = field(repr=False)
    predicted: list[str] = field(repr=False)
    confidence: list[float] = field(repr=False)
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    margins: list[float] = field(repr=False, default_factory=list)
    """Gap between the top two probabilities, per message."""

    def routing(self, accept: float, gap: float, unsure_below: float) -> dict[str, float]:
        """How a policy would route these messages.

        Shares decided by the classifier alone (and their accuracy), sent to the LLM stage, and
        below the unsure threshold.
        """
        alone = [
            g == p
            for g, p, c, m in zip(self.gold, self.predicted, self.confidence, self.margins, strict=True)
            if c >= accept and m >= gap
        ]
        below = sum(c < unsure_below for c in self.confidence)
        return {
            "classifier_share": len(alone) / self.n,
            "classifier_accuracy": sum(alone) / len(alone) if alone else 0.0,
            "llm_share": 1 - len(alone) / self.n,
            "unsure_share": below / self.n,
        }


def _predict(
    ranked: Sequence[Ranked], reject_below: float | None, oos_label: str | None
) -> tuple[list[str], list[float]]:
    labels, confidences = [], []
    for item in ranked:
        label = item.top
        if oos_label is not None and reject_below is not None and item.confidence < reject_below:
            label = oos_label
        labels.append(label)
        confidences.append(item.confidence)
    return labels, confidences


def _report(
    gold: list[str], predicted: list[str], confidence: list[float], latencies: list[float], margins: list[float]
) -> Report:
    labels = sorted(set(gold) | set(predicted))
    precision, recall, _f1, support = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    oos = next((label for label in OOS_LABELS if label in gold), None)
    oos_recall = None
    if oos is not None:
        hits = [p == oos for g, p in zip(gold, predicted, strict=True) if g == oos]
        oos_recall = sum(hits) / len(hits)
    return Report(
        n=len(gold),
        accuracy=float(accuracy_score(gold, predicted)),
        macro_f1=float(f1_score(gold, predicted, labels=sorted(set(gold)), average="macro", zero_division=0)),
        per_label={
            label: (float(p), float(r), int(s))
            for label, p, r, s in zip(labels, precision, recall, support, strict=True)
            if s > 0
        },
        oos_recall=oos_recall,
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies else 0.0,
        latency_p99_ms=float(np.percentile(latencies, 99)) if latencies else 0.0,
        gold=gold,
        predicted=predicted,
        confidence=confidence,
        latencies_ms=latencies,
        margins=margins,
    )


def evaluate(model: IntentModel, examples: Sequence[Example], reject_below: float | None = None) -> Report:
    """Score ``model`` on ``examples``, one message at a time (as the agent sees them) for latency."""
    latencies: list[float] = []
    ranked: list[Ranked] = []
    for example in examples:
        started = time.perf_counter()
        ranked.extend(model.rank([example.text]))
        latencies.append((time.perf_counter() - started) * 1000)
    oos = next((label for label in OOS_LABELS if any(e.label == label for e in examples)), None)
    predicted, confidence = _predict(ranked, reject_below, oos)
    return _report([e.label for e in examples], predicted, confidence, latencies, [r.margin for r in ranked])


def cross_validate(
    examples: Sequence[Example],
    train: Callable[[Sequence[Example]], IntentModel],
    folds: int = 5,
    reject_below: float | None = None,
) -> Report:
    """Stratified k-fold cross-validation; every example is predicted once by a model that never saw it."""
    gold, predicted, confidence, latencies, margins = [], [], [], [], []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    labels = [e.label for e in examples]
    for train_index, test_index in splitter.split(np.zeros(len(examples)), labels):
        model = train([examples[i] for i in train_index])
        report = evaluate(model, [examples[i] for i in test_index], reject_below)
        gold += report.gold
        predicted += report.predicted
        confidence += report.confidence
        latencies += report.latencies_ms
        margins += report.margins
    return _report(gold, predicted, confidence, latencies, margins)


def plot_confusion(report: Report, path: Path) -> Path:
    """Write the confusion matrix (rows: gold, columns: predicted, normalised per row) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(set(report.gold) | set(report.predicted))
    matrix = confusion_matrix(report.gold, report.predicted, labels=labels, normalize="true")
    size = max(6.0, 0.28 * len(labels) + 3)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    show_ticks = len(labels) <= 40
    axes.set_xticks(range(len(labels)) if show_ticks else [])
    axes.set_yticks(range(len(labels)) if show_ticks else [])
    if show_ticks:
        axes.set_xticklabels(labels, rotation=90, fontsize=7)
        axes.set_yticklabels(labels, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(f"accuracy {report.accuracy:.3f} · macro-F1 {report.macro_f1:.3f} · n={report.n}")
    figure.colorbar(image, fraction=0.046)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def reliability(report: Report, bins: int = 10) -> list[tuple[float, float, int]]:
    """Per confidence bin: (mean confidence, accuracy, count)."""
    confidence = np.array(report.confidence)
    correct = np.array([g == p for g, p in zip(report.gold, report.predicted, strict=True)], dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for low, high in itertools.pairwise(edges):
        mask = (confidence >= low) & ((confidence < high) if high < 1 else (confidence <= high))
        if mask.any():
            rows.append((float(confidence[mask].mean()), float(correct[mask].mean()), int(mask.sum())))
    return rows


def plot_reliability(report: Report, path: Path, thresholds: Sequence[float] = ()) -> Path:
    """Write the reliability diagram (accuracy against confidence per bin) with the thresholds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = reliability(report)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.plot([r[0] for r in rows], [r[1] for r in rows], marker="o", label="model")
    for value in thresholds:
        top.axvline(value, color="tab:red", linestyle=":")
        bottom.axvline(value, color="tab:red", linestyle=":")
    top.set_ylabel("accuracy")
    top.set_title("reliability diagram (thresholds dotted)")
    top.legend(loc="upper left")
    bottom.bar([r[0] for r in rows], [r[2] for r in rows], width=0.08)
    bottom.set_xlabel("confidence of the top intent")
    bottom.set_ylabel("messages")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
