"""Drift watch: is the intent classifier still understanding what customers ask?

Per day, over the bot's turns: the share of low-confidence turns (confidence below the policy's
``unsure_below``) and the share of unknown-intent turns (intent ``out_of_scope``, or an unsure or
loop-breaker fallback). A day whose share is above ``Settings.drift_low_confidence_share`` or
``Settings.drift_unknown_share`` (and that had at least ``min_turns`` turns, so one odd message on a
quiet day does not alarm anyone) is an alert.

For the alert days the flagged questions are grouped by meaning and each group gets a proposed
label: the intent the classifier guessed, when most of the group's turns were answered with it
(merely with low confidence); ``new topic: <the group's representative question>`` when most were
not understood (out of scope or unsure) and the group recurs; ``out_of_scope`` for a few strays.
``proposal_lines`` writes them in the intent training format (``{"text", "label", "lang"}`` per
line, as in ``agent/intent_data/*.jsonl``).

The file is a proposal, never training data as it stands: a person reads it, corrects or deletes
lines, renames every ``new topic: ...`` label to an intent the dialogue knows (or to
``out_of_scope``), and only then trains with it (``kefu intents train --extra FILE``). Nothing here
retrains anything.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from core.settings import Settings
from insights.questions import Cluster, Encoder, Question, cluster_questions
from insights.turns import OUT_OF_SCOPE, TurnRecord

__all__ = [
    "DriftAlert",
    "DriftDay",
    "DriftPolicy",
    "DriftReport",
    "ProposalGroup",
    "ProposedExample",
    "daily_drift",
    "drift_alerts",
    "drift_report",
    "proposal_lines",
    "write_proposals",
]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
NEW_TOPIC = "new topic: "


@dataclass(frozen=True)
class DriftPolicy:
    """The thresholds of the drift watch."""

    unsure_below: float = 0.45
    """A turn below this confidence is low-confidence (the confidence policy's ``unsure_below``)."""
    low_confidence_share: float = 0.35
    unknown_share: float = 0.20
    min_turns: int = 5
    """Days with fewer bot turns never alert."""
    new_topic_min: int = 3
    """A group of unplaced questions this big is proposed as a new topic rather than out of scope."""

    @classmethod
    def from_settings(cls, settings: Settings, unsure_below: float, *, min_turns: int = 5) -> DriftPolicy:
        """The thresholds configured in ``settings`` with the confidence policy's ``unsure_below``."""
        return cls(
            unsure_below=unsure_below,
            low_confidence_share=settings.drift_low_confidence_share,
            unknown_share=settings.drift_unknown_share,
            min_turns=min_turns,
        )


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class DriftDay(_Model):
    """One day of the drift watch."""

    day: date
    turns: int
    """The bot's turns that day."""
    low_confidence: int
    unknown: int
    low_confidence_share: float | None
    """None on a day without turns."""
    unknown_share: float | None


class DriftAlert(_Model):
    """A day whose share crossed a threshold."""

    day: date
    metric: str
    """``low_confidence`` or ``unknown_intent``."""
    value: float
    threshold: float
    turns: int


class ProposedExample(_Model):
    """One line of the proposal file, in the intent training format."""

    text: str
    label: str
    lang: str


class ProposalGroup(_Model):
    """Flagged questions of the alert days that mean the same thing, with the label proposed for them."""

    label: str
    basis: str
    """``classifier`` (most turns were answered, with low confidence: its guess), ``new_topic`` (most
    were not understood, and the group recurs) or ``out_of_scope`` (a few stray questions)."""
    guess: str | None
    """The classifier's most common in-scope guess for these questions, for the reviewer."""
    count: int
    representative: str
    examples: list[ProposedExample]
    """Every distinct wording, the most frequent first."""


class DriftReport(_Model):
    """The drift watch over a window."""

    unsure_below: float
    low_confidence_threshold: float
    unknown_threshold: float
    min_turns: int
    days: list[DriftDay]
    alerts: list[DriftAlert]
    proposals: list[ProposalGroup]

    @property
    def alert_days(self) -> list[date]:
        """The days with at least one alert, oldest first."""
        return sorted({alert.day for alert in self.alerts})


def _low(turn: TurnRecord, policy: DriftPolicy) -> bool:
    return turn.confidence < policy.unsure_below


def daily_drift(turns: Iterable[TurnRecord], policy: DriftPolicy, days: Sequence[date]) -> list[DriftDay]:
    """The two shares for each of ``days`` (a day without turns has None shares)."""
    total: Counter[date] = Counter()
    low: Counter[date] = Counter()
    unknown: Counter[date] = Counter()
    for turn in turns:
        if not turn.by_bot:
            continue
        day = turn.at.date()
        total[day] += 1
        low[day] += _low(turn, policy)
        unknown[day] += turn.unknown()
    return [
        DriftDay(
            day=day,
            turns=total[day],
            low_confidence=low[day],
            unknown=unknown[day],
            low_confidence_share=round(low[day] / total[day], 4) if total[day] else None,
            unknown_share=round(unknown[day] / total[day], 4) if total[day] else None,
        )
        for day in days
    ]


def drift_alerts(days: Iterable[DriftDay], policy: DriftPolicy) -> list[DriftAlert]:
    """An alert for each day and share strictly above its threshold (days under ``min_turns`` excepted)."""
    alerts: list[DriftAlert] = []
    for day in days:
        if day.turns < policy.min_turns:
            continue
        checks = (
            ("low_confidence", day.low_confidence_share, policy.low_confidence_share),
            ("unknown_intent", day.unknown_share, policy.unknown_share),
        )
        for metric, value, threshold in checks:
            if value is not None and value > threshold:
                alerts.append(DriftAlert(day=day.day, metric=metric, value=value, threshold=threshold, turns=day.turns))
    return alerts


def drift_report(
    turns: Sequence[TurnRecord], days: Sequence[date], policy: DriftPolicy, encoder: Encoder
) -> DriftReport:
    """Daily shares, alerts and, for the alert days, grouped questions with proposed labels."""
    daily = daily_drift(turns, policy, days)
    alerts = drift_alerts(daily, policy)
    alert_days = {alert.day for alert in alerts}
    flagged = [
        Question(turn.question.strip(), turn.intent, "unknown" if turn.unknown() else "low_confidence", turn.at)
        for turn in turns
        if turn.by_bot
        and turn.at.date() in alert_days
        and turn.question
        and turn.question.strip()
        and (turn.unknown() or _low(turn, policy))
    ]
    clusters = cluster_questions(flagged, encoder) if flagged else []
    return DriftReport(
        unsure_below=policy.unsure_below,
        low_confidence_threshold=policy.low_confidence_share,
        unknown_threshold=policy.unknown_share,
        min_turns=policy.min_turns,
        days=daily,
        alerts=alerts,
        proposals=[_proposal(cluster, policy) for cluster in clusters],
    )


def _proposal(cluster: Cluster, policy: DriftPolicy) -> ProposalGroup:
    guesses = Counter(q.intent for q in cluster.questions if q.intent and q.intent != OUT_OF_SCOPE)
    # The most common in-scope guess; ties go to the alphabetically first intent, so runs agree.
    guess = min(guesses, key=lambda intent: (-guesses[intent], intent)) if guesses else None
    unknown = sum(q.reason == "unknown" for q in cluster.questions)
    if guess is not None and unknown * 2 < len(cluster.questions):
        # Mostly answered, only with low confidence: the classifier's guess is the best first label.
        label, basis = guess, "classifier"
    elif len(cluster.questions) >= policy.new_topic_min:
        label, basis = NEW_TOPIC + cluster.representative[:80], "new_topic"
    else:
        label, basis = OUT_OF_SCOPE, "out_of_scope"
    examples = [ProposedExample(text=text, label=label, lang=_lang(text)) for text, _count in cluster.texts]
    return ProposalGroup(
        label=label,
        basis=basis,
        guess=guess,
        count=len(cluster.questions),
        representative=cluster.representative,
        examples=examples,
    )


def _lang(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def proposal_lines(report: DriftReport) -> list[str]:
    """The proposed examples as JSONL lines (no newline), biggest group first."""
    return [
        json.dumps({"text": ex.text, "label": ex.label, "lang": ex.lang}, ensure_ascii=False)
        for group in report.proposals
        for ex in group.examples
    ]


def write_proposals(report: DriftReport, path: Path) -> int:
    """Write the proposal file (UTF-8 JSONL); returns how many examples it holds."""
    lines = proposal_lines(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)
