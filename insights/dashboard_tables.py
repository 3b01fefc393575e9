"""The dashboard's tables as header and rows, for CSV export."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

from core.errors import InvalidInputError
from insights.dashboard import EMOTIONS, Share, Summary

__all__ = ["TABLES", "table"]

Rows = tuple[list[str], list[list[Any]]]


def table(summary: Summary, name: str) -> Rows:
    """One of the summary's tables (``TABLES``) as a header and rows, for CSV export.

    Raises:
        InvalidInputError: an unknown table name.
    """
    if name not in _TABLES:
        raise InvalidInputError(f"unknown table {name!r}: use one of {', '.join(_TABLES)}")
    return _TABLES[name](summary)


def _day_table(summary: Summary) -> Rows:
    header = [
        "day",
        "conversations",
        "contained",
        "containment",
        "handoffs",
        "conversions",
        "satisfaction_mean",
        "turns",
        "fallback_turns",
        "fallback_rate",
        "latency_p50_ms",
        "latency_p90_ms",
        "latency_p99_ms",
        *(f"emotion_{emotion}" for emotion in EMOTIONS),
        "low_confidence_share",
        "unknown_share",
    ]
    drift = {day.day: day for day in summary.drift.days}
    rows = []
    for row in summary.daily:
        watch = drift.get(row.day)
        rows.append(
            [
                row.day.isoformat(),
                row.conversations,
                row.contained,
                row.containment,
                row.handoffs,
                row.conversions,
                row.satisfaction_mean,
                row.turns,
                row.fallback_turns,
                row.fallback_rate,
                row.latency_p50,
                row.latency_p90,
                row.latency_p99,
                *(row.emotions.get(emotion, 0.0 if row.turns else None) for emotion in EMOTIONS),
                watch.low_confidence_share if watch else None,
                watch.unknown_share if watch else None,
            ]
        )
    return header, rows


def _share_table(column: str, shares: list[Share]) -> Rows:
    return [column, "count", "share"], [[s.key, s.count, s.share] for s in shares]


def _segment_rows(summary: Summary) -> Rows:
    header = [
        "segment",
        "label_en",
        "label_zh",
        "basis",
        "customers",
        "conversations",
        "containment",
        "handoff_rate",
        "satisfaction_mean",
        "satisfaction_count",
        "conversion_rate",
    ]
    basis = summary.segments.basis
    rows = [
        [
            r.segment,
            r.label_en,
            r.label_zh,
            basis,
            r.customers,
            r.conversations,
            r.containment,
            r.handoff_rate,
            r.satisfaction_mean,
            r.satisfaction_count,
            r.conversion_rate,
        ]
        for r in summary.segments.rows
    ]
    return header, rows


def _question_rows(summary: Summary) -> Rows:
    header = ["rank", "count", "representative", "examples", "reasons", "intents", "last_at"]
    rows = [
        [
            rank,
            group.count,
            group.representative,
            " | ".join(group.examples),
            "; ".join(f"{key}={count}" for key, count in group.reasons.items()),
            "; ".join(f"{key}={count}" for key, count in group.intents.items()),
            group.last_at.isoformat(timespec="seconds"),
        ]
        for rank, group in enumerate(summary.questions, start=1)
    ]
    return header, rows


def _drift_rows(summary: Summary) -> Rows:
    header = ["day", "turns", "low_confidence", "low_confidence_share", "unknown", "unknown_share", "alerts"]
    alerts: dict[date, list[str]] = defaultdict(list)
    for alert in summary.drift.alerts:
        alerts[alert.day].append(f"{alert.metric}>{alert.threshold}")
    rows = [
        [
            d.day.isoformat(),
            d.turns,
            d.low_confidence,
            d.low_confidence_share,
            d.unknown,
            d.unknown_share,
            " ".join(alerts.get(d.day, [])),
        ]
        for d in summary.drift.days
    ]
    return header, rows


_TABLES: dict[str, Callable[[Summary], Rows]] = {
    "daily": _day_table,
    "intents": lambda summary: _share_table("intent", summary.intents),
    "handoff_reasons": lambda summary: _share_table("reason", summary.handoff_reasons),
    "segments": _segment_rows,
    "questions": _question_rows,
    "drift": _drift_rows,
}

TABLES = tuple(_TABLES)
"""The tables ``table`` exports: daily, intents, handoff_reasons, segments, questions, drift."""
