"""Kefu's multi-turn scenario suite: YAML conversations, checks, pass^k, per-category tables.

Each ``evals/scenarios/*.yaml`` file is a list of scenarios (one category per file)::

    - id: orders-zh-shipped                 # unique across the suite
      lang: zh                              # zh | en
      category: orders
      customer: C0001                       # a customer the demo seed creates
      description: VIP asks where her shipped order is, then says goodbye.
      turns:
        - user: 我的订单KF101170到哪了？
          expect:                           # per-turn checks, all optional
            tools: [lookup_order]           # must be called (tools_exact: exactly these; no_tools: list or true)
            state: answer                   # dialogue state after the turn
            route: rules                    # llm | rules
            handoff: false                  # the conversation is (not) with a human after the turn
            must_include: [KF101170, {any_of: [已发货, shipped]}]   # case-insensitive
            must_not_include: [KF100979]
            judge: The reply says when the parcel is expected.      # free text, for the LLM judge
      expect:                               # per-scenario checks, all optional
        tools: [lookup_order]               # called in some turn (no_tools: in no turn)
        states: [welcome, need_confirm, answer, end]   # ordered subsequence of welcome + per-turn states
        handoff: false                      # after the last turn
        must_not_include: [...]             # in no reply
        db:                                 # effects in the target's store, before/after this trial
          tickets: [{kind: return, subject_includes: KF100881}]   # opened in this conversation
          forbid_tickets: [complaint]       # kinds not opened here (``any``: no ticket at all)
          handoff: true                     # queued for a human (desk row or handoff ticket)
          contact: {email: new@example.org} # the customer's contact afterwards
          contact_unchanged: true
          orders_unchanged: true            # no order of the customer changed status
        judge: ...

Every trial uses a fresh conversation id, so a handoff left open by an earlier trial (a handed-off
conversation is silent) never mutes a later one; ticket and handoff effects are read for that
conversation only, and a contact change is written back after the trial so every trial starts
from the seeded contact details.

``python -m evals.scenario_runner --k 4 --model qwen2.5-coder-0.5b`` (or ``kefu eval scenarios``)
runs every scenario k times and prints pass^1 … pass^k overall, per category and per language,
then the failures with their transcripts, and writes a JSON results file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import shlex
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agent.machine import DialogueState
from core.db import CustomerRow, HandoffRow, OrderRow, TicketRow, make_engine
from core.seed import seed
from core.types import TicketKind
from evals.fake_llm import FakeLlm
from evals.harness import KefuServer, machine, percentiles
from evals.targets import Target, TurnObservation, pass_hat_k
from tools.registry import BUILTIN_TOOLS

__all__ = [
    "CheckOptions",
    "KefuTarget",
    "LlmJudge",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "StoreSnapshot",
    "SuiteResult",
    "TrialResult",
    "check_scenario",
    "check_turn",
    "coverage",
    "load_scenarios",
    "main",
    "run_suite",
    "snapshot",
]

DEFAULT_DIR = Path(__file__).parent / "scenarios"
TOOL_NAMES: frozenset[str] = frozenset(tool.name for tool in BUILTIN_TOOLS)
STATE_NAMES: frozenset[str] = frozenset(state.value for state in DialogueState)
TICKET_KINDS: frozenset[str] = frozenset(kind.value for kind in TicketKind)


class ScenarioError(ValueError):
    """A scenario file that does not load: names the file and the scenario."""


# ----------------------------------------------------------------------------------------- format


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnyOf(_Strict):
    """One of several phrases must appear."""

    any_of: Annotated[list[str], Field(min_length=1)]


Phrase = str | AnyOf


class TicketExpectation(_Strict):
    """A ticket that must have been opened in the trial's conversation."""

    kind: str
    subject_includes: str | None = None


class DbExpectation(_Strict):
    """Database effects of one trial, read before and after it."""

    tickets: list[TicketExpectation] = []
    forbid_tickets: list[str] = []
    """Ticket kinds that must not be opened; ``any`` forbids every ticket."""
    handoff: bool | None = None
    contact: dict[Literal["phone", "email"], str] = {}
    contact_unchanged: bool = False
    orders_unchanged: bool = False


