"""Outcomes of an A/B experiment per variant, from ``conversation_log``, and each variant against the control.

Three outcomes, one row per conversation: **containment** (the bot handled it alone: no
``handoff_reason``), **conversion** (the dialogue reached ``close_deal``) and **satisfaction**
(the customer's 1-5 rating, when given). A comparison is only tested when both arms have
``min_per_variant`` conversations (``min_rated`` ratings); below that the report says "not enough
data" and gives no p-value. With several variants the significance level is divided by their
number (Bonferroni), so running more arms does not buy more false positives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from core.db import ConversationLogRow
from insights.significance import TestResult, compare_proportions, compare_ratings

if TYPE_CHECKING:
    from insights.experiments import Experiment

__all__ = ["ExperimentReport", "MetricComparison", "VariantOutcome", "experiment_report"]

Metric = Literal["containment", "conversion", "satisfaction"]
Verdict = Literal["significant", "not_significant", "not_enough_data"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class VariantOutcome(_Frozen):
    """What one arm's conversations came to."""

    variant: str
    label: str
    """``experiment:variant`` as the conversation log records it."""
    weight: float
    conversations: int
    contained: int
    """Conversations the bot handled without a handoff."""
    containment_rate: float | None
    converted: int
    """Conversations that reached ``close_deal``."""
    conversion_rate: float | None
    rated: int
    satisfaction_mean: float | None
    """Mean rating 1-5 over the rated conversations."""


class MetricComparison(_Frozen):
    """One outcome of one variant against the control."""

    metric: Metric
    variant: str
    control: str
    control_value: float | None
    variant_value: float | None
    difference: float | None
    """Variant minus control: a rate difference (0.05 = 5 points) or a mean-rating difference."""
    ci_low: float | None
    """95 % interval of the difference; None when there is not enough data."""
    ci_high: float | None
    p_value: float | None
    test: str | None
    alpha: float
    """The level the p-value is compared with (after the Bonferroni correction)."""
    verdict: Verdict
    note: str
    """The comparison in one sentence."""


class ExperimentReport(_Frozen):
    """An experiment's outcomes per variant and the significance of each difference from the control."""

    experiment: str
    description: str
    active: bool
    control: str
    alpha: float
    min_per_variant: int
    min_rated: int
    variants: list[VariantOutcome]
    comparisons: list[MetricComparison]


