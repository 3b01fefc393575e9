"""Segment conditions (``[offers]`` of the policy file): parsing, matching, and experiment overrides."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from agent.emotion import Emotion
from agent.machine import Intent
from agent.offers import Offers
from agent.policy import Policy
from core.errors import ConfigError
from core.types import CustomerId, CustomerInsight, Lang, Prediction, Tier

AT = datetime(2026, 11, 1, 12, 0)


def insight(segment: str | None, churn: float | None = None) -> CustomerInsight:
    prediction = (
        None if churn is None else Prediction(target="churn_30d", score=churn, contributions=[], model_version="t")
    )
    return CustomerInsight(
        customer_id=CustomerId("C0001"), at=AT, features={}, rfm="R5F5M5", segment=segment, churn=prediction,
        repurchase=None,
    )  # fmt: skip


class Tiers:
    """The ``tier`` argument: answers one tier and counts the lookups."""

    def __init__(self, tier: Tier | None) -> None:
        self.tier, self.calls = tier, 0

    def __call__(self) -> Tier | None:
        self.calls += 1
        return self.tier


def pick(offers: Offers, who: CustomerInsight | None, tier: Tier | None = Tier.STANDARD, **turn: object) -> str | None:
    facts: dict[str, object] = {"intent": Intent.COMPLAINT, "sure": True, "emotion": Emotion.CALM, "lang": Lang.EN}
    facts.update(turn)
    offer = offers.pick(who, Tiers(tier), **facts)  # type: ignore[arg-type]
    return None if offer is None else offer.rule


SHIPPED = Offers.shipped()


def test_the_shipped_rules() -> None:
    assert [rule.name for rule in SHIPPED.rules] == ["vip_recovery", "retention_goodbye"]
    assert SHIPPED.enabled
    assert Policy().offers == SHIPPED == Policy.load().offers


def test_a_top_segment_complaint_gets_the_recovery_offer() -> None:
    offer = SHIPPED.pick(
        insight("champions"),
        Tiers(Tier.STANDARD),
        intent=Intent.COMPLAINT,
        sure=True,
        emotion=Emotion.CALM,
        lang=Lang.ZH,
    )
    assert offer is not None and offer.rule == "vip_recovery"
    assert offer.text.startswith("非常抱歉") and "20元优惠券" in offer.text
    assert offer.reason == "offer vip_recovery (segment champions; intent complaint)"


def test_an_upset_loyal_customer_gets_it_whatever_the_intent() -> None:
    assert pick(SHIPPED, insight("loyal"), intent=Intent.ORDER_STATUS, emotion=Emotion.DISSATISFIED) == "vip_recovery"
    # An unsure reading does not count as a complaint, but the emotion still does.
    assert pick(SHIPPED, insight("loyal"), sure=False, emotion=Emotion.ANGRY) == "vip_recovery"
    assert pick(SHIPPED, insight("loyal"), sure=False, emotion=Emotion.CALM) is None


def test_a_vip_tier_qualifies_outside_the_segments() -> None:
    assert pick(SHIPPED, insight("hibernating"), tier=Tier.VIP) == "vip_recovery"
    assert pick(SHIPPED, insight(None), tier=Tier.VIP) == "vip_recovery"


def test_a_standard_customer_gets_nothing() -> None:
    assert pick(SHIPPED, insight("regulars"), tier=Tier.STANDARD) is None
    assert pick(SHIPPED, insight("regulars"), tier=Tier.GOLD) is None


def test_the_tier_is_looked_up_only_when_needed() -> None:
    tiers = Tiers(Tier.VIP)
    SHIPPED.pick(insight("champions"), tiers, intent=Intent.COMPLAINT, sure=True, emotion=Emotion.CALM, lang=Lang.EN)
    SHIPPED.pick(insight("regulars"), tiers, intent=Intent.GREETING, sure=True, emotion=Emotion.CALM, lang=Lang.EN)
    assert tiers.calls == 0  # a segment match needs no tier; a turn that matches nothing needs no customer


def test_no_insight_fires_nothing() -> None:
    assert pick(SHIPPED, None, tier=Tier.VIP) is None


def test_a_likely_churner_saying_goodbye_gets_the_retention_line() -> None:
    assert pick(SHIPPED, insight("regulars", churn=0.95), intent=Intent.GOODBYE) == "retention_goodbye"
    assert pick(SHIPPED, insight("regulars", churn=0.9), intent=Intent.GOODBYE) == "retention_goodbye"
    assert pick(SHIPPED, insight("regulars", churn=0.89), intent=Intent.GOODBYE) is None
    assert pick(SHIPPED, insight("regulars", churn=None), intent=Intent.GOODBYE) is None  # no model yet
    assert pick(SHIPPED, insight("regulars", churn=0.95), intent=Intent.GOODBYE, sure=False) is None


def test_each_rule_fires_once_per_conversation_and_switches_off() -> None:
    assert pick(SHIPPED, insight("champions"), made={"vip_recovery"}) is None
    assert pick(SHIPPED.switched(False), insight("champions")) is None
    assert pick(SHIPPED.switched(False).switched(True), insight("champions")) == "vip_recovery"


def test_the_first_matching_rule_wins() -> None:
    offers = Offers.parse(
        {
            "rules": {
                "first": {"segments": ["at_risk"], "intents": ["complaint"], "say": {"en": "one", "zh": "一"}},
                "second": {"churn_at_least": 0.1, "intents": ["complaint"], "say": {"en": "two", "zh": "二"}},
            }
        },
        "test",
    )
    assert pick(offers, insight("at_risk", churn=0.5)) == "first"
    assert pick(offers, insight("at_risk", churn=0.5), made={"first"}) == "second"
    assert pick(offers, insight("new", churn=0.5)) == "second"


RULE = {"segments": ["champions"], "intents": ["complaint"], "say": {"en": "sorry", "zh": "抱歉"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"intents": ["complain"]}, r"intents: unknown \['complain'\]"),
        ({"emotions": ["furious"]}, r"emotions: unknown \['furious'\]"),
        ({"tiers": ["platinum"]}, r"tiers: unknown \['platinum'\]"),
        ({"segments": ["Champions"]}, "segments are lower-case slugs"),
        ({"segments": "champions"}, "segments must be a list of strings"),
        ({"segments": []}, "needs a condition on the customer"),
        ({"intents": []}, "needs a condition on the turn"),
        ({"say": {"en": "sorry"}}, "needs say.en and say.zh"),
        ({"say": {"en": "sorry", "zh": " "}}, "needs say.en and say.zh"),
        ({"churn_at_least": 1.5}, "churn_at_least must be a number from 0 to 1"),
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Offers.parse({"rules": {"vip": {**RULE, **change}}}, "my-policy.toml")
    assert "my-policy.toml: [offers.rules.vip]" in str(caught.value)


def test_the_offers_table_itself_is_checked() -> None:
    with pytest.raises(ConfigError, match="holds 'enabled'"):
        Offers.parse({"enable": True}, "p.toml")
    with pytest.raises(ConfigError, match="enabled must be true or false"):
        Offers.parse({"enabled": "yes"}, "p.toml")


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_policy_file_replaces_the_rules(tmp_path: Path) -> None:
    path = _toml(
        tmp_path,
        """
