"""``KefuService``: the running agent — store, graph, checkpointer and LLM server — behind one API.

The HTTP app, ``kefu chat`` and the tests all drive conversations through this class.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg_pool
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy import Engine, delete, event, select, update
from sqlalchemy import exc as sql_exc
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from agent.endpoints import EndpointPool
from agent.intent_engine import IntentEngine, Ranker
from agent.intents import load_or_train
from agent.llm import LlmGateway
from agent.pii import PiiRedactor, restore
from agent.policy import Policy
from agent.slots import CatalogMatcher
from core.context import SupportContext
from core.db import AccessAuditRow, ConversationLogRow, InboundMessageRow, TurnAuditRow, VaultEntryRow, make_engine
from core.desk import DeskStore
from core.embeddings import sentence_encoder
from core.errors import BackendError, ConfigError, InvalidInputError, NotFoundError
from core.seed import seed
from core.settings import Settings
from core.store import SqlStore
from core.types import Channel, ConversationId, CustomerId, Lang, NextBestAction, TurnAudit
from core.vault import PiiVault
from graphs import AgentDeps, build_graph, warm_up
from graphs.checkpoint import Checkpointer, checkpointer_for, close_checkpointer, prune_checkpoints
from insights.experiments import Experiments
from insights.profile import Insights
from insights.questions import unanswered_reason
from insights.turns import fallback_kind
from knowledge import DEMO_DOCS, DEMO_TRIPLES, KnowledgeBase
from serving.cluster import Cluster
from serving.desk import HUMAN_PREFIX, HumanDesk, message_role
from serving.errors import StorageUnavailableError
from serving.hub import EventHub
from serving.llm_server import LlamaServer
from serving.metrics import Metrics
from serving.models import resolve_model
from tools import ToolRegistry

__all__ = ["HistoryEntry", "KefuService", "StoragePrune", "TurnResult", "prune_storage"]

log = logging.getLogger(__name__)

_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

_STORAGE_ERRORS = (
    sqlite3.OperationalError,
    sql_exc.OperationalError,
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
)
"""A locked, missing or unreachable database, from the checkpointer (sqlite3, psycopg and its pool) or the
store (SQLAlchemy)."""


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
    message_id: str | None = None
    """The channel's id of the customer message, when it gave one."""
    replayed: bool = False
    """This message id was answered before: the stored reply, not a second turn."""


@dataclass(frozen=True)
class HistoryEntry:
    """One visible message of a conversation."""

    role: str
    """``customer``, ``agent`` (the bot), ``human`` (a human agent) or ``notice`` (the desk's notices)."""
    text: str
    agent: str | None = None
    """For ``human`` messages: the agent's display name."""


@dataclass(frozen=True)
class StoragePrune:
    """What one pruning run deleted (``prune_storage``)."""

    superseded_checkpoints: int
    """Earlier checkpoints of live conversations (only the latest is ever read)."""
    expired_conversations: int
    """Conversations inactive for longer than the retention, deleted whole."""
    expired_checkpoints: int
    checkpoint_writes: int
    checkpoint_values: int
    """Channel values no kept checkpoint refers to (PostgreSQL keeps them apart from checkpoints)."""
    answers: int
    """Stored answers to message ids (replayed on retries), older than the retention."""
    turn_audits: int
    """Turn audit rows (how each turn was decided) older than the audit retention."""
    questions: int
    """Customers' words cleared from turn audits older than the conversation retention; the decisions stay."""
    conversation_logs: int
    """Rows of the text-free service log (``conversation_log``) older than the analytics retention."""
    access_audits: int
    """Access-audit entries (who viewed what, automated decisions) older than the audit retention."""
    vault_entries: int
    """Expired personal data behind placeholders."""
    seconds: float


