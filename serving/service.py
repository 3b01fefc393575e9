"""``KefuService``: the running agent — store, graph, checkpointer and LLM server — behind one API.

The HTTP app, ``kefu chat`` and the tests all drive conversations through this class.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from agent.llm import LlmGateway, make_chat_model
from agent.pii import PiiRedactor, restore
from core.context import SupportContext
from core.db import make_engine
from core.errors import BackendError, InvalidInputError, NotFoundError
from core.seed import seed
from core.settings import Settings
from core.store import SqlStore
from core.types import Channel, ConversationId, CustomerId, Lang
from graphs import AgentDeps, Policy, build_graph, sqlite_checkpointer, warm_up
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
    latency_ms: float


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
    llm_server: LlamaServer | None = None
    llm_base_url: str | None = None
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
    ) -> KefuService:
        """Open the database (seeding the demo store if empty), start the LLM backend, build the graph.

        ``chat_model`` replaces the OpenAI-compatible client (tests); ``use_llm=False`` runs on
        rules only; ``tools`` replaces the built-in tool registry. A backend that cannot start is
        logged and the agent runs on rules.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
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
        deps = AgentDeps(
            llm=LlmGateway(model) if model is not None else None,
            redactor=PiiRedactor(),
            tools=tools or ToolRegistry(),
            policy=Policy(threshold=settings.confidence_threshold, clarify_limit=settings.clarify_limit),
        )
        graph = build_graph(deps, sqlite_checkpointer(settings.checkpoint_path))
        warmer = None
        if server is not None:
            # Only a server we just started has a cold prompt cache; warm it without delaying start-up.
            warmer = threading.Thread(target=warm_up, args=(deps,), name="kefu-warm-up", daemon=True)
            warmer.start()
        return cls(
            settings=settings,
            store=SqlStore(engine),
            graph=graph,
            llm_server=server,
            llm_base_url=base_url,
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
            )
            state: dict[str, Any] = self.graph.invoke(
                {"inbound": text, "customer_id": customer_id},
                _config(conversation_id),
                context=context,
                durability="exit",
            )
        turn = _turn_messages(state["messages"])
        reply = next(m for m in reversed(turn) if isinstance(m, AIMessage) and not m.tool_calls)
        return TurnResult(
            conversation_id=conversation_id,
            reply=restore(reply.text, state.get("vault") or {}),
            state=state["dialogue_state"],
            intent=state["intent"],
            confidence=state["confidence"],
            route=state.get("route", "rules"),
            tools=[m.name or "" for m in turn if isinstance(m, ToolMessage)],
            events=list(state.get("events", [])),
            llm_calls=state.get("llm_calls", 0),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def history(self, conversation_id: str, customer_id: str) -> tuple[str | None, list[HistoryEntry]]:
        """The dialogue state and the visible messages of a conversation (empty if it is new)."""
        values = self._check(conversation_id, customer_id)
        vault = values.get("vault") or {}
        entries = [
            HistoryEntry(
                role="customer" if isinstance(message, HumanMessage) else "agent",
                text=restore(message.text, vault),
            )
            for message in values.get("messages", [])
            if isinstance(message, HumanMessage) or (isinstance(message, AIMessage) and not message.tool_calls)
        ]
        return values.get("dialogue_state"), entries


def _config(conversation_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": conversation_id}}


def _turn_messages(messages: list[Any]) -> list[Any]:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return messages[index + 1 :]
    return messages