def experiment_report(engine: Engine, experiment: Experiment) -> ExperimentReport:
    """Read the experiment's conversations from ``conversation_log`` and compare every variant with the control."""
    labels = {experiment.label(v.name): v.name for v in experiment.variants}
    log = ConversationLogRow
    counts = (
        select(
            log.variant,
            func.count(),
            func.sum(case((log.handoff_reason.is_(None), 1), else_=0)),
            func.sum(case((log.reached_close_deal, 1), else_=0)),
        )
        .where(log.variant.in_(labels))
        .group_by(log.variant)
    )
    ratings = select(log.variant, log.satisfaction).where(log.variant.in_(labels), log.satisfaction.is_not(None))
    totals: dict[str, tuple[int, int, int]] = {}
    rated: dict[str, list[int]] = {name: [] for name in labels.values()}
    with Session(engine) as session:
        for label, n, contained, converted in session.execute(counts):
            totals[labels[str(label)]] = (int(n or 0), int(contained or 0), int(converted or 0))
        for label, rating in session.execute(ratings):
            rated[labels[str(label)]].append(int(rating or 0))  # the query keeps rated rows only
    outcomes = {
        v.name: _outcome(experiment, v.name, v.weight, totals.get(v.name, (0, 0, 0)), rated[v.name])
        for v in experiment.variants
    }
    control = outcomes[experiment.control]
    alpha = experiment.alpha / max(1, len(outcomes) - 1)
    comparisons = [
        comparison
        for name, outcome in outcomes.items()
        if name != experiment.control
        for comparison in (
            _proportion("containment", control, outcome, experiment.min_per_variant, alpha),
            _proportion("conversion", control, outcome, experiment.min_per_variant, alpha),
            _ratings(control, outcome, rated[experiment.control], rated[name], experiment.min_rated, alpha),
        )
    ]
    return ExperimentReport(
        experiment=experiment.name,
        description=experiment.description,
        active=experiment.active,
        control=experiment.control,
        alpha=experiment.alpha,
        min_per_variant=experiment.min_per_variant,
        min_rated=experiment.min_rated,
        variants=list(outcomes.values()),
        comparisons=comparisons,
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _outcome(
    experiment: Experiment, name: str, weight: float, totals: tuple[int, int, int], ratings: list[int]
) -> VariantOutcome:
    n, contained, converted = totals
    return VariantOutcome(
        variant=name,
        label=experiment.label(name),
        weight=weight,
        conversations=n,
        contained=contained,
        containment_rate=_rate(contained, n),
        converted=converted,
        conversion_rate=_rate(converted, n),
        rated=len(ratings),
        satisfaction_mean=round(sum(ratings) / len(ratings), 3) if ratings else None,
    )


def _verdict(result: TestResult, alpha: float) -> tuple[Verdict, str]:
    if result.p_value < alpha:
        return "significant", f"significant at alpha {alpha:.3g}"
    return "not_significant", f"no significant difference at alpha {alpha:.3g}"


def _proportion(
    metric: Metric, control: VariantOutcome, variant: VariantOutcome, minimum: int, alpha: float
) -> MetricComparison:
    successes = {"containment": "contained", "conversion": "converted"}[metric]
    x_a, x_b = getattr(control, successes), getattr(variant, successes)
    n_a, n_b = control.conversations, variant.conversations
    rate_a, rate_b = _rate(x_a, n_a), _rate(x_b, n_b)
    head = f"{metric}: {variant.variant} {_pct(rate_b)} of {n_b} vs {control.variant} {_pct(rate_a)} of {n_a}"
    if min(n_a, n_b) < minimum:
        return _not_enough(metric, control, variant, rate_a, rate_b, alpha, f"{head}; need {minimum} per variant")
    result = compare_proportions(x_a, n_a, x_b, n_b)
    verdict, words = _verdict(result, alpha)
    note = (
        f"{head}: {result.difference * 100:+.1f} points (95% CI {result.ci_low * 100:+.1f} to "
        f"{result.ci_high * 100:+.1f}), p = {result.p_value:.3g} ({result.test}); {words}"
    )
    return _tested(metric, control, variant, rate_a, rate_b, result, alpha, verdict, note)


def _ratings(
    control: VariantOutcome, variant: VariantOutcome, a: list[int], b: list[int], minimum: int, alpha: float
) -> MetricComparison:
    mean_a, mean_b = control.satisfaction_mean, variant.satisfaction_mean
    head = (
        f"satisfaction: {variant.variant} {_mean(mean_b)} ({len(b)} rated) "
        f"vs {control.variant} {_mean(mean_a)} ({len(a)} rated)"
    )
    if min(len(a), len(b)) < minimum:
        note = f"{head}; need {minimum} ratings per variant"
        return _not_enough("satisfaction", control, variant, mean_a, mean_b, alpha, note)
    result = compare_ratings(a, b)
    verdict, words = _verdict(result, alpha)
    note = (
        f"{head}: {result.difference:+.2f} (95% CI {result.ci_low:+.2f} to {result.ci_high:+.2f}), "
        f"p = {result.p_value:.3g} ({result.test}); {words}"
    )
    return _tested("satisfaction", control, variant, mean_a, mean_b, result, alpha, verdict, note)


def _tested(
    metric: Metric,
    control: VariantOutcome,
    variant: VariantOutcome,
    value_a: float | None,
    value_b: float | None,
    result: TestResult,
    alpha: float,
    verdict: Verdict,
    note: str,
) -> MetricComparison:
    return MetricComparison(
        metric=metric,
        variant=variant.variant,
        control=control.variant,
        control_value=value_a,
        variant_value=value_b,
        difference=round(result.difference, 4),
        ci_low=round(result.ci_low, 4),
        ci_high=round(result.ci_high, 4),
        p_value=round(result.p_value, 6),
        test=result.test,
        alpha=round(alpha, 6),
        verdict=verdict,
        note=note,
    )


def _not_enough(
    metric: Metric,
    control: VariantOutcome,
    variant: VariantOutcome,
    value_a: float | None,
    value_b: float | None,
    alpha: float,
    note: str,
) -> MetricComparison:
    difference = round(value_b - value_a, 4) if value_a is not None and value_b is not None else None
    return MetricComparison(
        metric=metric,
        variant=variant.variant,
        control=control.variant,
        control_value=value_a,
        variant_value=value_b,
        difference=difference,
        ci_low=None,
        ci_high=None,
        p_value=None,
        test=None,
        alpha=round(alpha, 6),
        verdict="not_enough_data",
        note=f"not enough data: {note}",
    )


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _mean(mean: float | None) -> str:
    return "-" if mean is None else f"{mean:.2f}"
