"""``KefuService``: the running agent — store, graph, checkpointer and LLM server — behind one API.

The HTTP app, ``kefu chat`` and the tests all drive conversations through this class.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from agent.intent_engine import IntentEngine, Ranker
from agent.intents import load_or_train
from agent.llm import LlmGateway, make_chat_model
from agent.pii import PiiRedactor, restore
from agent.policy import Policy
from agent.slots import CatalogMatcher
from core.context import SupportContext
from core.db import make_engine
from core.embeddings import sentence_encoder
from core.errors import BackendError, InvalidInputError, NotFoundError
from core.seed import seed
from core.settings import Settings
from core.store import SqlStore
from core.types import Channel, ConversationId, CustomerId, Lang, NextBestAction, TurnAudit
from core.vault import PiiVault
from graphs import AgentDeps, build_graph, sqlite_checkpointer, warm_up
from knowledge import DEMO_DOCS, DEMO_TRIPLES, KnowledgeBase
from serving.llm_server import LlamaServer
from serving.models import resolve_model
from tools import ToolRegistry

__all__ = ["HistoryEntry", "KefuService", "TurnResult"]

log = logging.getLogger(__name__)

_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class TurnResult:
    """What one customer message produced."""

    conversation_id: str
    reply: str
    state: str
    intent: str
    confidence: float
    route: str
    """``llm`` or ``rules``."""
    tools: list[str]
    events: list[str]
    llm_calls: int
    stage: str
    """Which stage decided the intent."""
    emotion: str
    fallback: str | None
    """Why a rule-based reply or a handoff fired, if one did."""
    latency_ms: float
    sources: list[dict[str, Any]] = field(default_factory=list)
    """What the reply rests on: cited document passages (ref, id, source, title, score) and graph paths."""


@dataclass(frozen=True)
class HistoryEntry:
    """One visible message of a conversation."""

    role: str
    """``customer`` or ``agent``."""
    text: str


@dataclass
class KefuService:
    """The agent with everything it runs on."""

    settings: Settings
    store: SqlStore
    graph: CompiledStateGraph[Any, Any, Any, Any]
    vault: PiiVault
    llm_server: LlamaServer | None = None
    llm_base_url: str | None = None
    knowledge: KnowledgeBase | None = None
    """None when the knowledge base failed to open: the knowledge tools then say so and offer a human."""
    policy: Policy = field(default_factory=Policy)
    warm_up_thread: threading.Thread | None = None
    """Fills the LLM server's prompt cache after start-up."""
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        chat_model: BaseChatModel | None = None,
        use_llm: bool = True,
        seed_demo: bool = True,
        tools: ToolRegistry | None = None,
        intent_model: Ranker | None = None,
    ) -> KefuService:
        """Open the database (seeding the demo store if empty) and the PII vault, start the LLM, build the graph.

        ``chat_model`` replaces the OpenAI-compatible client (tests); ``use_llm=False`` runs on
        rules only; ``tools`` replaces the built-in tool registry; ``intent_model`` replaces the
        classifier loaded (or trained) from ``settings.intent_models``. A backend that cannot start is
        logged and the agent runs on rules.

        Raises:
            VaultKeyError: no vault key is configured, or it does not open the existing vault.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        vault = PiiVault.from_settings(engine, settings)  # before anything slow: a key problem fails fast
        vault.purge_expired()
        if seed_demo:
            seed(engine)
        server: LlamaServer | None = None
        base_url = settings.llm_base_url
        model = chat_model
        if model is None and use_llm:
            if settings.llm_backend == "llamacpp" and not base_url:
                server = LlamaServer.from_settings(settings, resolve_model(settings.cache_dir, settings.llm_model))
                try:
                    server.start()
                    base_url = server.base_url
                except BackendError as exc:
                    log.error("LLM server did not start; answering with rules only: %s", exc)
                    server = None
            if base_url:
                model = make_chat_model(settings, base_url)
        store = SqlStore(engine)
        knowledge = _open_knowledge(settings, store)
        products = store.product_names()
        # The catalog's and the carriers' names are no one's personal data, whatever NER thinks.
        known_terms = [name for _sku, *names in products for name in names] + store.carrier_names()
        if knowledge is not None:
            known_terms += knowledge.known_terms()
        redactor = PiiRedactor(known_terms=known_terms)
        gateway = LlmGateway(model, settings.llm_cooldown_s, redactor) if model is not None else None
        policy = Policy.load(settings.policy_file)
        deps = AgentDeps(
            llm=gateway,
            intents=IntentEngine(
                intent_model or load_or_train(settings.intent_models, sentence_encoder()), gateway, policy
            ),
            redactor=redactor,
            tools=tools or ToolRegistry(),
            catalog=CatalogMatcher(products),
        )
        graph = build_graph(deps, sqlite_checkpointer(settings.checkpoint_path))
        warmer = None
        if server is not None:
            # Only a server we just started has a cold prompt cache; warm it without delaying start-up.
            warmer = threading.Thread(target=warm_up, args=(deps,), name="kefu-warm-up", daemon=True)
            warmer.start()
        return cls(
            settings=settings,
            store=store,
            graph=graph,
            vault=vault,
            llm_server=server,
            llm_base_url=base_url,
            knowledge=knowledge,
            policy=policy,
            warm_up_thread=warmer,
        )

    @property
    def prompt_cache(self) -> str:
        """``warming`` while the start-up warm-up runs, ``warm`` after, ``n/a`` without a local server."""
        if self.warm_up_thread is None:
            return "n/a"
        return "warming" if self.warm_up_thread.is_alive() else "warm"

    def close(self) -> None:
        """Stop the LLM server this service started."""
        if self.llm_server is not None:
            self.llm_server.stop()
            self.llm_server = None

    def _lock(self, conversation_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(conversation_id, threading.Lock())

    def _check(self, conversation_id: str, customer_id: str) -> dict[str, Any]:
        if not _CONVERSATION_ID.match(conversation_id):
            raise InvalidInputError("conversation_id must be 1-64 characters of letters, digits and _.:-")
        if self.store.get_customer(CustomerId(customer_id)) is None:
            raise NotFoundError(f"unknown customer {customer_id!r}")
        values: dict[str, Any] = self.graph.get_state(_config(conversation_id)).values
        owner = values.get("customer_id")
        if owner is not None and owner != customer_id:
            # Reads exactly like a missing conversation: ids of other customers must not leak.
            raise NotFoundError(f"no conversation {conversation_id!r} for customer {customer_id!r}")
        return values

    def chat(
        self,
        conversation_id: str,
        customer_id: str,
        text: str,
        *,
        channel: Channel = Channel.WEB,
        lang: Lang | None = None,
    ) -> TurnResult:
        """Run one customer message through the graph and return the reply.

        Raises:
            InvalidInputError: empty or oversized text, or a malformed conversation id.
            NotFoundError: unknown customer, or a conversation that belongs to someone else.
        """
        text = text.strip()
        if not text:
            raise InvalidInputError("text is empty")
        if len(text) > self.settings.max_message_chars:
            raise InvalidInputError(f"text is longer than {self.settings.max_message_chars} characters")
        started = time.perf_counter()
        with self._lock(conversation_id):
            self._check(conversation_id, customer_id)
            context = SupportContext(
                customer_id=CustomerId(customer_id),
                conversation_id=ConversationId(conversation_id),
                channel=channel,
                store=self.store,
                lang=lang,
                vault=self.vault,
                knowledge=self.knowledge,
            )
            state: dict[str, Any] = self.graph.invoke(
                {"inbound": text, "customer_id": customer_id},
                _config(conversation_id),
                context=context,
                durability="exit",
            )
        turn = _turn_messages(state["messages"])
        reply = next(m for m in reversed(turn) if isinstance(m, AIMessage) and not m.tool_calls)
        vault = self.vault.entries(conversation_id)  # one decryption of the vault for the whole reply
        result = TurnResult(
            conversation_id=conversation_id,
            reply=restore(reply.text, vault),
            state=state["dialogue_state"],
            intent=state["intent"],
            confidence=state["confidence"],
            route=state.get("route", "rules"),
            tools=[m.name or "" for m in turn if isinstance(m, ToolMessage)],
            events=list(state.get("events", [])),
            llm_calls=state.get("llm_calls", 0),
            stage=state.get("stage", ""),
            emotion=state.get("emotion", "calm"),
            fallback=_fallback(state),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            sources=[{**source, "title": restore(str(source["title"]), vault)} for source in state.get("sources", [])],
        )
        self._audit(customer_id, state, result)
        return result

    def _audit(self, customer_id: str, state: dict[str, Any], result: TurnResult) -> None:
        policy = self.policy
        self.store.record_turn(
            TurnAudit(
                conversation_id=ConversationId(result.conversation_id),
                customer_id=CustomerId(customer_id),
                created_at=datetime.now(UTC).replace(tzinfo=None),
                intent=result.intent,
                confidence=result.confidence,
                stage=result.stage,
                thresholds=f"accept={policy.accept} gap={policy.gap} unsure_below={policy.unsure_below}",
                decision=str(state.get("reason", ""))[:500],
                fallback=result.fallback,
                emotion=result.emotion,
                state=result.state,
                events=result.events,
                tools=result.tools,
                route=result.route,
                llm_calls=result.llm_calls,
                latency_ms=result.latency_ms,
            )
        )

    def next_best_action(
        self, customer_id: str, context: str | None = None, lang: Lang | None = None
    ) -> NextBestAction:
        """What the shop should do next for a customer, from the profile, order history and product graph.

        Raises:
            NotFoundError: unknown customer.
            BackendError: the knowledge base is not available.
        """
        if self.knowledge is None:
            raise BackendError("the knowledge base is not available; see the server log")
        return self.knowledge.next_best_action(self.store, CustomerId(customer_id), context=context, lang=lang)

    def audit(self, conversation_id: str, customer_id: str) -> list[TurnAudit]:
        """How every turn of a conversation was decided, oldest first."""
        self._check(conversation_id, customer_id)
        return self.store.turn_audits(ConversationId(conversation_id))

    def history(self, conversation_id: str, customer_id: str) -> tuple[str | None, list[HistoryEntry]]:
        """The dialogue state and the visible messages of a conversation (empty if it is new)."""
        values = self._check(conversation_id, customer_id)
        vault = self.vault.entries(conversation_id)
        entries = [
            HistoryEntry(
                role="customer" if isinstance(message, HumanMessage) else "agent",
                text=restore(message.text, vault),
            )
            for message in values.get("messages", [])
            if isinstance(message, HumanMessage) or (isinstance(message, AIMessage) and not message.tool_calls)
        ]
        return values.get("dialogue_state"), entries


def _open_knowledge(settings: Settings, store: SqlStore) -> KnowledgeBase | None:
    """Open the knowledge base, ingesting the configured documents; None (logged) if it cannot open."""
    docs = [DEMO_DOCS] if settings.kb_docs is None else settings.kb_docs
    try:
        return KnowledgeBase.open(
            settings.kb_path, store.list_products(), doc_paths=docs, triples=settings.kb_triples or DEMO_TRIPLES
        )
    except Exception:  # a broken vector store must not stop the agent: the tools say it is unavailable
        log.exception("knowledge base unavailable, answering without it")
        return None


def _fallback(state: dict[str, Any]) -> str | None:
    """Why the turn did not get a plain model answer, if it did not."""
    if state.get("escalate_reason"):
        return f"handoff: {state['escalate_reason']}"
    if state.get("fallback_reason"):
        return str(state["fallback_reason"])
    if state.get("offered_human"):
        return "offered a human after repeated unsure turns"
    if not state.get("sure", True):
        return "unsure: clarifying question"
    if state.get("stage") == "classifier:llm-down":
        return "LLM down: rule-based reply"
    if state.get("route") == "rules" and state.get("llm_calls", 0) > 0:
        return "LLM reply unavailable or ungrounded: template"
    return None


def _config(conversation_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": conversation_id}}


def _turn_messages(messages: list[Any]) -> list[Any]:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return messages[index + 1 :]
    return messages
