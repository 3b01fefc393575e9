"""τ² tasks and how a finished conversation is scored.

The reward is the product of the components a task's ``reward_basis`` names, as τ² computes it:

- **DB**: the reference ``actions`` are replayed with the same tool implementations on a fresh
  load of the database, and the hash of that state must equal the hash of the state the agent
  left (``evals.tau2.db.state_hash``). Read-only lookups change nothing, so any trajectory that
  reaches the same end state passes.
- **COMMUNICATE**: each ``communicate_info`` string must occur in the agent's messages (case
  ignored, thousands separators dropped, as τ² checks). Applied when the basis names it or the task
  has such strings (the README asks for both, τ²'s default basis being DB + COMMUNICATE).
- **NL_ASSERTION**: an LLM judge decides each ``nl_assertions`` entry, only when a judge endpoint is
  given; otherwise the component is reported as not judged and left out of the product.

A conversation that ended other than by the user's stop or the agent's transfer scores 0.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from core.db import make_engine
from evals.tau2.db import Record, dump_state, install, state_hash
from evals.tau2.retail import RetailOps
from tools import ToolError

__all__ = [
    "GOOD_ENDINGS",
    "Judge",
    "Score",
    "Tau2Task",
    "load_tasks",
    "missing_info",
    "reference_hash",
    "score_trial",
]

GOOD_ENDINGS: Final = frozenset({"user_stop", "agent_transfer"})


@dataclass(frozen=True)
class Tau2Task:
    """One τ² task: the customer's scenario and what a correct conversation achieves."""

    id: str
    user_scenario: dict[str, Any]
    actions: list[dict[str, Any]]
    communicate_info: list[str]
    nl_assertions: list[str]
    reward_basis: list[str]

    @classmethod
    def from_line(cls, line: dict[str, Any]) -> Tau2Task:
        """From one ``tasks_dev.jsonl`` line (``{"id", ..., "task": <τ² task>}``) or a bare τ² task."""
        task = line.get("task", line)
        criteria = task.get("evaluation_criteria") or {}
        return cls(
            id=str(line.get("id") or task["id"]),
            user_scenario=task["user_scenario"],
            actions=list(criteria.get("actions") or []),
            communicate_info=[str(info) for info in criteria.get("communicate_info") or []],
            nl_assertions=[str(a) for a in criteria.get("nl_assertions") or []],
            reward_basis=list(criteria.get("reward_basis") or ["DB", "COMMUNICATE"]),
        )


def load_tasks(path: Path) -> list[Tau2Task]:
    """The tasks of a ``tasks_dev.jsonl`` file, in file order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Tau2Task.from_line(json.loads(line)) for line in lines if line.strip()]


def reference_hash(source: Record, actions: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    """The hash of ``source`` after replaying ``actions`` with the τ² tools, and the replay's errors.

    The replay runs in a throw-away Kefu database, so it uses exactly the code the agent's tools use.
    """
    with tempfile.TemporaryDirectory(prefix="tau2-gold-") as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'gold.db'}")
        try:
            install(engine, source)
            ops = RetailOps(engine)
            errors: list[str] = []
            for action in actions:
                try:
                    ops.call(action["name"], dict(action.get("arguments") or {}))
                except ToolError as exc:
                    errors.append(f"{action['name']}: {exc}")
            return state_hash(dump_state(engine)), errors
        finally:
            engine.dispose()


def missing_info(info: Sequence[str], agent_messages: Sequence[str]) -> list[str]:
    """The ``communicate_info`` strings no agent message contains (τ²'s check: case and commas ignored).

    Example:
        >>> missing_info(["1,050.50", "10"], ["The refund is $1,050.50."])
        ['10']
    """
    said = [message.lower().replace(",", "") for message in agent_messages]
    return [item for item in info if not any(item.lower().replace(",", "") in text for text in said)]


@dataclass
class Judge:
    """An LLM judge for ``nl_assertions`` behind an OpenAI-compatible endpoint."""

    base_url: str
    model: str = "default"
    timeout_s: float = 300.0

    def holds(self, transcript: str, assertion: str) -> bool:
        """Whether the judge finds ``assertion`` true of the conversation."""
        prompt = (
            "You are checking a customer-support conversation.\n\nConversation:\n"
            f"{transcript}\n\nStatement about the agent: {assertion}\n\n"
            'Answer with JSON only: {"met": true} if the statement is true of the conversation, else {"met": false}.'
        )
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0}
        response = httpx.post(f"{self.base_url.rstrip('/')}/chat/completions", json=body, timeout=self.timeout_s)
        response.raise_for_status()
        text = str(response.json()["choices"][0]["message"].get("content") or "").lower()
        return '"met": true' in text.replace("'", '"') or '"met":true' in text.replace("'", '"')


@dataclass(frozen=True)
class Score:
    """How one trial scored, component by component (None: the component does not apply)."""

    reward: float
    db_match: bool | None
    communicate: bool | None
    nl_assertions: bool | None
    nl_judged: bool
    missing: list[str]
    failures: list[str]


def score_trial(
    task: Tau2Task,
    *,
    termination: str,
    final_hash: str,
    gold_hash: str,
    agent_messages: Sequence[str],
    transcript: str,
    judge: Judge | None,
) -> Score:
    """Score one finished conversation of ``task`` (see the module docstring for the rules)."""
    basis = set(task.reward_basis)
    failures: list[str] = []
    db_match = final_hash == gold_hash if "DB" in basis else None
    if db_match is False:
        failures.append("db: final state differs from the reference")
    missing: list[str] = []
    communicate: bool | None = None
    if "COMMUNICATE" in basis or task.communicate_info:
        missing = missing_info(task.communicate_info, agent_messages)
        communicate = not missing
        if missing:
            failures.append(f"communicate: not said {missing}")
    nl: bool | None = None
    judged = False
    if "NL_ASSERTION" in basis and task.nl_assertions and judge is not None:
        judged = True
        failed = [a for a in task.nl_assertions if not judge.holds(transcript, a)]
        nl = not failed
        failures += [f"nl_assertion: {a}" for a in failed]
    if termination not in GOOD_ENDINGS:
        failures.insert(0, f"termination: {termination}")
    components = [c for c in (db_match, communicate, nl) if c is not None]
    reward = 1.0 if termination in GOOD_ENDINGS and all(components) else 0.0
    return Score(reward, db_match, communicate, nl, judged, missing, failures)
