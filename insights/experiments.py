"""A/B experiments: the TOML that declares them, sticky assignment per customer, and the outcome report.

An experiment splits customers between variants by weight. A variant can change what the engine
really honours: the reply prompt (``respond_prompt``, a file of ``prompts/{zh,en}/``) and policy
overrides (``policy = { unsure_below = 0.5, clarify_limit = 1, offers = false }``, checked against
``agent.policy.Policy`` when the graph is built). At most one experiment is active at a time;
inactive ones stay in the file so their results can still be reported.

Assignment is a hash of (experiment, customer id), so a customer gets the same variant in every
conversation and after restarts, with no table. The service records the ``experiment:variant``
label on every turn audit and on the conversation's ``conversation_log`` row, which is what the
report reads: containment (no handoff), conversion (reached ``close_deal``) and satisfaction
(1-5 ratings), each variant against the control with a significance test
(``insights.significance``).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from core.errors import ConfigError
from core.types import CustomerId
from insights.outcomes import ExperimentReport, experiment_report
from prompts import load_prompt

__all__ = ["Experiment", "Experiments", "Variant"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,38}$")
_EXPERIMENT_KEYS = frozenset({"active", "description", "control", "alpha", "min_per_variant", "min_rated", "variants"})
_VARIANT_KEYS = frozenset({"weight", "description", "respond_prompt", "policy"})
PolicyValue = bool | int | float | str


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment and what it changes."""

    name: str
    weight: float
    """Relative share of customers; weights need not sum to 1."""
    description: str = ""
    respond_prompt: str = "respond"
    """The reply prompt's name: ``respond`` (the default) or ``respond.<suffix>``."""
    policy: Mapping[str, PolicyValue] = field(default_factory=dict)
    """Overrides of ``agent.policy.Policy`` fields for this arm's turns, e.g. ``{"clarify_limit": 1}``."""


@dataclass(frozen=True)
class Experiment:
    """An experiment: its variants, the control they are compared with, and how strict the report is."""

    name: str
    variants: tuple[Variant, ...]
    active: bool = True
    description: str = ""
    control: str = ""
    """The variant the others are compared with; the first one when the file does not say."""
    alpha: float = 0.05
    """Significance level, Bonferroni-corrected in the report when there are several variants."""
    min_per_variant: int = 30
    """Conversations each arm needs before containment and conversion are tested."""
    min_rated: int = 10
    """Ratings each arm needs before satisfaction is tested."""

    def label(self, variant: str) -> str:
        """``experiment:variant``, as turn audits and the conversation log record it."""
        return f"{self.name}:{variant}"

    def assign(self, customer_id: CustomerId) -> Variant:
        """The customer's variant: the same for every conversation, on every machine, after every restart."""
        digest = hashlib.sha256(f"{self.name}\x00{customer_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * sum(v.weight for v in self.variants)
        for variant in self.variants:
            point -= variant.weight
            if point < 0:
                return variant
        return self.variants[-1]  # float rounding at the very top of the range


class Experiments:
    """The experiments of one file; ``Experiments([])`` when none is configured."""

    def __init__(self, experiments: Sequence[Experiment], source: str = "<no experiments file>") -> None:
        """Hold ``experiments`` read from ``source`` (the file, for error messages).

        Raises:
            ConfigError: two experiments share a name, or more than one is active.
        """
        self.experiments = tuple(experiments)
        self.source = source
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ConfigError(f"experiments file {source}: experiment names repeat: {names}")
        active = [e.name for e in self.experiments if e.active]
        if len(active) > 1:
            raise ConfigError(
                f"experiments file {source}: only one experiment may be active at a time; active: {active}"
            )
        self._by_label = {e.label(v.name): v for e in self.experiments for v in e.variants}

    @classmethod
    def load(cls, path: Path | None) -> Experiments:
        """Read ``path`` (``KEFU_EXPERIMENTS_FILE``); None means no experiments.

        Raises:
            ConfigError: an unreadable file, unknown keys or impossible values, naming the key.
        """
        if path is None:
            return cls([])
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read experiments file {path}: {exc}") from exc
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Mapping[str, Any], source: str) -> Experiments:
        """Build from parsed TOML (``{"experiments": {name: table}}``).

        Raises:
            ConfigError: unknown keys or impossible values, naming the file and the key.
        """
        unknown = sorted(set(data) - {"experiments"})
        if unknown:
            raise ConfigError(f"experiments file {source}: unknown top-level keys {unknown}; use [experiments.<name>]")
        tables = data.get("experiments", {})
        if not isinstance(tables, dict):
            raise ConfigError(f"experiments file {source}: [experiments] must be a table of experiments")
        return cls([_experiment(name, table, source) for name, table in tables.items()], source)

    @property
    def active(self) -> Experiment | None:
        """The experiment new turns are assigned to, if any."""
        return next((e for e in self.experiments if e.active), None)

    def assign(self, customer_id: CustomerId) -> str | None:
        """``experiment:variant`` for the customer under the active experiment; None when none runs."""
        experiment = self.active
        return None if experiment is None else experiment.label(experiment.assign(customer_id).name)

    def resolve(self, label: str | None) -> Variant | None:
        """The variant an ``experiment:variant`` label names; None for None or an unknown label."""
        return None if label is None else self._by_label.get(label)

    def labelled(self) -> Iterator[tuple[str, Variant]]:
        """Every variant of every experiment with its label (for checking them all at start-up)."""
        yield from self._by_label.items()

    def report(self, engine: Engine) -> list[ExperimentReport]:
        """Outcomes per variant and the significance of each difference, for every experiment in the file."""
        return [experiment_report(engine, experiment) for experiment in self.experiments]