class TurnExpectation(_Strict):
    """Checks on one turn."""

    tools: list[str] = []
    tools_exact: list[str] | None = None
    no_tools: list[str] | bool = []
    state: str | None = None
    route: Literal["llm", "rules"] | None = None
    handoff: bool | None = None
    must_include: list[Phrase] = []
    must_not_include: list[str] = []
    judge: str | None = None


class ScenarioExpectation(_Strict):
    """Checks on the whole conversation."""

    tools: list[str] = []
    no_tools: list[str] | bool = []
    states: list[str] = []
    handoff: bool | None = None
    must_not_include: list[str] = []
    db: DbExpectation | None = None
    judge: str | None = None


class Turn(_Strict):
    """One customer message and what must follow it."""

    user: Annotated[str, Field(min_length=1)]
    expect: TurnExpectation = TurnExpectation()


class Scenario(_Strict):
    """One conversation with the demo store."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    lang: Literal["zh", "en"]
    category: Annotated[str, Field(min_length=1)]
    customer: str
    description: Annotated[str, Field(min_length=1)]
    turns: Annotated[list[Turn], Field(min_length=1)]
    expect: ScenarioExpectation = ScenarioExpectation()
    source: str = ""
    """The file it came from (set by the loader)."""

    @model_validator(mode="after")
    def _known_names(self) -> Scenario:
        problems: list[str] = []
        for where, names in _tool_lists(self):
            problems += [f"{where}: unknown tool {name!r}" for name in names if name not in TOOL_NAMES]
        for where, name in _state_names(self):
            if name not in STATE_NAMES:
                problems.append(f"{where}: unknown state {name!r} (states: {', '.join(sorted(STATE_NAMES))})")
        db = self.expect.db
        if db is not None:
            kinds = [t.kind for t in db.tickets] + [k for k in db.forbid_tickets if k != "any"]
            problems += [f"expect.db: unknown ticket kind {k!r}" for k in kinds if k not in TICKET_KINDS]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def judged(self) -> bool:
        """Whether some check needs the LLM judge."""
        return self.expect.judge is not None or any(turn.expect.judge for turn in self.turns)


def _no_tools(value: list[str] | bool) -> list[str]:
    return sorted(TOOL_NAMES) if value is True else list(value or [])


def _tool_lists(scenario: Scenario) -> Iterable[tuple[str, list[str]]]:
    yield "expect.tools", scenario.expect.tools
    if isinstance(scenario.expect.no_tools, list):
        yield "expect.no_tools", scenario.expect.no_tools
    for n, turn in enumerate(scenario.turns, 1):
        yield f"turn {n} tools", [*turn.expect.tools, *(turn.expect.tools_exact or [])]
        if isinstance(turn.expect.no_tools, list):
            yield f"turn {n} no_tools", turn.expect.no_tools


def _state_names(scenario: Scenario) -> Iterable[tuple[str, str]]:
    for name in scenario.expect.states:
        yield "expect.states", name
    for n, turn in enumerate(scenario.turns, 1):
        if turn.expect.state is not None:
            yield f"turn {n} state", turn.expect.state


@cache
def seeded_customers() -> frozenset[str]:
    """Customer ids the demo seed creates (seeded into memory once; ``kefu seed`` is deterministic)."""
    engine = make_engine("sqlite://")
    seed(engine)
    with Session(engine) as session:
        ids = frozenset(session.scalars(select(CustomerRow.id)))
    engine.dispose()
    return ids


def load_scenarios(paths: Iterable[Path | str]) -> list[Scenario]:
    """Load and validate scenario files (directories are read for ``*.yaml``).

    Raises:
        ScenarioError: a file is not a YAML list of valid scenarios, names an unknown tool, state,
            ticket kind or customer, or repeats an id; the message names the file and scenario.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    if not files:
        raise ScenarioError(f"no scenario files in {', '.join(map(str, paths))}")
    scenarios: list[Scenario] = []
    seen: dict[str, str] = {}
    for file in files:
        for scenario in _load_file(file):
            if scenario.id in seen:
                raise ScenarioError(f"{file}: scenario {scenario.id}: id already used in {seen[scenario.id]}")
            seen[scenario.id] = str(file)
            scenarios.append(scenario)
    return scenarios


