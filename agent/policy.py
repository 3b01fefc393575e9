"""The confidence policy: thresholds and limits, read from a TOML file."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from agent.offers import Offers
from core.errors import ConfigError

__all__ = ["Policy"]


@dataclass(frozen=True)
class Policy:
    """Thresholds that route a turn; the defaults are in ``agent/policy.toml``."""

    accept: float = 0.80
    """Classifier decides alone at or above this top probability …"""
    gap: float = 0.30
    """… when it also leads the runner-up by this much."""
    candidates: int = 3
    """Intents offered to the LLM in the second stage."""
    unsure_below: float = 0.45
    """Final confidence below this makes the turn unsure."""
    clarify_limit: int = 2
    """Unsure turns in a row before the agent offers a human."""
    handoff_at: str = "angry"
    """Emotion level that hands the conversation to a human."""
    dissatisfied_streak: int = 3
    """Dissatisfied messages in a row that count as angry."""
    answer_above: float = 0.35
    """Knowledge passages scoring below this are not used; if none is left the agent says it is not sure."""
    offers: Offers = field(default_factory=Offers.shipped)
    """Segment conditions (``[offers]``, see ``agent.offers``); a file without the section keeps the shipped rules."""

    def __post_init__(self) -> None:
        """Refuse thresholds that cannot work."""
        numbers = (
            "accept",
            "gap",
            "unsure_below",
            "candidates",
            "clarify_limit",
            "dissatisfied_streak",
            "answer_above",
        )
        for name in numbers:
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int | float):
                raise ConfigError(f"policy: {name} must be a number")
        for name in ("accept", "gap", "unsure_below", "answer_above"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"policy: {name} must be between 0 and 1")
        if self.unsure_below > self.accept:
            raise ConfigError("policy: unsure_below must not exceed accept")
        if self.candidates < 2 or self.clarify_limit < 1 or self.dissatisfied_streak < 1:
            raise ConfigError("policy: candidates >= 2, clarify_limit >= 1 and dissatisfied_streak >= 1")
        if self.handoff_at not in ("dissatisfied", "angry"):
            raise ConfigError("policy: handoff_at is 'dissatisfied' or 'angry'")
        if not isinstance(self.offers, Offers):
            raise ConfigError("policy: offers come from an [offers] section")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Policy:
        """This policy with some values replaced (an experiment variant's ``policy`` table).

        ``offers`` takes true or false and switches the offer rules on or off.

        Raises:
            ConfigError: an unknown key or a value the policy refuses.
        """
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"policy: unknown keys {unknown}; known: {sorted(self.__dataclass_fields__)}")
        values = dict(overrides)
        if "offers" in values:
            if not isinstance(values["offers"], bool):
                raise ConfigError("policy: offers must be true or false")
            values["offers"] = self.offers.switched(values["offers"])
        return replace(self, **values)

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """Read ``path``, or the shipped ``agent/policy.toml``.

        Raises:
            ConfigError: unreadable file, unknown keys or impossible values.
        """
        try:
            if path is None:
                text = resources.files(__package__).joinpath("policy.toml").read_text(encoding="utf-8")
            else:
                text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read policy file {path}: {exc}") from exc
        name = path or "agent/policy.toml"
        sections = ("intent", "fallback", "emotion", "knowledge")
        unknown_sections = sorted(set(data) - {*sections, "offers"})
        if unknown_sections:
            raise ConfigError(f"policy file {name}: unknown sections or keys {unknown_sections}")
        flat: dict[str, Any] = {}
        for section in sections:
            table = data.get(section, {})
            if not isinstance(table, dict):
                raise ConfigError(f"policy file {name}: [{section}] must be a table")
            if set(table) & set(flat):
                raise ConfigError(
                    f"policy file {name}: keys repeated across sections: {sorted(set(table) & set(flat))}"
                )
            flat.update(table)
        unknown = sorted(set(flat) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"policy file {name}: unknown keys {unknown}")
        if "offers" in data:
            flat["offers"] = Offers.parse(data["offers"], str(name))
        try:
            return cls(**flat)
        except TypeError as exc:
            raise ConfigError(f"policy file {name}: {exc}") from exc
