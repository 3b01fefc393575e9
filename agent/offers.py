"""Segment conditions: fixed, bilingual offers added to a reply when who the customer is and what they say match.

Each rule is a guideline in Parlant's sense, condition → action, read from the ``[offers]``
section of the policy file (``agent/policy.toml``, or ``KEFU_POLICY_FILE``):

- **who** (all that are given must hold): ``segments`` / ``tiers`` (the customer is in any of
  them) and ``churn_at_least`` (the churn model's score reaches it);
- **this turn** (any that is given may hold): ``intents`` (a sure reading of one of them) or
  ``emotions`` (``calm``, ``confused``, ``dissatisfied``, ``angry``);
- **action**: ``say.en`` / ``say.zh``, a sentence the shop wrote, added after the checked reply.
  The model never writes or sees it, so it cannot change the wording or the amount.

The first matching rule wins; each fires at most once per conversation; a customer without
insights (``SupportContext.insight`` is None) matches no rule. Segment slugs are whatever the
segmentation names (``insights/segments.py``); a slug it does not produce never matches.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from agent.emotion import Emotion
from agent.machine import Intent
from core.errors import ConfigError
from core.types import CustomerInsight, Lang, Tier

__all__ = ["Offer", "OfferRule", "Offers"]

_RULE_KEYS = frozenset({"segments", "tiers", "churn_at_least", "intents", "emotions", "say"})
_MAX_SAY = 400
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Offer:
    """A rule that fired this turn."""

    rule: str
    text: str
    """The sentence to add, in the turn's language."""
    reason: str
    """Which conditions held, for the turn's audit decision."""


@dataclass(frozen=True)
class OfferRule:
    """One condition → action pair."""

    name: str
    say_en: str
    say_zh: str
    segments: frozenset[str] = frozenset()
    tiers: frozenset[Tier] = frozenset()
    churn_at_least: float | None = None
    intents: frozenset[Intent] = frozenset()
    emotions: frozenset[Emotion] = frozenset()

    def say(self, lang: Lang) -> str:
        """The rule's sentence in ``lang``."""
        return self.say_zh if lang is Lang.ZH else self.say_en

    def who(self, insight: CustomerInsight, tier: Callable[[], Tier | None]) -> str | None:
        """Why the customer qualifies, or None. ``tier`` is only called when a rule names tiers."""
        why: list[str] = []
        if self.segments or self.tiers:
            if insight.segment in self.segments:
                why.append(f"segment {insight.segment}")
            elif self.tiers and (current := tier()) in self.tiers:
                why.append(f"tier {current}")
            else:
                return None
        if self.churn_at_least is not None:
            if insight.churn is None or insight.churn.score < self.churn_at_least:
                return None
            why.append(f"churn {insight.churn.score:.2f} >= {self.churn_at_least:g}")
        return ", ".join(why)

    def turn(self, intent: Intent, sure: bool, emotion: Emotion) -> str | None:
        """Why this turn qualifies, or None."""
        if sure and intent in self.intents:
            return f"intent {intent.value}"
        if emotion in self.emotions:
            return f"emotion {emotion.label}"
        return None


