"""A/B experiments: the config file, sticky assignment, and the outcome report with its significance tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from scipy import stats
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db import ConversationLogRow, make_engine
from core.errors import ConfigError
from core.types import CustomerId
from insights.experiments import Experiments
from insights.significance import compare_proportions, compare_ratings

EXAMPLE = Path(str(resources.files("insights").joinpath("experiments.example.toml")))

TWO_ARMS = """
[experiments.trial]
min_per_variant = 30
min_rated = 10
[experiments.trial.variants.a]
weight = 1
[experiments.trial.variants.b]
weight = 1
respond_prompt = "respond.concise"
policy = { clarify_limit = 1 }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the file ------------------------------------------------------------------------------------


def test_the_shipped_example_loads() -> None:
    experiments = Experiments.load(EXAMPLE)
    active = experiments.active
    assert active is not None and active.name == "reply_style"
    assert active.control == "standard"
    concise = experiments.resolve("reply_style:concise")
    assert concise is not None
    assert concise.respond_prompt == "respond.concise"
    assert dict(concise.policy) == {"clarify_limit": 1}
    no_offers = experiments.resolve("vip_offers:no_offers")
    assert no_offers is not None and dict(no_offers.policy) == {"offers": False}
    assert [label for label, _ in experiments.labelled()] == [
        "reply_style:standard",
        "reply_style:concise",
        "vip_offers:offers",
        "vip_offers:no_offers",
    ]


def test_no_file_means_no_experiment() -> None:
    experiments = Experiments.load(None)
    assert experiments.active is None
    assert experiments.assign(CustomerId("C0001")) is None
    assert experiments.resolve(None) is None


def test_the_control_defaults_to_the_first_variant(tmp_path: Path) -> None:
    experiment = Experiments.load(_write(tmp_path, TWO_ARMS)).active
    assert experiment is not None and experiment.control == "a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            TWO_ARMS.replace("[experiments.trial]", "[experiments.trial]\ncolour = 'red'"),
            r"\[experiments.trial\]: unknown keys \['colour'\]",
        ),
        (
            TWO_ARMS + "[experiments.other.variants.x]\n[experiments.other.variants.y]\n",
            "only one experiment may be active",
        ),
        ("[experiments.trial.variants.a]\nweight = 1\n", "needs at least two"),
        (
            TWO_ARMS.replace("weight = 1\nrespond", "weight = 0\nrespond"),
            r"variants.b\] weight must be positive",
        ),
        (TWO_ARMS.replace("weight = 1\nrespond", "weight = true\nrespond"), "weight must be positive"),
        (
            TWO_ARMS.replace("respond.concise", "respond.shouty"),
            r"no file prompts/zh/respond.shouty.md",
        ),
        (TWO_ARMS.replace("respond.concise", "understand"), "respond_prompt must be 'respond' or 'respond.<suffix>'"),
        (TWO_ARMS.replace("min_per_variant = 30", "control = 'c'"), "control 'c' is not one of its variants"),
        (TWO_ARMS.replace("min_per_variant = 30", "alpha = 0.5"), "alpha must be a number from 0.001 to 0.2"),
        (TWO_ARMS.replace("min_per_variant = 30", "min_per_variant = 1.5"), "min_per_variant must be an integer"),
        (TWO_ARMS.replace("min_per_variant = 30", "active = 'yes'"), "active must be true or false"),
        (TWO_ARMS.replace("[experiments.trial]", "[experiments.Trial]").replace("trial.", "Trial."), "name must be"),
        (TWO_ARMS.replace("{ clarify_limit = 1 }", "{ clarify_limit = [1] }"), "policy must be a table of numbers"),
        (TWO_ARMS.replace("variants.b]\nweight = 1", "variants.b]\nwieght = 1"), r"unknown keys \['wieght'\]"),
        ("[trial]\nactive = true\n", "unknown top-level keys"),
        ("experiments = 3\n", r"\[experiments\] must be a table"),
        ("[experiments\n", "cannot read experiments file"),
    ],
)
def test_bad_files_are_refused_naming_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        Experiments.load(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read experiments file"):
        Experiments.load(tmp_path / "nope.toml")


# -- assignment ----------------------------------------------------------------------------------


def test_assignment_is_sticky_across_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, TWO_ARMS)
    first, second = Experiments.load(path), Experiments.load(path)
    customers = [CustomerId(f"C{n:04d}") for n in range(1, 221)]
    assert [first.assign(c) for c in customers] == [second.assign(c) for c in customers]
    assert {first.assign(c) for c in customers} == {"trial:a", "trial:b"}


