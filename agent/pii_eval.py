"""Span-level quality of the PII redactor, as ``kefu pii eval`` reports it.

A gold span counts as found when a predicted span of the same kind overlaps it; a predicted
span that overlaps no gold span of its kind is a false positive. Kinds group the names that
datasets and Kefu use for the same thing (a Chinese mobile number is a phone number).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.pii import PiiRedactor
from core.errors import ConfigError

__all__ = ["KINDS", "PiiExample", "PiiReport", "evaluate_pii", "load_pii_examples"]

KINDS: dict[str, str] = {
    "PHONE_NUMBER": "PHONE",
    "CN_MOBILE": "PHONE",
    "CN_LANDLINE": "PHONE",
    "CREDIT_CARD": "CARD",
    "CN_BANK_CARD": "CARD",
    "STREET_ADDRESS": "ADDRESS",
    "LOCATION": "ADDRESS",
    "DOMAIN_NAME": "URL",
}
"""Label → kind; labels not listed are their own kind."""


def _kind(label: str) -> str:
    return KINDS.get(label, label)


@dataclass(frozen=True)
class PiiExample:
    """A text with its gold PII spans ``(start, end, label)``."""

    text: str
    spans: tuple[tuple[int, int, str], ...]
    lang: str


@dataclass
class PiiReport:
    """Per-kind recall and precision, overall figures on the kinds Kefu detects, latency."""

    n: int
    per_kind: dict[str, dict[str, float]]
    """kind → support, found, recall, predicted, precision."""
    covered_precision: float
    covered_recall: float
    covered_f1: float
    latency_p50_ms: float
    latency_p99_ms: float
    uncovered: list[str] = field(default_factory=list)
    """Gold kinds Kefu has no recognizer for (recall 0 by construction)."""


def load_pii_examples(paths: Iterable[Path]) -> list[PiiExample]:
    """Read span JSONL (``{"text","spans":[{"start","end","label"}],"lang"}``).

    Raises:
        ConfigError: a missing file or malformed row (named by file and line).
    """
    examples: list[PiiExample] = []
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"no such data file: {path}")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                spans = tuple((int(s["start"]), int(s["end"]), str(s["label"])) for s in row["spans"])
                examples.append(PiiExample(str(row["text"]), spans, str(row.get("lang", "en"))))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}:{number}: expected text and spans with start, end, label") from exc
    return examples


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate_pii(redactor: PiiRedactor, examples: Sequence[PiiExample], detectable: Iterable[str]) -> PiiReport:
    """Score ``redactor`` on ``examples``; ``detectable`` are the labels Kefu has recognizers for."""
    covered = {_kind(label) for label in detectable}
    support: Counter[str] = Counter()
    found: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    latencies: list[float] = []
    for example in examples:
        started = time.perf_counter()
        spans = redactor.analyze(example.text, example.lang if example.lang in ("en", "zh") else "en")
        latencies.append((time.perf_counter() - started) * 1000)
        gold = [((start, end), _kind(label)) for start, end, label in example.spans]
        guesses = [((span.start, span.end), _kind(span.entity_type)) for span in spans]
        for where, kind in gold:
            support[kind] += 1
            found[kind] += any(k == kind and _overlaps(where, w) for w, k in guesses)
        for where, kind in guesses:
            predicted[kind] += 1
            correct[kind] += any(k == kind and _overlaps(where, w) for w, k in gold)
    per_kind: dict[str, dict[str, float]] = {}
    for kind in sorted(set(support) | set(predicted)):
        per_kind[kind] = {
            "support": support[kind],
            "found": found[kind],
            "recall": found[kind] / support[kind] if support[kind] else 0.0,
            "predicted": predicted[kind],
            "precision": correct[kind] / predicted[kind] if predicted[kind] else 0.0,
        }
    tp_recall = sum(found[k] for k in covered)
    gold_total = sum(support[k] for k in covered)
    tp_precision = sum(correct[k] for k in predicted)
    predicted_total = sum(predicted.values())
    recall = tp_recall / gold_total if gold_total else 0.0
    precision = tp_precision / predicted_total if predicted_total else 0.0
    return PiiReport(
        n=len(examples),
        per_kind=per_kind,
        covered_precision=precision,
        covered_recall=recall,
        covered_f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies else 0.0,
        latency_p99_ms=float(np.percentile(latencies, 99)) if latencies else 0.0,
        uncovered=sorted(kind for kind in support if kind not in covered),
    )