def _load_file(file: Path) -> list[Scenario]:
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{file}: cannot read: {exc}") from exc
    if not isinstance(raw, list):
        raise ScenarioError(f"{file}: expected a list of scenarios, got {type(raw).__name__}")
    customers = seeded_customers()
    loaded: list[Scenario] = []
    for index, item in enumerate(raw, 1):
        name = item.get("id", f"#{index}") if isinstance(item, dict) else f"#{index}"
        if not isinstance(item, dict):
            raise ScenarioError(f"{file}: scenario {name}: expected a mapping")
        try:
            scenario = Scenario.model_validate({**item, "source": file.name})
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'scenario'}: {error['msg']}" for error in exc.errors()
            )
            raise ScenarioError(f"{file}: scenario {name}: {details}") from exc
        if scenario.customer not in customers:
            raise ScenarioError(f"{file}: scenario {name}: unknown customer {scenario.customer!r}")
        loaded.append(scenario)
    return loaded


def coverage(scenarios: Sequence[Scenario]) -> tuple[set[str], set[str]]:
    """Built-in tools and machine states that no expectation names (both empty: full coverage).

    Tools count when a scenario requires them (``tools``/``tools_exact``), states when a turn or
    scenario expects them; the names come from the tool registry and the machine definition.
    """
    tools: set[str] = set()
    states: set[str] = set()
    for scenario in scenarios:
        tools.update(scenario.expect.tools)
        states.update(scenario.expect.states)
        for turn in scenario.turns:
            tools.update(turn.expect.tools, turn.expect.tools_exact or [])
            if turn.expect.state:
                states.add(turn.expect.state)
    return set(TOOL_NAMES) - tools, set(STATE_NAMES) - states


# ------------------------------------------------------------------------------------------ store


@dataclass(frozen=True)
class StoreSnapshot:
    """What the store says about one customer and one conversation at a moment."""

    contact: dict[str, str]
    orders: dict[str, str]
    """Order id → status, for the customer's orders."""
    tickets: list[dict[str, Any]]
    """Tickets of the conversation: id, kind, subject."""
    handoffs: int
    """Desk handoff rows of the conversation."""


def snapshot(database_url: str, customer_id: str, conversation_id: str) -> StoreSnapshot:
    """Read the customer's contact and orders and the conversation's tickets and handoffs."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            customer = session.get(CustomerRow, customer_id)
            contact = {"phone": customer.phone, "email": customer.email} if customer else {}
            statuses = select(OrderRow.id, OrderRow.status).where(OrderRow.customer_id == customer_id)
            orders = {str(row[0]): str(row[1]) for row in session.execute(statuses).all()}
            tickets = [
                {"id": row.id, "kind": row.kind, "subject": row.subject}
                for row in session.scalars(select(TicketRow).where(TicketRow.conversation_id == conversation_id))
            ]
            queued = select(HandoffRow.id).where(HandoffRow.conversation_id == conversation_id)
            handoffs = len(session.scalars(queued).all())
    finally:
        engine.dispose()
    return StoreSnapshot(contact, orders, tickets, handoffs)


def restore_contact(database_url: str, customer_id: str, contact: dict[str, str]) -> None:
    """Write the customer's phone and e-mail back, so the next trial starts from the seeded contact."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            session.execute(update(CustomerRow).where(CustomerRow.id == customer_id).values(**contact))
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class CheckOptions:
    """Which kinds of check apply to a target."""

    check_states: bool = True
    """Dialogue-state checks (``state``, ``states``): off for targets without a state machine."""
    check_routes: bool = True
    """``route`` checks (llm or rules): off for targets that always answer with the model."""

    def applied(self) -> list[str]:
        """Names of the check kinds in force, for reports."""
        kinds = ["tools", "phrases", "handoff", "db", "judge"]
        return kinds + ["states"] * self.check_states + ["route"] * self.check_routes


def _phrase_ok(reply: str, phrase: Phrase) -> bool:
    lowered = reply.lower()
    options = phrase.any_of if isinstance(phrase, AnyOf) else [phrase]
    return any(option.lower() in lowered for option in options)


def _phrase_text(phrase: Phrase) -> str:
    return " | ".join(map(repr, phrase.any_of)) if isinstance(phrase, AnyOf) else repr(phrase)


