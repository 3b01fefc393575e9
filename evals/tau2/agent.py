"""What answers the simulated customer: Kefu's real graph with the τ² tools, in-process.

**Authentication bridge.** Kefu authenticates the customer through the channel
(``SupportContext.customer_id``); τ² authenticates inside the conversation. A τ² conversation
starts as the guest customer (``GUEST_CUSTOMER_ID``), whose account is empty; once a
``find_user_id_by_*`` tool has located the user, the tool records it for the conversation and the
next turns run as that customer, as a channel would after a successful login. The τ² tools take
τ²'s ``user_id``/order id arguments either way, as τ² does; Kefu's own tools (``lookup_order`` ...)
see the user's orders only after authentication.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from core.types import Lang
from evals.inproc import InprocAgent
from evals.tau2.db import GUEST_CUSTOMER_ID, authenticated_user
from evals.tau2.tools import tau2_registry

__all__ = ["AgentTurn", "KefuTau2Agent", "Tau2Agent"]


@dataclass(frozen=True)
class AgentTurn:
    """The agent's answer to one customer message."""

    reply: str
    tools: list[str] = field(default_factory=list)
    transferred: bool = False
    """The agent handed the customer to a human (``transfer_to_human_agents``, or Kefu's own handoff)."""


class Tau2Agent(Protocol):
    """An agent a τ² task can run against."""

    name: str

    @property
    def engine(self) -> Engine:
        """The database holding the τ² tables the agent's tools change."""
        ...

    def respond(self, conversation_id: str, text: str) -> AgentTurn:
        """Answer one customer message of ``conversation_id``."""
        ...


@dataclass
class KefuTau2Agent:
    """Kefu's graph over a data directory whose store holds the τ² database."""

    inproc: InprocAgent
    name: str = "kefu"

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        llm_base_url: str | None,
        policy: Path | None,
        model: str | None = None,
        **settings: Any,
    ) -> KefuTau2Agent:
        """Assemble Kefu on ``data_dir`` with the τ² tools; the policy document goes into its knowledge base.

        ``settings`` are further ``Settings`` fields (e.g. ``intent_model_dir`` to reuse a trained classifier).
        """
        # Kefu's demo product graph names the demo catalog; the τ² catalog gets an empty one.
        data_dir.mkdir(parents=True, exist_ok=True)
        triples = data_dir / "tau2_triples.yaml"
        triples.write_text("entities: []\nrelations: []\n", encoding="utf-8")
        overrides: dict[str, object] = {"kb_docs": [policy] if policy else [], "kb_triples": triples}
        if model:
            overrides["llm_model"] = model
        inproc = InprocAgent.open(
            data_dir, llm_base_url=llm_base_url, tools=tau2_registry(), seed_demo=False, **overrides, **settings
        )
        return cls(inproc)

    @property
    def engine(self) -> Engine:
        """Kefu's store, holding the τ² tables."""
        return self.inproc.store.engine

    def respond(self, conversation_id: str, text: str) -> AgentTurn:
        """One turn through Kefu's graph, as the authenticated user if the conversation has one."""
        customer = authenticated_user(self.engine, conversation_id) or GUEST_CUSTOMER_ID
        observation = self.inproc.turn(conversation_id, customer, text, lang=Lang.EN)
        if observation.error:
            raise RuntimeError(observation.error)
        transferred = "transfer_to_human_agents" in observation.tools or observation.handed_off
        return AgentTurn(observation.reply, observation.tools, transferred)