def test_assignment_does_not_depend_on_the_process() -> None:
    # SHA-256 of "experiment\0customer", first 8 bytes over 2**64, against the cumulative weights (not
    # Python's salted hash()): pinned so a change that would move running customers between arms fails.
    experiments = Experiments.load(EXAMPLE)
    pinned = {c: experiments.assign(CustomerId(c)) for c in ("C0001", "C0002", "C0003", "C0004")}
    assert pinned == {
        "C0001": "reply_style:standard",
        "C0002": "reply_style:concise",
        "C0003": "reply_style:concise",
        "C0004": "reply_style:concise",
    }


def test_assignment_follows_the_weights(tmp_path: Path) -> None:
    text = TWO_ARMS.replace("variants.a]\nweight = 1", "variants.a]\nweight = 3")
    experiments = Experiments.load(_write(tmp_path, text))
    counts = Counter(experiments.assign(CustomerId(f"X{n}")) for n in range(20_000))
    assert counts["trial:a"] / 20_000 == pytest.approx(0.75, abs=0.015)


def test_a_new_experiment_name_reshuffles(tmp_path: Path) -> None:
    one = Experiments.load(_write(tmp_path, TWO_ARMS))
    two = Experiments.load(_write(tmp_path, TWO_ARMS.replace("trial", "trial2")))
    customers = [CustomerId(f"C{n:04d}") for n in range(1, 201)]
    same = sum(str(one.assign(c))[-1] == str(two.assign(c))[-1] for c in customers)
    assert 60 < same < 140  # independent halves agree about half the time


def test_inactive_experiments_assign_nobody_but_still_resolve(tmp_path: Path) -> None:
    experiments = Experiments.load(_write(tmp_path, TWO_ARMS.replace("min_per_variant = 30", "active = false")))
    assert experiments.assign(CustomerId("C0001")) is None
    assert experiments.resolve("trial:b") is not None
    assert experiments.resolve("trial:zzz") is None


# -- significance --------------------------------------------------------------------------------


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II example (b): 56/70 vs 48/80, method 10.
    result = compare_proportions(48, 80, 56, 70)
    assert result.difference == pytest.approx(0.2)
    assert result.ci_low == pytest.approx(0.0524, abs=5e-4)
    assert result.ci_high == pytest.approx(0.3339, abs=5e-4)


def test_the_z_test_agrees_with_a_chi_square_test() -> None:
    result = compare_proportions(120, 200, 150, 200)
    chi2 = stats.chi2_contingency([[120, 80], [150, 50]], correction=False)
    assert result.test == "two-proportion z-test"
    assert result.p_value == pytest.approx(chi2.pvalue, rel=1e-9)


def test_small_counts_use_fishers_exact_test() -> None:
    result = compare_proportions(1, 40, 6, 40)
    assert result.test == "Fisher exact"
    assert result.p_value == pytest.approx(stats.fisher_exact([[6, 34], [1, 39]]).pvalue)


def test_identical_arms_are_not_different() -> None:
    result = compare_proportions(0, 50, 0, 50)
    assert result.difference == 0 and result.p_value == 1.0
    assert -1 <= result.ci_low <= 0 <= result.ci_high <= 1