def check_turn(
    expect: TurnExpectation, observed: TurnObservation, *, options: CheckOptions = CheckOptions()
) -> list[str]:
    """Why ``observed`` does not meet ``expect`` (empty when it does); judge criteria are not checked here."""
    if observed.error:
        return [f"target error: {observed.error}"]
    reasons: list[str] = []
    called = set(observed.tools)
    missing = [tool for tool in expect.tools if tool not in called]
    if missing:
        reasons.append(f"expected tool(s) {', '.join(missing)} not called (called: {_names(observed.tools)})")
    if expect.tools_exact is not None and called != set(expect.tools_exact):
        reasons.append(f"expected exactly tools {_names(expect.tools_exact)}, called {_names(observed.tools)}")
    forbidden = [tool for tool in _no_tools(expect.no_tools) if tool in called]
    if forbidden:
        reasons.append(f"forbidden tool(s) called: {', '.join(forbidden)}")
    if options.check_states and expect.state is not None and observed.state != expect.state:
        reasons.append(f"expected state {expect.state}, got {observed.state}")
    if options.check_routes and expect.route is not None and observed.route != expect.route:
        reasons.append(f"expected route {expect.route}, got {observed.route}")
    if expect.handoff is not None and observed.handed_off != expect.handoff:
        reasons.append("expected a handoff to a human" if expect.handoff else "unexpected handoff to a human")
    reasons += [f"reply lacks {_phrase_text(p)}" for p in expect.must_include if not _phrase_ok(observed.reply, p)]
    reasons += [f"reply contains forbidden {p!r}" for p in expect.must_not_include if _phrase_ok(observed.reply, p)]
    return reasons


def _names(tools: Sequence[str]) -> str:
    return "[" + ", ".join(tools) + "]"


def check_db(expect: DbExpectation, before: StoreSnapshot, after: StoreSnapshot) -> list[str]:
    """Why the store's change from ``before`` to ``after`` is not the expected one."""
    reasons: list[str] = []
    known = {ticket["id"] for ticket in before.tickets}
    opened = [ticket for ticket in after.tickets if ticket["id"] not in known]
    for wanted in expect.tickets:
        if not any(
            t["kind"] == wanted.kind
            and (wanted.subject_includes is None or wanted.subject_includes.lower() in t["subject"].lower())
            for t in opened
        ):
            about = f" about {wanted.subject_includes!r}" if wanted.subject_includes else ""
            seen = ", ".join(f"{t['kind']}: {t['subject']!r}" for t in opened) or "none"
            reasons.append(f"db: no {wanted.kind} ticket{about} opened (opened: {seen})")
    for kind in expect.forbid_tickets:
        unwanted = [t for t in opened if kind == "any" or t["kind"] == kind]
        if unwanted:
            reasons.append(f"db: unexpected {unwanted[0]['kind']} ticket opened: {unwanted[0]['subject']!r}")
    if expect.handoff is not None:
        queued = after.handoffs > before.handoffs or any(t["kind"] == TicketKind.HANDOFF.value for t in opened)
        if queued != expect.handoff:
            reasons.append("db: no handoff queued" if expect.handoff else "db: a handoff was queued")
    for key, value in expect.contact.items():
        if after.contact.get(key) != value:
            reasons.append(f"db: {key} is {after.contact.get(key)!r}, expected {value!r}")
    if expect.contact_unchanged and after.contact != before.contact:
        reasons.append(f"db: contact changed from {before.contact} to {after.contact}")
    if expect.orders_unchanged and after.orders != before.orders:
        changed = sorted(k for k in after.orders if after.orders[k] != before.orders.get(k))
        reasons.append(f"db: order status changed: {', '.join(changed)}")
    return reasons