@dataclass(frozen=True)
class Offers:
    """The rule set, in file order, and whether it is switched on."""

    rules: tuple[OfferRule, ...] = ()
    enabled: bool = True

    @classmethod
    def parse(cls, table: Any, source: str) -> Offers:
        """Read an ``[offers]`` table: ``enabled`` and ``[offers.rules.<name>]`` tables.

        Raises:
            ConfigError: unknown keys, unknown intents, emotions or tiers, a rule without a condition
                on the customer or on the turn, or a missing sentence; naming the file and the rule.
        """
        if not isinstance(table, dict) or set(table) - {"enabled", "rules"}:
            raise ConfigError(f"policy file {source}: [offers] holds 'enabled' and [offers.rules.<name>] tables only")
        enabled, rules = table.get("enabled", True), table.get("rules", {})
        if not isinstance(enabled, bool) or not isinstance(rules, dict):
            raise ConfigError(f"policy file {source}: [offers] enabled must be true or false, rules a table")
        parsed = (_rule(name, body, f"policy file {source}: [offers.rules.{name}]") for name, body in rules.items())
        return cls(tuple(parsed), enabled)

    @classmethod
    def shipped(cls) -> Offers:
        """The rules of the shipped ``agent/policy.toml`` (read once)."""
        return _shipped()

    def switched(self, enabled: bool) -> Offers:
        """The same rules, switched on or off (an experiment's ``offers = false``)."""
        return replace(self, enabled=enabled)

    def pick(
        self,
        insight: CustomerInsight | None,
        tier: Callable[[], Tier | None],
        *,
        intent: Intent,
        sure: bool,
        emotion: Emotion,
        lang: Lang,
        made: Collection[str] = (),
    ) -> Offer | None:
        """The first rule that holds for this customer and turn and was not made in this conversation yet.

        Args:
            insight: The customer's segment and scores; None matches no rule.
            tier: The customer's tier, looked up only if a rule needs it.
            intent: The turn's intent.
            sure: Whether the intent passed the confidence threshold (unsure intents match no rule).
            emotion: The turn's emotion.
            lang: The reply's language.
            made: Rules already fired in this conversation.
        """
        if not self.enabled or insight is None:
            return None
        for rule in self.rules:
            if rule.name in made:
                continue
            turn = rule.turn(intent, sure, emotion)
            who = rule.who(insight, tier) if turn is not None else None
            if turn is not None and who is not None:
                return Offer(rule.name, rule.say(lang), f"offer {rule.name} ({who}; {turn})")
        return None


def _names(value: Any, where: str, key: str, known: Mapping[str, Any]) -> frozenset[Any]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} {key} must be a list of strings")
    unknown = sorted(set(value) - set(known))
    if known and unknown:
        raise ConfigError(f"{where} {key}: unknown {unknown}; known: {sorted(known)}")
    return frozenset(known[v] for v in value) if known else frozenset(value)


def _rule(name: str, body: Any, where: str) -> OfferRule:
    if not isinstance(body, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(body) - _RULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(_RULE_KEYS)}")
    segments = _names(body.get("segments", []), where, "segments", {})
    if any(not _SLUG.match(segment) for segment in segments):
        raise ConfigError(f"{where} segments are lower-case slugs such as 'champions'; got {sorted(segments)}")
    tiers = _names(body.get("tiers", []), where, "tiers", {t.value: t for t in Tier})
    intents = _names(body.get("intents", []), where, "intents", {i.value: i for i in Intent})
    emotions = _names(body.get("emotions", []), where, "emotions", {e.label: e for e in Emotion})
    churn = body.get("churn_at_least")
    if churn is not None and (isinstance(churn, bool) or not isinstance(churn, int | float) or not 0 <= churn <= 1):
        raise ConfigError(f"{where} churn_at_least must be a number from 0 to 1; got {churn!r}")
    if not (segments or tiers or churn is not None):
        raise ConfigError(f"{where} needs a condition on the customer: segments, tiers or churn_at_least")
    if not (intents or emotions):
        raise ConfigError(f"{where} needs a condition on the turn: intents or emotions")
    say = body.get("say")
    texts = {lang: say.get(lang.value) for lang in Lang} if isinstance(say, dict) else {}
    if not texts or not all(isinstance(t, str) and 0 < len(t.strip()) <= _MAX_SAY for t in texts.values()):
        raise ConfigError(f"{where} needs say.en and say.zh, each 1-{_MAX_SAY} characters")
    return OfferRule(
        name=name,
        say_en=str(texts[Lang.EN]).strip(),
        say_zh=str(texts[Lang.ZH]).strip(),
        segments=segments,
        tiers=tiers,
        churn_at_least=None if churn is None else float(churn),
        intents=intents,
        emotions=emotions,
    )


@cache
def _shipped() -> Offers:
    text = resources.files(__package__).joinpath("policy.toml").read_text(encoding="utf-8")
    return Offers.parse(tomllib.loads(text).get("offers", {}), "agent/policy.toml")