def prune_storage(
    settings: Settings, saver: Checkpointer, engine: Engine, *, now: datetime | None = None
) -> StoragePrune:
    """Bound what conversations store: latest checkpoint only, and each kind of record kept only as long as allowed.

    Each conversation keeps its latest checkpoint (all Kefu reads). After ``settings.retention_days``
    (the customer's words and personal data): conversations whose last activity is older lose their
    checkpoints, stored answers and expired vault entries go, and turn audits lose the customer's
    message (``question``) but keep the decision. After ``settings.audit_retention_days`` the turn
    audits and the access audit go; after ``settings.analytics_retention_days`` the text-free service
    log (``conversation_log``, by its last activity) goes. Safe while turns run. ``kefu prune`` can
    call it with ``checkpointer_for(settings)`` and ``make_engine(...)``.

    Args:
        settings: Where the retention period comes from.
        saver: The conversations' checkpointer.
        engine: The store's database (answers, audits, service log, vault).
        now: The present, for tests; defaults to the clock.
    """
    started = time.perf_counter()
    moment = now or datetime.now(UTC)
    cutoff = moment - timedelta(days=settings.retention_days)
    checkpoints = prune_checkpoints(saver, inactive_before=cutoff)
    naive_now = moment.astimezone(UTC).replace(tzinfo=None)  # the store keeps naive UTC times
    naive_cutoff = naive_now - timedelta(days=settings.retention_days)
    audit_cutoff = naive_now - timedelta(days=settings.audit_retention_days)
    analytics_cutoff = naive_now - timedelta(days=settings.analytics_retention_days)
    with Session(engine) as session, session.begin():
        answers = session.execute(delete(InboundMessageRow).where(InboundMessageRow.created_at < naive_cutoff))
        # The demo generator's synthetic history is nobody's data: it stays, so the demo store (and its
        # models, dashboard and tests) does not change with the calendar.
        seeded = select(ConversationLogRow.conversation_id).where(ConversationLogRow.seeded.is_(True))
        real_turn = TurnAuditRow.conversation_id.not_in(seeded)
        audits = session.execute(delete(TurnAuditRow).where(TurnAuditRow.created_at < audit_cutoff, real_turn))
        # Audits deleted above are not counted again here.
        questions = session.execute(
            update(TurnAuditRow)
            .where(TurnAuditRow.created_at < naive_cutoff, TurnAuditRow.question.is_not(None), real_turn)
            .values(question=None)
        )
        logs = session.execute(
            delete(ConversationLogRow).where(
                ConversationLogRow.last_at < analytics_cutoff, ConversationLogRow.seeded.is_(False)
            )
        )
        access = session.execute(delete(AccessAuditRow).where(AccessAuditRow.at < audit_cutoff))
        vault = session.execute(delete(VaultEntryRow).where(VaultEntryRow.expires_at <= naive_now))
    report = StoragePrune(
        superseded_checkpoints=checkpoints.superseded_checkpoints,
        expired_conversations=len(checkpoints.expired_conversations),
        expired_checkpoints=checkpoints.expired_checkpoints,
        checkpoint_writes=checkpoints.writes,
        checkpoint_values=checkpoints.blobs,
        answers=_rowcount(answers),
        turn_audits=_rowcount(audits),
        questions=_rowcount(questions),
        conversation_logs=_rowcount(logs),
        access_audits=_rowcount(access),
        vault_entries=_rowcount(vault),
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("pruned stored conversations: %s", report)
    return report


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass
class KefuService:
    """The agent with everything it runs on."""

    settings: Settings
    store: SqlStore
    graph: CompiledStateGraph[Any, Any, Any, Any]
    vault: PiiVault
    llm_server: LlamaServer | None = None
    llm_base_url: str | None = None
    llm_endpoints: EndpointPool | None = None
    """The LLM endpoints with their health; None with a chat model given directly or rules only."""
    knowledge: KnowledgeBase | None = None
    """None when the knowledge base failed to open: the knowledge tools then say so and offer a human."""
    policy: Policy = field(default_factory=Policy)
    warm_up_thread: threading.Thread | None = None
    """Fills the LLM server's prompt cache after start-up."""
    deps: AgentDeps | None = None
    gateway: LlmGateway | None = None
    cluster: Cluster = field(default_factory=Cluster.local)
    """What replicas share: live events (``hub``), turn locks, the handoff queue; in process without Redis."""
    metrics: Metrics = field(default_factory=Metrics)
    checkpointer: Checkpointer | None = None
    """The conversations' checkpointer, which ``prune`` bounds; None for a graph built elsewhere."""
    insights: Insights | None = None
    """Customer features, segments and churn/repurchase scores; None for a service built without them."""
    experiments: Experiments | None = None
    """A/B experiments from ``settings.experiments_file``; each turn runs under its customer's variant."""
    _desk: HumanDesk | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

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
        engine = make_engine(
            settings.resolved_database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
        )
        _limit_busy_wait(engine, settings.db_busy_timeout_s)
        vault = PiiVault.from_settings(engine, settings)  # before anything slow: a key problem fails fast
        vault.purge_expired()
        if seed_demo:
            seed(engine)
        server: LlamaServer | None = None
        urls = settings.endpoints
        model = chat_model
        if model is None and use_llm:
            if settings.llm_backend == "llamacpp" and not urls:
                server = LlamaServer.from_settings(settings, resolve_model(settings.cache_dir, settings.llm_model))
                try:
                    server.start()
                    urls = [server.base_url]
                except BackendError as exc:
                    log.error("LLM server did not start; answering with rules only: %s", exc)
                    server = None
            if urls:
                model = EndpointPool.from_settings(settings, urls)
        endpoints = model if isinstance(model, EndpointPool) else None
        base_url = ", ".join(endpoints.urls) if endpoints is not None else settings.llm_base_url
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
        experiments = Experiments.load(settings.experiments_file)
        deps = AgentDeps(
            llm=gateway,
            intents=IntentEngine(
                intent_model or load_or_train(settings.intent_models, sentence_encoder()), gateway, policy
            ),
            redactor=redactor,
            tools=tools or ToolRegistry(),
            catalog=CatalogMatcher(products),
            experiments=experiments,
        )
        checkpointer = checkpointer_for(settings)
        graph = build_graph(deps, checkpointer)
        warmer = None
        if server is not None:
            # Only a server we just started has a cold prompt cache; warm it without delaying start-up.
            warmer = threading.Thread(target=warm_up, args=(deps,), name="kefu-warm-up", daemon=True)
            warmer.start()
        cluster = Cluster.from_settings(settings, DeskStore(engine))
        service = cls(
            settings=settings,
            cluster=cluster,
            store=store,
            graph=graph,
            vault=vault,
            llm_server=server,
            llm_base_url=base_url,
            llm_endpoints=endpoints,
            knowledge=knowledge,
            policy=policy,
            warm_up_thread=warmer,
            deps=deps,
            gateway=gateway,
            checkpointer=checkpointer,
            experiments=experiments,
            insights=Insights(engine, settings.insights_path),
        )
        # Bound stored conversations now (checkpoints, answers, audits by their retentions), then periodically.
        try:
            service.prune()
        except _STORAGE_ERRORS as exc:  # a busy database must not stop start-up; the next run catches up
            log.warning("pruning at start-up failed (%s); retrying in %.0f s", exc, settings.prune_interval_s)
        threading.Thread(target=service._prune_periodically, name="kefu-prune", daemon=True).start()
        if gateway is not None:
            service.metrics.watch_llm(
                lambda: (gateway.calls, gateway.prompt_tokens, gateway.completion_tokens, gateway.pii_blocked)
            )
        if endpoints is not None:
            endpoints.start_health_checks()
            service.metrics.watch_endpoints(lambda: [(state.url, state.up) for state in endpoints.states()])
        return service

    @property
    def desk(self) -> DeskStore:
        """Handoffs, agents, API keys, channel identities."""
        return self.human_desk.store

    @property
    def human_desk(self) -> HumanDesk:
        """The human desk of this service."""
        if self._desk is None:
            self._desk = HumanDesk(self, DeskStore(self.store.engine), self.hub)
        return self._desk

    def register_outbound(self, channel: Channel, send: Callable[[str, str, str], None]) -> None:
        """Deliver desk messages (a human's replies, notices) on ``channel``.

        ``send(conversation_id, customer_id, text)`` is for channels without a live socket, such as
        WeChat's customer-service message API.
        """
        self.human_desk.outbound[channel] = send

    def readiness(self) -> dict[str, str]:
        """Each dependency's state: ``database``, ``vector_store``, ``redis`` (if used) must be ``ok``; not the LLM."""
        checks: dict[str, str] = {"redis": self.cluster.health()}
        try:
            with self.store.engine.connect() as connection:
                connection.execute(sql_text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means not ready; say which
            checks["database"] = f"down: {type(exc).__name__}"
        if self.knowledge is None:
            checks["vector_store"] = "down: knowledge base did not open"
        else:
            try:
                checks["vector_store"] = f"ok ({self.knowledge.ping()} chunks)"
            except Exception as exc:  # same: report, do not raise
                checks["vector_store"] = f"down: {type(exc).__name__}"
        if self.gateway is None:
            checks["llm"] = "none (rules only)"
        elif self.llm_server is not None and self.llm_server.pid is None:
            checks["llm"] = "down (rule-based replies)"
        else:
            checks.update(self._llm_readiness(self.gateway))
        checks["prompt_cache"] = self.prompt_cache
        return checks

    def _llm_readiness(self, gateway: LlmGateway) -> dict[str, str]:
        """``llm`` (``ok (2/3 endpoints up)``) and, with endpoints, ``llm_endpoints`` (each one up or down)."""
        endpoints = self.llm_endpoints
        if endpoints is None:
            return {"llm": "ok" if gateway.available else "cooling down after a failure (rule-based replies)"}
        states = endpoints.states()
        up = sum(state.up for state in states)
        count = f"{up}/{len(states)} endpoints up"
        if up == 0:
            llm = f"down: {count} (rule-based replies)"
        elif not gateway.available:
            llm = f"cooling down after a failure, {count} (rule-based replies)"
        else:
            llm = f"ok ({count})"
        each = ", ".join(f"{state.url} {'up' if state.up else 'down'}" for state in states)
        return {"llm": llm, "llm_endpoints": each}

    @property
    def prompt_cache(self) -> str:
        """``warming`` while the start-up warm-up runs, ``warm`` after, ``n/a`` without a local server."""
        if self.warm_up_thread is None:
            return "n/a"
        return "warming" if self.warm_up_thread.is_alive() else "warm"

    def prune(self, now: datetime | None = None) -> StoragePrune:
        """Prune stored conversations now (see ``prune_storage``); the server also does it every ``prune_interval_s``.

        Raises:
            RuntimeError: the service has no checkpointer of Kefu's to prune.
        """
        if self.checkpointer is None:
            raise RuntimeError("this service was built without Kefu's checkpointer")
        return prune_storage(self.settings, self.checkpointer, self.store.engine, now=now)

    def _prune_periodically(self) -> None:
        while not self._stop.wait(self.settings.prune_interval_s):
            try:
                self.prune()
            except Exception:  # a failed run (a locked database) is retried at the next interval
                log.exception("pruning stored conversations failed; retrying in %.0f s", self.settings.prune_interval_s)

    def close(self) -> None:
        """Stop the periodic pruning, the shared parts' threads (Redis) and the LLM server this service started."""
        self._stop.set()
        self.cluster.close()
        if self.llm_endpoints is not None:
            self.llm_endpoints.close()
        if self.llm_server is not None:
            self.llm_server.stop()
            self.llm_server = None
        if self.checkpointer is not None:
            close_checkpointer(self.checkpointer)

    @property
    def hub(self) -> EventHub:
        """Live events to customers' sockets and agents' consoles (through Redis with several replicas)."""
        return self.cluster.hub

    def _lock(self, conversation_id: str) -> AbstractContextManager[object]:
        """One turn or desk write of a conversation at a time, across replicas with Redis.

        Raises:
            TurnLockError: with Redis, the conversation stayed busy too long or Redis is unreachable (503).
        """
        return self.cluster.locks.hold(conversation_id)

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
        message_id: str | None = None,
    ) -> TurnResult:
        """Run one customer message through the graph and return the reply.

        With a ``message_id`` (the channel's id of the message) a retry is answered with the stored
        reply instead of a second turn. While a human agent owns the conversation the message is
        stored and passed to their console, and the reply is empty (``route`` is ``human``).

        A database that stays locked longer than ``db_busy_timeout_s`` (or cannot be opened) fails
        the turn with ``StorageUnavailableError`` and leaves the conversation as it was, or with the
        turn fully recorded: sending the same message again with the same ``message_id`` is safe
        either way, and gets the recorded reply if the turn got that far.

        Raises:
            InvalidInputError: empty or oversized text, or a malformed conversation or message id.
            NotFoundError: unknown customer, or a conversation that belongs to someone else.
            StorageUnavailableError: a database is locked or unavailable; retry the same message.
        """
        try:
            return self._chat(conversation_id, customer_id, text, channel=channel, lang=lang, message_id=message_id)
        except _STORAGE_ERRORS as exc:
            self._reset_checkpointer()
            reason = str(getattr(exc, "orig", None) or exc)
            log.warning("turn of %s refused: database unavailable (%s)", conversation_id, reason)
            raise StorageUnavailableError(
                f"the conversation database is unavailable ({reason}); nothing was lost: send the same message "
                "again, with the same message_id, in a moment",
                retry_after_s=min(5.0, self.settings.db_busy_timeout_s),
            ) from exc

    def _reset_checkpointer(self) -> None:
        """End a transaction a failed checkpoint write left open, so later reads see the database as it is."""
        saver = self.checkpointer
        if not isinstance(saver, SqliteSaver):  # PostgreSQL's pool rolls back a connection handed back broken
            return
        with saver.lock:
            if saver.conn.in_transaction:
                try:
                    saver.conn.rollback()
                except sqlite3.Error:
                    log.exception("could not roll back the checkpointer's transaction")

    def _chat(
        self,
        conversation_id: str,
        customer_id: str,
        text: str,
        *,
        channel: Channel,
        lang: Lang | None,
        message_id: str | None,
    ) -> TurnResult:
        text = text.strip()
        if not text:
            raise InvalidInputError("text is empty")
        if len(text) > self.settings.max_message_chars:
            raise InvalidInputError(f"text is longer than {self.settings.max_message_chars} characters")
        if message_id is not None and not _CONVERSATION_ID.match(message_id):
            raise InvalidInputError("message_id must be 1-64 characters of letters, digits and _.:-")
        started = time.perf_counter()
        with self._lock(conversation_id):
            self._check(conversation_id, customer_id)
            if message_id is not None:
                stored = self.desk.answered(conversation_id, message_id) or self._recorded_turn(
                    conversation_id, message_id, started
                )
                if stored is not None:
                    return self._restored(stored, replayed=True)
            insight = None
            if self.insights is not None:
                try:  # cached in Insights; without it no segment condition fires, the turn goes on
                    insight = self.insights.customer_insight(CustomerId(customer_id))
                except Exception:
                    log.exception("customer insight for %s unavailable; this turn runs without it", customer_id)
            context = SupportContext(
                customer_id=CustomerId(customer_id),
                conversation_id=ConversationId(conversation_id),
                channel=channel,
                store=self.store,
                lang=lang,
                vault=self.vault,
                knowledge=self.knowledge,
                insight=insight,
                variant=self.experiments.assign(CustomerId(customer_id)) if self.experiments is not None else None,
            )
            state = self._run({"inbound": text, "customer_id": customer_id}, conversation_id, context, message_id)
            raw = self._raw_result(conversation_id, state, started, message_id)
            if message_id is not None:
                self.desk.remember_answer(conversation_id, message_id, raw)
        elapsed = time.perf_counter() - started
        self.metrics.turns.labels(channel.value, raw["route"]).inc()
        self.metrics.turn_seconds.labels(channel.value).observe(elapsed)
        if raw["route"] == "human":
            handoff = self.desk.open_handoff_for(conversation_id)
            if handoff is not None:
                self.human_desk.customer_wrote(handoff, _last_customer_text(state))
            return self._restored(raw)
        self.metrics.intents.labels(raw["intent"], raw["stage"] or "none").inc()
        if raw["fallback"]:
            self.metrics.fallbacks.labels(_fallback_kind(raw["fallback"])).inc()
        result = self._restored(raw)
        self._audit(customer_id, state, result, channel, context.variant)
        if "escalate" in result.events:
            customer = self.store.get_customer(CustomerId(customer_id))
            if customer is not None:
                self.human_desk.escalated(conversation_id, customer, channel, state)
        elif result.state == "handoff":
            # Queued for a human: the bot holds the line, and the agents see what the customer adds.
            waiting = self.desk.open_handoff_for(conversation_id)
            if waiting is not None:
                self.human_desk.customer_wrote(waiting, _last_customer_text(state))
        return result

    def _recorded_turn(self, conversation_id: str, message_id: str, started: float) -> dict[str, Any] | None:
        """The result of a turn on ``message_id`` whose checkpoint was saved but whose answer was not stored.

        That happens when the process dies, or the store's database is locked, between the two
        writes; the retry then gets the recorded turn instead of running it a second time.
        """
        snapshot = self.graph.get_state(_config(conversation_id))
        if (snapshot.metadata or {}).get("message_id") != message_id:
            return None
        raw = self._raw_result(conversation_id, snapshot.values, started, message_id)
        self.desk.remember_answer(conversation_id, message_id, raw)
        return raw

    def _run(
        self, payload: dict[str, Any], conversation_id: str, context: SupportContext, message_id: str | None = None
    ) -> dict[str, Any]:
        """Run the graph, timing each node (updates arrive as each node finishes; the graph is sequential).

        The message id goes into the checkpoint's metadata, which ``_recorded_turn`` reads.
        """
        state: dict[str, Any] = {}
        mark = time.perf_counter()
        config = _config(conversation_id)
        if message_id is not None:
            config["metadata"] = {"message_id": message_id}
        for mode, chunk in self.graph.stream(
            payload, config, context=context, durability="exit", stream_mode=["updates", "values"]
        ):
            now = time.perf_counter()
            if mode == "updates" and isinstance(chunk, dict):
                for node in chunk:
                    self.metrics.node_seconds.labels(str(node)).observe(now - mark)
                mark = now
            elif mode == "values" and isinstance(chunk, dict):
                state = chunk
        return state

    def _raw_result(
        self, conversation_id: str, state: dict[str, Any], started: float, message_id: str | None
    ) -> dict[str, Any]:
        """The turn's result with placeholders still in (what the answered-message log may store)."""
        latency = round((time.perf_counter() - started) * 1000, 1)
        turn = _turn_messages(state["messages"])
        if state.get("human"):
            return {
                "conversation_id": conversation_id,
                "reply": "",
                "state": state.get("dialogue_state", "handoff"),
                "intent": "",
                "confidence": 0.0,
                "route": "human",
                "tools": [],
                "events": [],
                "llm_calls": 0,
                "stage": "",
                "emotion": state.get("emotion", "calm"),
                "fallback": f"a human agent ({state['human']}) owns the conversation",
                "latency_ms": latency,
                "sources": [],
                "message_id": message_id,
            }
        reply = next(m for m in reversed(turn) if isinstance(m, AIMessage) and not m.tool_calls)
        return {
            "conversation_id": conversation_id,
            "reply": reply.text,
            "state": state["dialogue_state"],
            "intent": state["intent"],
            "confidence": state["confidence"],
            "route": state.get("route", "rules"),
            "tools": [m.name or "" for m in turn if isinstance(m, ToolMessage)],
            "events": list(state.get("events", [])),
            "llm_calls": state.get("llm_calls", 0),
            "stage": state.get("stage", ""),
            "emotion": state.get("emotion", "calm"),
            "fallback": _fallback(state),
            "latency_ms": latency,
            "sources": list(state.get("sources", [])),
            "message_id": message_id,
        }

    def _restored(self, raw: dict[str, Any], *, replayed: bool = False) -> TurnResult:
        """The result as the customer sees it: placeholders replaced by their values (one vault read)."""
        vault = self.vault.entries(str(raw["conversation_id"]))
        return TurnResult(
            **{
                **raw,
                "reply": restore(str(raw["reply"]), vault),
                "sources": [{**source, "title": restore(str(source["title"]), vault)} for source in raw["sources"]],
                "replayed": replayed,
            }
        )

    # -- the desk's writes into a conversation ---------------------------------------------
    def state_values(self, conversation_id: str) -> dict[str, Any]:
        """The checkpointed (redacted) state of a conversation; empty if it is new."""
        values: dict[str, Any] = self.graph.get_state(_config(conversation_id)).values
        return values

    def write_desk_message(self, conversation_id: str, message: AIMessage, updates: dict[str, Any]) -> None:
        """Append a desk message (a notice, a human's reply) to the conversation and apply ``updates``."""
        with self._lock(conversation_id):
            self.graph.update_state(_config(conversation_id), {**updates, "messages": [message]}, as_node="guard")

    def write_human_message(self, conversation_id: str, agent_id: str, text: str) -> str:
        """Store a human agent's reply, redacted like the customer's words; returns the redacted text.

        The placeholders share the conversation's vault, so the bot, after a hand back, sees what
        the human said without seeing personal data.

        Raises:
            InvalidInputError: empty or oversized text.
        """
        text = text.strip()
        if not text:
            raise InvalidInputError("text is empty")
        if len(text) > self.settings.max_message_chars:
            raise InvalidInputError(f"text is longer than {self.settings.max_message_chars} characters")
        assert self.deps is not None
        values = self.state_values(conversation_id)
        lang = str(values.get("lang") or "zh")
        with self._lock(conversation_id):
            known = self.vault.entries(conversation_id)
            redaction = self.deps.redactor.redact(text, lang, known)
            new = {placeholder: value for placeholder, value in redaction.vault.items() if placeholder not in known}
            if new:
                self.vault.add(ConversationId(conversation_id), new)
            message = AIMessage(content=redaction.text, name=f"{HUMAN_PREFIX}{agent_id}")
            self.graph.update_state(_config(conversation_id), {"messages": [message]}, as_node="guard")
        return redaction.text

    def _audit(
        self, customer_id: str, state: dict[str, Any], result: TurnResult, channel: Channel, variant: str | None
    ) -> None:
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
                channel=channel.value,
                lang=str(state.get("lang") or "") or None,
                # Only what the dashboard's unanswered questions and drift proposals read is kept: the
                # fewer copies of customers' words, the fewer places a name NER missed can sit.
                question=(_last_customer_text(state)[:4000] or None) if _unanswered(result, policy) else None,
                variant=variant,
            )
        )

    def next_best_action(
        self, customer_id: str, context: str | None = None, lang: Lang | None = None
    ) -> NextBestAction:
        """What the shop should do next for a customer, from the profile, order history and product graph.

        The churn and repurchase scores join in once ``kefu insights train`` has made the models.

        Raises:
            NotFoundError: unknown customer.
            BackendError: the knowledge base is not available.
        """
        if self.knowledge is None:
            raise BackendError("the knowledge base is not available; see the server log")
        insight = self.insights.customer_insight(CustomerId(customer_id)) if self.insights is not None else None
        return self.knowledge.next_best_action(
            self.store, CustomerId(customer_id), context=context, lang=lang, insight=insight
        )

    def audit(self, conversation_id: str, customer_id: str) -> list[TurnAudit]:
        """How every turn of a conversation was decided, oldest first."""
        self._check(conversation_id, customer_id)
        # Audits outlive checkpoints (and seeded history has none): only the customer's own turns.
        return [a for a in self.store.turn_audits(ConversationId(conversation_id)) if a.customer_id == customer_id]

    def rate(self, conversation_id: str, customer_id: str, rating: int) -> None:
        """Store the customer's satisfaction rating (1 bad to 5 good) of their conversation; a new one replaces it.

        Raises:
            InvalidInputError: a malformed conversation id, or a rating outside 1-5.
            NotFoundError: an unknown customer, or no conversation of theirs with this id (another
                customer's reads the same, so ids do not leak).
        """
        self._check(conversation_id, customer_id)
        self.store.rate_conversation(ConversationId(conversation_id), CustomerId(customer_id), rating)

    def history(self, conversation_id: str, customer_id: str) -> tuple[str | None, list[HistoryEntry]]:
        """The dialogue state and the visible messages of a conversation (empty if it is new)."""
        values = self._check(conversation_id, customer_id)
        vault = self.vault.entries(conversation_id)
        names = {agent.id: agent.name for agent in self.desk.list_agents()}
        entries: list[HistoryEntry] = []
        for message in values.get("messages", []):
            role = message_role(message)
            if role is None:
                continue
            agent = names.get((message.name or "")[len(HUMAN_PREFIX) :]) if role == "human" else None
            entries.append(HistoryEntry(role=role, text=restore(message.text, vault), agent=agent))
        return values.get("dialogue_state"), entries