def check_scenario(
    scenario: Scenario,
    observed: Sequence[TurnObservation],
    before: StoreSnapshot | None = None,
    after: StoreSnapshot | None = None,
    *,
    options: CheckOptions = CheckOptions(),
) -> list[str]:
    """Every reason ``observed`` (one observation per turn) fails the scenario; empty when it passes.

    LLM-judge criteria are not decided here (``run_suite`` asks the judge, if there is one).
    """
    reasons: list[str] = []
    for n, (turn, seen) in enumerate(zip(scenario.turns, observed, strict=False), 1):
        reasons += [f"turn {n}: {reason}" for reason in check_turn(turn.expect, seen, options=options)]
    if len(observed) < len(scenario.turns):
        reasons.append(f"only {len(observed)} of {len(scenario.turns)} turns were run")
    expect = scenario.expect
    called = {tool for seen in observed for tool in seen.tools}
    missing = [tool for tool in expect.tools if tool not in called]
    if missing:
        reasons.append(f"expected tool(s) {', '.join(missing)} in no turn")
    forbidden = sorted(tool for tool in _no_tools(expect.no_tools) if tool in called)
    if forbidden:
        reasons.append(f"forbidden tool(s) called: {', '.join(forbidden)}")
    if options.check_states and expect.states:
        visited = [DialogueState.WELCOME.value, *(seen.state or "" for seen in observed)]
        if not _subsequence(expect.states, visited):
            reasons.append(f"states {' → '.join(expect.states)} not visited in order (visited {' → '.join(visited)})")
    if expect.handoff is not None and observed and observed[-1].handed_off != expect.handoff:
        reasons.append("expected the conversation with a human at the end" if expect.handoff else "ended handed off")
    for phrase in expect.must_not_include:
        hits = [n for n, seen in enumerate(observed, 1) if phrase.lower() in seen.reply.lower()]
        if hits:
            reasons.append(f"turn {hits[0]}: reply contains forbidden {phrase!r}")
    if expect.db is not None:
        if before is None or after is None:
            reasons.append("db: the store was not read")
        else:
            reasons += check_db(expect.db, before, after)
    return reasons


def _subsequence(wanted: Sequence[str], seen: Sequence[str]) -> bool:
    it = iter(seen)
    return all(any(state == item for item in it) for state in wanted)


# ------------------------------------------------------------------------------------------ judge


class LlmJudge:
    """An OpenAI-compatible model that decides free-text criteria: asked 3 times, the majority wins."""

    SCHEMA: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
        "required": ["pass", "reason"],
    }

    def __init__(self, base_url: str, model: str, *, votes: int = 3, timeout_s: float = 120) -> None:
        """Use the endpoint at ``base_url`` (ending in ``/v1``)."""
        self.model, self.votes = model, votes
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

    def decide(self, criterion: str, transcript: str) -> tuple[bool, str]:
        """Whether ``transcript`` meets ``criterion``, and the reason of the majority."""
        verdicts = [self._ask(criterion, transcript, seed) for seed in range(self.votes)]
        passed = sum(ok for ok, _why in verdicts) * 2 > len(verdicts)
        reason = next(why for ok, why in verdicts if ok == passed)
        return passed, reason

    def _ask(self, criterion: str, transcript: str, seed: int) -> tuple[bool, str]:
        prompt = (
            "You grade a customer-service conversation against one criterion. Answer with JSON "
            '{"pass": true|false, "reason": "..."}.\n\n'
            f"Criterion: {criterion}\n\nConversation:\n{transcript}"
        )
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.7,
            "seed": seed,
            "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": self.SCHEMA}},
        }
        try:
            response = self.client.post("/chat/completions", json=body)
            response.raise_for_status()
            verdict = json.loads(response.json()["choices"][0]["message"]["content"])
            return bool(verdict["pass"]), str(verdict.get("reason", ""))
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            return False, f"judge error: {exc}"

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


# ----------------------------------------------------------------------------------------- target


class KefuTarget:
    """Kefu over HTTP: ``POST /v1/chat`` per message, handoff status from the conversation's history."""

    name = "kefu"

    def __init__(self, server: KefuServer, *, timeout_s: float = 300) -> None:
        """Talk to the already started ``server``."""
        self.server = server
        self.database_url = server.database_url
        self.client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=timeout_s)

    def turn(self, conversation_id: str, customer_id: str, text: str) -> TurnObservation:
        """Send one message and observe the reply, tools, state and handoff."""
        started = time.perf_counter()
        try:
            response = self.client.post(
                "/v1/chat", json={"conversation_id": conversation_id, "customer_id": customer_id, "text": text}
            )
            latency_ms = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            body = response.json()
            history = self.client.get(f"/v1/conversations/{conversation_id}", params={"customer_id": customer_id})
            history.raise_for_status()
        except httpx.HTTPError as exc:
            return TurnObservation(reply="", error=f"{type(exc).__name__}: {exc}")
        return TurnObservation(
            reply=str(body.get("reply", "")),
            tools=list(body.get("tools", [])),
            state=body.get("state"),
            intent=body.get("intent"),
            route=body.get("route"),
            fallback=body.get("fallback"),
            llm_calls=int(body.get("llm_calls", 0)),
            latency_ms=round(latency_ms, 1),
            handed_off=body.get("state") == DialogueState.HANDOFF.value or history.json().get("handoff") is not None,
        )

    def close(self) -> None:
        """Close the HTTP client (the server belongs to the caller)."""
        self.client.close()


