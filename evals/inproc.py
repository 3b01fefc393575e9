"""Kefu's agent assembled in-process from its layers, for evals that swap a part the server does not let them.

The τ²-bench adapter replaces the store and the tools; the ReAct baseline reuses the same store,
knowledge base, redactor and tools as Kefu, only without Kefu's graph. The assembly follows
``KefuService.start`` (``serving/service.py``) step by step, minus what only a server needs (the
human desk, live events, metrics, the LLM process): evals sit beside ``serving`` and cannot import it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from agent.intent_engine import IntentEngine
from agent.intents import load_or_train
from agent.llm import LlmGateway, make_chat_model
from agent.pii import PiiRedactor, restore
from agent.policy import Policy
from agent.slots import CatalogMatcher
from core.context import SupportContext
from core.db import make_engine
from core.seed import seed
from core.settings import Settings
from core.store import SqlStore
from core.types import Channel, ConversationId, CustomerId, Lang
from core.vault import PiiVault
from evals.targets import TurnObservation
from graphs import AgentDeps, build_graph
from graphs.checkpoint import checkpointer_for
from knowledge import DEMO_DOCS, DEMO_TRIPLES, KnowledgeBase
from tools import ToolRegistry

__all__ = ["InprocAgent", "turn_messages"]

log = logging.getLogger(__name__)


@dataclass
class InprocAgent:
    """Store, vault, knowledge base, redactor, gateway and Kefu's compiled graph over one data directory."""

    settings: Settings
    store: SqlStore
    vault: PiiVault
    knowledge: KnowledgeBase | None
    redactor: PiiRedactor
    gateway: LlmGateway | None
    deps: AgentDeps
    graph: CompiledStateGraph[Any, Any, Any, Any]

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        llm_base_url: str | None,
        tools: ToolRegistry | None = None,
        seed_demo: bool = True,
        **overrides: Any,
    ) -> InprocAgent:
        """Assemble the agent on ``data_dir`` (created; the demo store seeded unless ``seed_demo`` is false).

        ``llm_base_url`` is any OpenAI-compatible endpoint (None: rules only); ``tools`` replaces the
        built-in tools; ``overrides`` are ``Settings`` fields. A vault key is created in ``data_dir``.
        """
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=data_dir, **overrides)
        engine = make_engine(settings.resolved_database_url)
        if settings.vault_key is None and not settings.vault_key_path.exists():
            from core.vault import write_key_file

            write_key_file(settings.vault_key_path)
        vault = PiiVault.from_settings(engine, settings)
        if seed_demo:
            seed(engine)
        store = SqlStore(engine)
        knowledge: KnowledgeBase | None
        try:
            docs = [DEMO_DOCS] if settings.kb_docs is None else settings.kb_docs
            knowledge = KnowledgeBase.open(
                settings.kb_path, store.list_products(), doc_paths=docs, triples=settings.kb_triples or DEMO_TRIPLES
            )
        except Exception:  # as in the server: the knowledge tools then say it is unavailable
            log.exception("knowledge base unavailable, running without it")
            knowledge = None
        known_terms = [name for _sku, *names in store.product_names() for name in names] + store.carrier_names()
        if knowledge is not None:
            known_terms += knowledge.known_terms()
        redactor = PiiRedactor(known_terms=known_terms)
        model = make_chat_model(settings, llm_base_url) if llm_base_url else None
        gateway = LlmGateway(model, settings.llm_cooldown_s, redactor) if model is not None else None
        policy = Policy.load(settings.policy_file)
        from core.embeddings import sentence_encoder

        deps = AgentDeps(
            llm=gateway,
            intents=IntentEngine(load_or_train(settings.intent_models, sentence_encoder()), gateway, policy),
            redactor=redactor,
            tools=tools or ToolRegistry(),
            catalog=CatalogMatcher(store.product_names()),
        )
        graph = build_graph(deps, checkpointer_for(settings))
        return cls(settings, store, vault, knowledge, redactor, gateway, deps, graph)

    def context(self, conversation_id: str, customer_id: str, lang: Lang | None = None) -> SupportContext:
        """The per-turn context the server would pass for this customer."""
        return SupportContext(
            customer_id=CustomerId(customer_id),
            conversation_id=ConversationId(conversation_id),
            channel=Channel.APP,
            store=self.store,
            lang=lang,
            vault=self.vault,
            knowledge=self.knowledge,
        )

    def turn(self, conversation_id: str, customer_id: str, text: str, lang: Lang | None = None) -> TurnObservation:
        """One customer message through Kefu's graph, as the server runs it (placeholders restored)."""
        started = time.perf_counter()
        calls = self.gateway.calls if self.gateway else 0
        prompt = self.gateway.prompt_tokens if self.gateway else 0
        completion = self.gateway.completion_tokens if self.gateway else 0
        config: RunnableConfig = {"configurable": {"thread_id": conversation_id}}
        state: dict[str, Any] = self.graph.invoke(
            {"inbound": text, "customer_id": customer_id},
            config,
            context=self.context(conversation_id, customer_id, lang),
            durability="exit",
        )
        messages = turn_messages(state["messages"])
        reply = next((m for m in reversed(messages) if isinstance(m, AIMessage) and not m.tool_calls), None)
        text_out = restore(reply.text, self.vault.entries(conversation_id)) if reply is not None else ""
        return TurnObservation(
            reply=text_out,
            tools=[m.name or "" for m in messages if isinstance(m, ToolMessage)],
            state=state.get("dialogue_state"),
            intent=state.get("intent"),
            route=state.get("route", "rules"),
            fallback=state.get("fallback_reason"),
            llm_calls=(self.gateway.calls - calls) if self.gateway else 0,
            prompt_tokens=(self.gateway.prompt_tokens - prompt) if self.gateway else 0,
            completion_tokens=(self.gateway.completion_tokens - completion) if self.gateway else 0,
            latency_ms=(time.perf_counter() - started) * 1000,
            handed_off=state.get("dialogue_state") == "handoff",
        )


def turn_messages(messages: list[BaseMessage]) -> list[BaseMessage]:
    """The messages of the latest turn: everything after the last customer message."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].type == "human":
            return messages[index + 1 :]
    return list(messages)