def test_ratings_use_mann_whitney_and_welch() -> None:
    a = [3, 4, 2, 3, 3, 4, 2, 3, 5, 3, 2, 4]
    b = [4, 5, 4, 3, 5, 4, 5, 4, 3, 5, 4, 5]
    result = compare_ratings(a, b)
    welch = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert result.test == "Mann-Whitney U"
    assert result.p_value == pytest.approx(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    assert result.difference == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
    assert (result.ci_low, result.ci_high) == pytest.approx((welch.low, welch.high))


def test_empty_arms_are_refused() -> None:
    with pytest.raises(ValueError):
        compare_proportions(0, 0, 1, 2)
    with pytest.raises(ValueError):
        compare_ratings([5], [4, 5])


# -- the report ----------------------------------------------------------------------------------

START = datetime(2026, 10, 1, 9, 0)


@pytest.fixture
def engine(make_database_url: Callable[..., str]) -> Iterator[Engine]:
    engine = make_engine(make_database_url())
    yield engine
    engine.dispose()


def _log(
    engine: Engine,
    variant: str | None,
    n: int,
    *,
    contained: int,
    converted: int,
    ratings: tuple[int, ...] = (),
) -> None:
    """``n`` conversations of ``variant``: the first ``contained`` kept by the bot, the first ``converted`` bought."""
    with Session(engine) as session, session.begin():
        start = session.query(ConversationLogRow).count()
        for i in range(n):
            at = START + timedelta(minutes=start + i)
            session.add(
                ConversationLogRow(
                    conversation_id=f"conv-{start + i}",
                    customer_id=f"C{(start + i) % 220 + 1:04d}",
                    channel="web",
                    lang="en",
                    started_at=at,
                    last_at=at,
                    turns=3,
                    intents={"order_status": 3},
                    negative_turns=0,
                    fallback_turns=0,
                    handoff_reason=None if i < contained else "customer asked for a human",
                    reached_close_deal=i < converted,
                    satisfaction=ratings[i] if i < len(ratings) else None,
                    variant=variant,
                    seeded=False,
                )
            )


def test_the_report_counts_each_variant_and_tests_the_differences(tmp_path: Path, engine: Engine) -> None:
    control_ratings = [3, 4, 2, 3, 3, 4, 2, 3, 5, 3, 2, 4]
    variant_ratings = [4, 5, 4, 3, 5, 4, 5, 4, 3, 5, 4, 5]
    _log(engine, "trial:a", 200, contained=120, converted=20, ratings=tuple(control_ratings))
    _log(engine, "trial:b", 200, contained=150, converted=22, ratings=tuple(variant_ratings))
    _log(engine, "other:a", 50, contained=0, converted=0)  # another experiment's conversations
    _log(engine, None, 50, contained=50, converted=50)  # no experiment
    (report,) = Experiments.load(_write(tmp_path, TWO_ARMS)).report(engine)
    a, b = report.variants
    assert (a.variant, a.conversations, a.contained, a.converted, a.rated) == ("a", 200, 120, 20, 12)
    assert (b.variant, b.conversations, b.contained, b.converted, b.rated) == ("b", 200, 150, 22, 12)
    assert a.containment_rate == 0.6 and b.containment_rate == 0.75
    assert b.satisfaction_mean == pytest.approx(sum(variant_ratings) / 12, abs=1e-3)
    by_metric = {c.metric: c for c in report.comparisons}
    containment = by_metric["containment"]
    assert containment.difference == pytest.approx(0.15)
    assert containment.verdict == "significant"
    assert containment.p_value is not None and containment.p_value < 0.01
    assert containment.ci_low is not None and containment.ci_high is not None
    assert 0 < containment.ci_low < 0.15 < containment.ci_high
    assert "containment: b 75.0% of 200 vs a 60.0% of 200: +15.0 points" in containment.note
    conversion = by_metric["conversion"]
    assert conversion.verdict == "not_significant" and conversion.p_value is not None and conversion.p_value > 0.5
    satisfaction = by_metric["satisfaction"]
    assert satisfaction.test == "Mann-Whitney U" and satisfaction.verdict == "significant"


def test_small_samples_say_not_enough_data(tmp_path: Path, engine: Engine) -> None:
    _log(engine, "trial:a", 12, contained=3, converted=0, ratings=(1, 2))
    _log(engine, "trial:b", 9, contained=9, converted=5, ratings=(5, 5))
    (report,) = Experiments.load(_write(tmp_path, TWO_ARMS)).report(engine)
    for comparison in report.comparisons:
        assert comparison.verdict == "not_enough_data"
        assert comparison.p_value is None and comparison.ci_low is None
        assert comparison.note.startswith("not enough data")
    containment = next(c for c in report.comparisons if c.metric == "containment")
    assert containment.difference == pytest.approx(1.0 - 0.25)
    assert "need 30 per variant" in containment.note


def test_an_experiment_without_conversations_reports_empty_arms(tmp_path: Path, engine: Engine) -> None:
    (report,) = Experiments.load(_write(tmp_path, TWO_ARMS)).report(engine)
    assert [v.conversations for v in report.variants] == [0, 0]
    assert all(v.containment_rate is None and v.satisfaction_mean is None for v in report.variants)
    assert all(c.verdict == "not_enough_data" and c.difference is None for c in report.comparisons)


def test_several_variants_share_the_significance_level(tmp_path: Path, engine: Engine) -> None:
    text = TWO_ARMS + "[experiments.trial.variants.c]\nweight = 1\n"
    _log(engine, "trial:a", 40, contained=20, converted=4)
    _log(engine, "trial:c", 40, contained=29, converted=4)
    (report,) = Experiments.load(_write(tmp_path, text)).report(engine)
    assert [c.variant for c in report.comparisons] == ["b"] * 3 + ["c"] * 3
    assert {c.alpha for c in report.comparisons} == {0.025}
    containment = next(c for c in report.comparisons if c.variant == "c" and c.metric == "containment")
    # 50 % vs 72.5 % of 40: p = 0.039 would pass 0.05, but not the corrected 0.025.
    assert containment.p_value == pytest.approx(0.0389, abs=5e-4)
    assert containment.verdict == "not_significant"