# ------------------------------------------------------------------------------------------- runs


@dataclass
class TrialResult:
    """One run of one scenario."""

    trial: int
    conversation_id: str
    observations: list[TurnObservation]
    reasons: list[str]
    not_judged: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No check failed (criteria left unjudged do not fail a trial, they are reported)."""
        return not self.reasons


@dataclass
class ScenarioResult:
    """All trials of one scenario."""

    scenario: Scenario
    trials: list[TrialResult]

    @property
    def successes(self) -> int:
        """Trials that passed."""
        return sum(trial.passed for trial in self.trials)


@dataclass
class SuiteResult:
    """The suite's outcome, ready for tables and the JSON file."""

    target: str
    k: int
    results: list[ScenarioResult]
    options: CheckOptions
    judged: bool

    def pass_hat(self, results: Sequence[ScenarioResult] | None = None) -> dict[str, float]:
        """pass^1 … pass^k over ``results`` (all by default)."""
        chosen = self.results if results is None else results
        trials = self.k
        return {str(k): round(pass_hat_k([r.successes for r in chosen], trials, k), 4) for k in range(1, self.k + 1)}

    def grouped(self, key: Callable[[Scenario], str]) -> dict[str, list[ScenarioResult]]:
        """Results by ``key`` of their scenario, keys sorted."""
        groups: dict[str, list[ScenarioResult]] = {}
        for result in self.results:
            groups.setdefault(key(result.scenario), []).append(result)
        return dict(sorted(groups.items()))

    def checks(self) -> list[str]:
        """The kinds of check this run applied (``judge`` only when a judge decided some criterion)."""
        return [check for check in self.options.applied() if self.judged or check != "judge"]

    def observations(self) -> list[TurnObservation]:
        """Every turn of every trial."""
        return [obs for result in self.results for trial in result.trials for obs in trial.observations]

    def to_json(self, *, model: str, llm: str, command: str) -> dict[str, Any]:
        """The results file (``kefu report`` reads these keys)."""
        turns = self.observations()
        return {
            "suite": "scenarios",
            "target": self.target,
            "model": model,
            "llm": llm,
            "k": self.k,
            "machine": machine(),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
            "command": command,
            "checks": self.checks(),
            "scenarios_total": len(self.results),
            "pass_hat_k": self.pass_hat(),
            "by_category": {
                name: {"n": len(group), "pass_hat_k": self.pass_hat(group)}
                for name, group in self.grouped(lambda s: s.category).items()
            },
            "by_lang": {
                name: {"n": len(group), "pass_hat_k": self.pass_hat(group)}
                for name, group in self.grouped(lambda s: s.lang).items()
            },
            "turns": {
                "count": len(turns),
                "latency_ms": percentiles([obs.latency_ms for obs in turns if not obs.error]),
                "llm_calls_per_turn": round(sum(obs.llm_calls for obs in turns) / len(turns), 3) if turns else 0.0,
                "rules_share": round(sum(obs.route == "rules" for obs in turns) / len(turns), 3) if turns else 0.0,
            },
            "results": [
                {
                    "id": r.scenario.id,
                    "category": r.scenario.category,
                    "lang": r.scenario.lang,
                    "trials": len(r.trials),
                    "successes": r.successes,
                    "not_judged": sorted({c for t in r.trials for c in t.not_judged}),
                    "failures": [
                        {"trial": t.trial, "reasons": t.reasons, "transcript": transcript(r.scenario, t.observations)}
                        for t in r.trials
                        if not t.passed
                    ],
                }
                for r in self.results
            ],
        }


def transcript(scenario: Scenario, observed: Sequence[TurnObservation]) -> list[dict[str, Any]]:
    """The conversation as JSON rows: customer text, reply, state, tools per turn."""
    return [
        {
            "user": turn.user,
            "reply": seen.reply,
            "state": seen.state,
            "intent": seen.intent,
            "route": seen.route,
            "tools": seen.tools,
            "handed_off": seen.handed_off,
            "latency_ms": seen.latency_ms,
            **({"error": seen.error} if seen.error else {}),
        }
        for turn, seen in zip(scenario.turns, observed, strict=False)
    ]