[fallback]
clarify_limit = 3

[offers.rules.apology]
segments = ["at_risk"]
emotions = ["angry"]
say.en = "We are sorry."
say.zh = "非常抱歉。"
""",
    )
    policy = Policy.load(path)
    assert policy.clarify_limit == 3
    assert [rule.name for rule in policy.offers.rules] == ["apology"]


def test_a_policy_file_without_offers_keeps_the_shipped_ones(tmp_path: Path) -> None:
    assert Policy.load(_toml(tmp_path, "[intent]\naccept = 0.9\n")).offers == SHIPPED
    assert not Policy.load(_toml(tmp_path, "[offers]\nenabled = false\n")).offers.enabled


def test_a_bad_rule_in_a_policy_file_names_the_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[offers.rules.x]\nsegments = ['loyal']\n")
    with pytest.raises(ConfigError, match=rf"{path}: \[offers.rules.x\] needs a condition on the turn"):
        Policy.load(path)


def test_overrides_for_an_experiment_variant() -> None:
    policy = Policy()
    changed = policy.with_overrides({"clarify_limit": 1, "unsure_below": 0.6, "offers": False})
    assert (changed.clarify_limit, changed.unsure_below, changed.offers.enabled) == (1, 0.6, False)
    assert changed.offers.rules == policy.offers.rules
    assert policy.with_overrides({}) == policy
    with pytest.raises(ConfigError, match=r"unknown keys \['patience'\]"):
        policy.with_overrides({"patience": 3})
    with pytest.raises(ConfigError, match="unsure_below must not exceed accept"):
        policy.with_overrides({"unsure_below": 0.9})
    with pytest.raises(ConfigError, match="offers must be true or false"):
        policy.with_overrides({"offers": "no"})
    with pytest.raises(ConfigError, match="clarify_limit must be a number"):
        policy.with_overrides({"clarify_limit": "2"})