def _limit_busy_wait(engine: Engine, seconds: float) -> None:
    """Make every SQLite connection of ``engine`` wait at most ``seconds`` for a lock, then fail."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={round(seconds * 1000)}")
        cursor.close()

    engine.dispose()  # connections opened before the listener get it when they are opened again


def _open_knowledge(settings: Settings, store: SqlStore) -> KnowledgeBase | None:
    """Open the knowledge base, ingesting the configured documents; None (logged) if it cannot open.

    Raises:
        ConfigError: a malformed ``chroma_url`` (a setting to fix, not a server to wait for).
    """
    docs = [DEMO_DOCS] if settings.kb_docs is None else settings.kb_docs
    try:
        return KnowledgeBase.open(
            settings.kb_path,
            store.list_products(),
            doc_paths=docs,
            triples=settings.kb_triples or DEMO_TRIPLES,
            chroma_url=settings.chroma_url,
        )
    except ConfigError:
        raise
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


_FALLBACK_KINDS = ("handoff", "unsure", "LLM down", "offered a human", "LLM reply", "knowledge", "a human agent")


def _fallback_kind(fallback: str) -> str:
    """A bounded label for the fallback metric."""
    return next((kind for kind in _FALLBACK_KINDS if fallback.startswith(kind)), "other").lower().replace(" ", "_")


def _unanswered(result: TurnResult, policy: Policy) -> bool:
    """A turn the bot could not answer, by the dashboard's own test (``insights.questions.unanswered``)."""
    kind = fallback_kind(result.fallback)
    return unanswered_reason(result.intent, kind, result.confidence, policy.unsure_below) is not None


def _last_customer_text(state: dict[str, Any]) -> str:
    return next((m.text for m in reversed(state.get("messages", [])) if isinstance(m, HumanMessage)), "")


def _config(conversation_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": conversation_id}}


def _turn_messages(messages: list[Any]) -> list[Any]:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return messages[index + 1 :]
    return messages