def _plain_transcript(scenario: Scenario, observed: Sequence[TurnObservation]) -> str:
    pairs = zip(scenario.turns, observed, strict=False)
    return "\n".join(f"Customer: {turn.user}\nAgent: {seen.reply}" for turn, seen in pairs)


def run_trial(
    target: Target, scenario: Scenario, trial: int, *, judge: LlmJudge | None, options: CheckOptions
) -> TrialResult:
    """Run ``scenario`` once in a fresh conversation and check it."""
    conversation_id = f"scn-{scenario.id}-{trial}-{uuid.uuid4().hex[:8]}"[:64]
    reads_db = scenario.expect.db is not None
    before = snapshot(target.database_url, scenario.customer, conversation_id) if reads_db else None
    observed: list[TurnObservation] = []
    try:
        for turn in scenario.turns:
            seen = target.turn(conversation_id, scenario.customer, turn.user)
            observed.append(seen)
            if seen.error:
                break
    finally:
        after = snapshot(target.database_url, scenario.customer, conversation_id)
        if before is None:
            before = after
        if after.contact != before.contact:
            restore_contact(target.database_url, scenario.customer, before.contact)
    reasons = check_scenario(scenario, observed, before, after, options=options)
    not_judged: list[str] = []
    criteria = [(f"turn {n}", t.expect.judge) for n, t in enumerate(scenario.turns, 1) if t.expect.judge]
    criteria += [("conversation", scenario.expect.judge)] if scenario.expect.judge else []
    for where, criterion in criteria:
        assert criterion is not None
        if judge is None:
            not_judged.append(f"{where}: {criterion}")
            continue
        passed, why = judge.decide(criterion, _plain_transcript(scenario, observed))
        if not passed:
            reasons.append(f"{where}: judge: {criterion!r} not met ({why})")
    return TrialResult(trial, conversation_id, observed, reasons, not_judged)


def run_suite(
    target: Target,
    scenarios: Sequence[Scenario],
    k: int,
    *,
    judge: LlmJudge | None = None,
    progress: Callable[[ScenarioResult], None] | None = None,
    options: CheckOptions = CheckOptions(),
) -> SuiteResult:
    """Run each scenario ``k`` times against ``target`` (a fresh conversation each time) and check every trial."""
    if k < 1:
        raise ValueError("k must be at least 1")
    results: list[ScenarioResult] = []
    for scenario in scenarios:
        result = ScenarioResult(
            scenario, [run_trial(target, scenario, n, judge=judge, options=options) for n in range(1, k + 1)]
        )
        results.append(result)
        if progress is not None:
            progress(result)
    judged = judge is not None and any(s.judged for s in scenarios)
    return SuiteResult(target.name, k, results, options, judged)


def select_scenarios(scenarios: Sequence[Scenario], only: Sequence[str], limit: int | None) -> list[Scenario]:
    """Scenarios whose id or category matches one of the ``only`` globs, at most ``limit``."""
    chosen = [
        s
        for s in scenarios
        if not only or any(fnmatch.fnmatch(s.id, g) or fnmatch.fnmatch(s.category, g) for g in only)
    ]
    return chosen[:limit] if limit is not None else chosen


# ---------------------------------------------------------------------------------------- reports


def _rate_row(label: str, n: int, rates: dict[str, float]) -> list[str]:
    return [label, str(n), *(f"{rates[key]:.2f}" for key in sorted(rates, key=int))]