def _where(source: str, name: str, variant: str | None = None) -> str:
    table = f"experiments.{name}" + (f".variants.{variant}" if variant else "")
    return f"experiments file {source}: [{table}]"


def _number(value: Any, where: str, key: str, low: float, high: float, *, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where} {key} must be {kind} from {low:g} to {high:g}; got {value!r}")
    return value


def _experiment(name: str, table: Any, source: str) -> Experiment:
    where = _where(source, name)
    if not _NAME.match(name):
        raise ConfigError(f"{where}: the name must be 1-39 lower-case letters, digits, '_' or '-'")
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _EXPERIMENT_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(_EXPERIMENT_KEYS)}")
    variants_table = table.get("variants")
    if not isinstance(variants_table, dict) or len(variants_table) < 2:
        raise ConfigError(f"{where} needs at least two [experiments.{name}.variants.<name>] tables")
    variants = tuple(_variant(name, key, value, source) for key, value in variants_table.items())
    control = table.get("control", variants[0].name)
    if control not in variants_table:
        raise ConfigError(f"{where} control {control!r} is not one of its variants {list(variants_table)}")
    active = table.get("active", True)
    description = table.get("description", "")
    if not isinstance(active, bool) or not isinstance(description, str):
        raise ConfigError(f"{where}: active must be true or false and description a string")
    return Experiment(
        name=name,
        variants=variants,
        active=active,
        description=description,
        control=control,
        alpha=_number(table.get("alpha", 0.05), where, "alpha", 0.001, 0.2),
        min_per_variant=_number(table.get("min_per_variant", 30), where, "min_per_variant", 2, 10**9, integer=True),
        min_rated=_number(table.get("min_rated", 10), where, "min_rated", 2, 10**9, integer=True),
    )


def _variant(experiment: str, name: str, table: Any, source: str) -> Variant:
    where = _where(source, experiment, name)
    if not _NAME.match(name):
        raise ConfigError(f"{where}: the name must be 1-39 lower-case letters, digits, '_' or '-'")
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _VARIANT_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(_VARIANT_KEYS)}")
    weight = table.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise ConfigError(f"{where} weight must be positive (a number); got {weight!r}")
    prompt = table.get("respond_prompt", "respond")
    if not isinstance(prompt, str) or not re.fullmatch(r"respond(\.[a-z0-9_-]+)?", prompt):
        raise ConfigError(f"{where} respond_prompt must be 'respond' or 'respond.<suffix>'; got {prompt!r}")
    for lang in ("zh", "en"):
        try:
            load_prompt(prompt, lang)
        except KeyError as exc:
            raise ConfigError(f"{where} respond_prompt: no file prompts/{lang}/{prompt}.md") from exc
    policy = table.get("policy", {})
    if not isinstance(policy, dict) or not all(isinstance(v, PolicyValue) for v in policy.values()):
        raise ConfigError(f"{where} policy must be a table of numbers, strings or booleans: {{ clarify_limit = 1 }}")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where} description must be a string")
    return Variant(name=name, weight=float(weight), description=description, respond_prompt=prompt, policy=policy)
