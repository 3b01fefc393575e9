"""Significance tests for A/B outcomes: two proportions, and two samples of 1-5 ratings.

- **Proportions** (containment, conversion): the difference ``b - a`` with Newcombe's hybrid
  score interval (method 10: built from each arm's Wilson interval, which stays inside [-1, 1]
  and behaves near 0 % and 100 %, unlike the Wald interval). The p-value comes from the pooled
  two-proportion z-test when every expected cell count is at least 5, and from Fisher's exact
  test otherwise (small samples, rare outcomes such as a 2 % conversion rate).
- **Ratings** (satisfaction): Mann-Whitney U, two-sided (ratings are ordinal, rarely normal);
  the difference of means with Welch's t interval, for reading the size of the effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

__all__ = ["TestResult", "compare_proportions", "compare_ratings"]

_MIN_EXPECTED = 5.0
"""Below this expected count in a cell of the 2x2 table the normal approximation is not trusted."""


@dataclass(frozen=True)
class TestResult:
    """One comparison of a variant (``b``) with the control (``a``)."""

    difference: float
    """``b - a``: rate difference for proportions, mean difference for ratings."""
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    """``two-proportion z-test``, ``Fisher exact`` or ``Mann-Whitney U``."""


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of one proportion."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def compare_proportions(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, confidence: float = 0.95
) -> TestResult:
    """Compare two rates (``successes / n``): difference, its interval and a two-sided p-value.

    Args:
        successes_a: Successes in the control.
        n_a: Trials in the control.
        successes_b: Successes in the variant.
        n_b: Trials in the variant.
        confidence: Coverage of the interval.

    Raises:
        ValueError: an empty arm, or successes outside ``0..n``.
    """
    if n_a < 1 or n_b < 1 or not 0 <= successes_a <= n_a or not 0 <= successes_b <= n_b:
        raise ValueError(f"need 0 <= successes <= n and n >= 1; got {successes_a}/{n_a} and {successes_b}/{n_b}")
    z = _z(confidence)
    p_a, p_b = successes_a / n_a, successes_b / n_b
    difference = p_b - p_a
    low_a, high_a = _wilson(successes_a, n_a, z)
    low_b, high_b = _wilson(successes_b, n_b, z)
    ci_low = difference - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    ci_high = difference + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    pooled = (successes_a + successes_b) / (n_a + n_b)
    if min(n_a, n_b) * min(pooled, 1 - pooled) >= _MIN_EXPECTED:
        se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        p_value, test = float(2 * stats.norm.sf(abs(difference) / se)), "two-proportion z-test"
    else:
        table = [[successes_b, n_b - successes_b], [successes_a, n_a - successes_a]]
        p_value, test = float(stats.fisher_exact(table).pvalue), "Fisher exact"
    return TestResult(difference, max(-1.0, ci_low), min(1.0, ci_high), min(1.0, p_value), test)


def compare_ratings(a: Sequence[int], b: Sequence[int], *, confidence: float = 0.95) -> TestResult:
    """Compare two samples of ratings: Mann-Whitney U p-value, mean difference with Welch's interval.

    Args:
        a: The control's ratings.
        b: The variant's ratings.
        confidence: Coverage of the interval.

    Raises:
        ValueError: fewer than two ratings in an arm.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least two ratings per arm; got {len(a)} and {len(b)}")
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    difference = mean_b - mean_a
    var_a = sum((x - mean_a) ** 2 for x in a) / (len(a) - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (len(b) - 1)
    se2_a, se2_b = var_a / len(a), var_b / len(b)
    se = math.sqrt(se2_a + se2_b)
    if se == 0:
        ci_low = ci_high = difference  # every rating identical within each arm: nothing to be unsure about
    else:
        dof = (se2_a + se2_b) ** 2 / (se2_a**2 / (len(a) - 1) + se2_b**2 / (len(b) - 1))
        half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
        ci_low, ci_high = difference - half, difference + half
    p_value = float(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    return TestResult(difference, ci_low, ci_high, p_value, "Mann-Whitney U")