def print_report(console: Console, suite: SuiteResult, *, label: str, transcripts: int) -> None:
    """pass^k tables overall, per category and per language, then failures with transcripts."""
    headers = [f"pass^{k}" for k in range(1, suite.k + 1)]
    table = Table(title=f"Scenario suite: {label} (k={suite.k})")
    for header in ["group", "n", *headers]:
        table.add_column(header, justify="left" if header == "group" else "right")
    table.add_row(*_rate_row("all", len(suite.results), suite.pass_hat()), style="bold")
    for prefix, key in (("", lambda s: s.category), ("lang ", lambda s: s.lang)):
        table.add_section()
        for name, group in suite.grouped(key).items():
            table.add_row(*_rate_row(prefix + name, len(group), suite.pass_hat(group)))
    console.print(table)
    console.print(f"checks applied: {', '.join(suite.checks())}")
    unjudged = sorted({c for r in suite.results for t in r.trials for c in t.not_judged})
    if unjudged:
        console.print(f"[yellow]{len(unjudged)} free-text criteria not judged (no --judge-url)[/yellow]")
    failures = [(r, t) for r in suite.results for t in r.trials if not t.passed]
    reasons = Counter(reason.split(": ", 1)[-1].split(" (")[0] for _r, t in failures for reason in t.reasons)
    if failures:
        console.print(f"\n[bold]{len(failures)} failed trials[/bold]; most common reasons:")
        for reason, count in reasons.most_common(8):
            console.print(f"  {count:3d}  {escape(reason)}", highlight=False)
    shown: set[str] = set()
    for result, trial in failures:
        if len(shown) >= transcripts or result.scenario.id in shown:
            continue
        shown.add(result.scenario.id)
        console.rule(f"{result.scenario.id} ({result.scenario.category}, {result.scenario.lang}) trial {trial.trial}")
        for row in transcript(result.scenario, trial.observations):
            console.print(f"[cyan]customer[/cyan] {escape(row['user'])}", highlight=False)
            meta = escape(f"[{row['state']} · {row['route']} · tools {', '.join(row['tools'])}]")
            console.print(f"[green]agent[/green] {meta} {escape(row['reply'])}", highlight=False)
        for reason in trial.reasons:
            console.print(f"  [red]✗[/red] {escape(reason)}", highlight=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kefu eval scenarios", description=__doc__.splitlines()[0] if __doc__ else "")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--model", default="qwen2.5-coder-0.5b", help="embedded model `kefu serve` starts")
    engine.add_argument("--llm-url", help="an external OpenAI-compatible endpoint (…/v1) instead of the embedded model")
    engine.add_argument("--fake-llm", action="store_true", help="the deterministic FakeLlm (plumbing checks only)")
    parser.add_argument("--k", type=int, default=4, help="trials per scenario (pass^1 … pass^k)")
    parser.add_argument("--only", action="append", default=[], help="id or category glob (repeatable)")
    parser.add_argument("--limit", type=int, help="run at most this many scenarios")
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_DIR, help="directory of scenario YAML files")
    parser.add_argument("--judge-url", help="OpenAI-compatible endpoint for `judge:` criteria (majority of 3)")
    parser.add_argument("--judge-model", default="judge", help="model name sent to the judge endpoint")
    parser.add_argument("--out", type=Path, default=Path("evals/results/scenarios.json"), help="results JSON file")
    parser.add_argument("--transcripts", type=int, default=5, help="failed scenarios to print in full")
    parser.add_argument("--data-dir", type=Path, help="data directory for the server (default: a temporary one)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite from the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console()
    try:
        scenarios = select_scenarios(load_scenarios([args.scenarios]), args.only, args.limit)
    except ScenarioError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    if not scenarios:
        console.print("[red]no scenario matches[/red]")
        return 2
    llm = "fake" if args.fake_llm else "url" if args.llm_url else "embedded"
    model = "fake-llm" if args.fake_llm else args.model
    with tempfile.TemporaryDirectory(prefix="kefu-scenarios-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        fake = FakeLlm().start() if args.fake_llm else None
        judge = LlmJudge(args.judge_url, args.judge_model) if args.judge_url else None
        url = fake.base_url if fake is not None else args.llm_url
        server = KefuServer(data_dir, llm_base_url=url, model=None if url else args.model)
        console.print(f"starting Kefu ({llm}: {model}) on {data_dir} …")
        target: KefuTarget | None = None
        try:
            target = KefuTarget(server.start())
            suite = run_suite(
                target,
                scenarios,
                args.k,
                judge=judge,
                progress=lambda r: console.print(f"  {r.scenario.id}: {r.successes}/{len(r.trials)}", highlight=False),
            )
        finally:
            if target is not None:
                target.close()
            server.stop()
            if fake is not None:
                fake.close()
            if judge is not None:
                judge.close()
    label = f"kefu · {model}" + (" (plumbing only)" if args.fake_llm else "")
    print_report(console, suite, label=label, transcripts=args.transcripts)
    command = "python -m evals.scenario_runner " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = suite.to_json(model=model, llm=llm, command=command)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    console.print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
