"""Kefu as a cluster on loopback: PostgreSQL, Redis, a fake LLM, API replicas behind nginx; three scenarios.

``Cluster`` starts, all on ``127.0.0.1`` and in temporary folders: a durable PostgreSQL, Redis
(``evals.localservers``), the fake LLM as a process of its own (``python -m evals.fake_llm``),
N ``kefu serve`` replicas and nginx balancing over them. The replicas share the database, Redis,
the vault key and the signing secret; each has its own data directory (a copy of one knowledge
base) and ``KEFU_REPLICA_ID``. The store is prepared once against PostgreSQL, as an operator
would (``kefu seed``, ``kefu keys create``, ``kefu agents add``). A replica can be SIGKILLed and
started again.

``failover``
    ``--conversations`` customers chat over WebSockets through nginx, each sending ``--turns``
    messages one after another, every message with its own id. Once ``--kill-at`` of all turns
    are answered, one replica is SIGKILLed (nginx spread the sockets, so it holds about a
    third of them). A client whose socket drops
    reconnects through nginx (to a live replica) and sends its unanswered message again with the
    same id. A message is acknowledged when its ``reply`` arrives. Then every conversation's history
    (``GET /v1/conversations/{id}`` through nginx) must hold each acknowledged message exactly once,
    in send order, each followed by a bot reply: lost and duplicated must be 0. Recovery time is
    from the kill to the first answered turn of each conversation that was on the killed replica;
    under this load it is mostly the wait for a worker, which the turn latency after the kill shows.
    The replica is then started again and must answer a turn.
``handoff``
    An agent console logged in on replica A (its own port), a customer socket on replica B: the
    customer asks for a human, A's console sees the queue event, takes the conversation and
    replies; the customer on B must receive the reply, and A's console the customer's next message.
``throughput``
    The same load (``--load-conversations`` × ``--load-turns``, all sending at once) through
    nginx over 1, 2 and 3 replicas: turns per second and turn latency side by side. All replicas
    run on the same cores as the servers and the clients, so on a small machine the gain is
    sublinear: one replica runs its Python mostly on one core (the GIL), more than one per core only
    adds contention.

``all`` runs throughput first (on an untouched cluster), then handoff, then failover. It is an
eval, not a test: ``tests/cluster/test_cluster.py`` runs failover and handoff at test size.

    python -m evals.cluster all --out evals/results/cluster.json
    python -m evals.cluster failover --conversations 200 --turns 6
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException

from core.vault import generate_key
from evals.harness import BENCH_AGENT, KefuServer, machine, percentiles, run_kefu
from evals.localservers import NginxServer, PostgresServer, RedisServer, missing
from evals.reliability import TEXTS, FakeLlmProcess
from evals.ws_bench import (
    CONSOLE_COOKIE,
    HUMAN,
    Customer,
    _connect,
    _next_frame,
    _session_tokens,
    load_customers,
    raise_open_file_limit,
    run_bench,
)

__all__ = ["Cluster", "HistoryCheck", "check_history", "failover", "handoff", "main", "passed", "throughput"]

SCENARIOS: Final = ("failover", "handoff", "throughput")
RETRYABLE: Final = frozenset({408, 409, 423, 425, 429, 500, 502, 503, 504})
"""Statuses of an ``error`` frame after which the same message is sent again (busy, locked, unavailable)."""
AGENT_TEXT: Final = "Hello, this is the desk: I am looking at your order now."
FOLLOW_UP: Final = "Thank you, I will wait."


# -- the cluster -------------------------------------------------------------------------------------
class Cluster:
    """PostgreSQL, Redis, the fake LLM, ``replicas`` API processes and nginx, all on loopback.

    Example:
        with Cluster(3) as cluster:
            cluster.url            # nginx, in front of every replica
            cluster.kill(0)        # SIGKILL replica 0
            cluster.restart(0)     # and start it again on its port
    """

    def __init__(
        self,
        replicas: int = 3,
        *,
        workdir: Path | None = None,
        kb_template: Path | None = None,
        intents_dir: Path | None = None,
        turn_lock_ttl_s: float | None = None,
        durable: bool = True,
        extra_env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 600.0,
    ) -> None:
        """Describe the cluster; ``start`` (or ``with``) starts it.

        Args:
            replicas: API processes behind nginx.
            workdir: Where the replicas' data directories go; a temporary folder (deleted on
                ``stop``) when None.
            kb_template: A knowledge base folder (``data_dir/kb``) each replica gets a copy of; when
                None, the first replica builds one on its first start and the others get copies.
            intents_dir: An intent model root holding a model (``IntentModel.save``) every replica
                loads (``KEFU_INTENT_MODEL_DIR``); when None, the first replica trains one into the
                work folder.
            turn_lock_ttl_s: ``KEFU_TURN_LOCK_TTL_S``, how soon a dead replica's turn lock expires;
                None keeps the product's default.
            durable: PostgreSQL with fsync and synchronous commit (False: faster, for tests only).
            extra_env: More ``KEFU_*`` variables for every replica.
            ready_timeout_s: How long a replica may take to answer ``/readyz``.

        Raises:
            ValueError: fewer than one replica.
        """
        if replicas < 1:
            raise ValueError("a cluster needs at least one replica")
        self.size = replicas
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.gettempdir()) / f"kefu-cluster-{secrets.token_hex(4)}"
        self.kb_template = kb_template
        self._train_intents = intents_dir is None
        self.intents_dir = intents_dir or self.workdir / "intents"
        self.turn_lock_ttl_s = turn_lock_ttl_s
        self.durable = durable
        self.extra_env = dict(extra_env or {})
        self.ready_timeout_s = ready_timeout_s
        self.vault_key = generate_key()
        self.secret_key = secrets.token_urlsafe(48)
        self.api_key = ""
        self.agent_password = secrets.token_urlsafe(12)
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.llm: FakeLlmProcess | None = None
        self.replicas: list[KefuServer] = []
        self.nginx: NginxServer | None = None
        self._balancers: list[NginxServer] = []
        self._threads: list[threading.Thread] = []
        self.timings: dict[str, float] = {}
        """Seconds each start-up phase took: services, preparation, first replica, the others."""
        self._since = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Self:
        """Start every server, prepare the store once, start the replicas and nginx; all or nothing.

        Raises:
            RuntimeError: PostgreSQL, Redis or nginx is not installed, or one of them did not start.
            SystemExit: a ``kefu`` command or a replica failed (its log is named).
        """
        absent = missing()
        if absent:
            raise RuntimeError(f"the cluster needs {', '.join(absent)} (make services, or apt-get install them)")
        raise_open_file_limit()  # the servers inherit it: hundreds of sockets each
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._since = time.monotonic()
        try:
            self.postgres, self.redis, self.llm = PostgresServer(durable=self.durable), RedisServer(), FakeLlmProcess()
            _in_parallel([self.postgres.start, self.redis.start, self.llm.start], started=self._threads)
            self._lap("services_s")
            self.replicas = [
                KefuServer(
                    self.workdir / f"replica-{index}",
                    llm_base_url=self.llm.base_url,
                    extra_env=self._env(index),
                    ready_timeout_s=self.ready_timeout_s,
                )
                for index in range(self.size)
            ]
            self._prepare(self.replicas[0].env)
            self._lap("prepare_s")
            for replica in self.replicas:
                replica.api_key = self.api_key
                if self.kb_template is not None:
                    shutil.copytree(self.kb_template, replica.data_dir / "kb")
            first, *rest = self.replicas
            if self.kb_template is None:
                # The first start builds the knowledge base; the others get copies of it, taken while
                # that replica is stopped so nothing in it is half-written.
                first.start()
                first.stop()
                for replica in rest:
                    shutil.copytree(first.data_dir / "kb", replica.data_dir / "kb")
            elif self._train_intents:
                first.start()  # trains the intent model the others then load
            self._lap("first_replica_s")
            _in_parallel([r.start for r in self.replicas if r.process is None], started=self._threads)
            self.nginx = NginxServer([replica.port for replica in self.replicas]).start()
            self._lap("replicas_s")
        except BaseException:
            self.stop()
            raise
        return self

    def _lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round(now - self._since, 1)
        self._since = now

    def _prepare(self, env: Mapping[str, str]) -> None:
        """Seed the store, create the API key and the console account, open the vault: once, in PostgreSQL."""
        environment = {**env, "KEFU_AGENT_PASSWORD": self.agent_password}
        run_kefu(environment, "seed")
        printed: list[str] = []
        key_command = ("keys", "create", "--name", "cluster", "--channel", "app")
        agent_command = ("agents", "add", BENCH_AGENT, "--name", "Bench Lead", "--role", "lead")
        _in_parallel(
            [
                lambda: printed.append(run_kefu(environment, *key_command)),
                lambda: run_kefu(environment, *agent_command),
                # Opening the vault once stores its key check, which replicas starting together would race to do.
                lambda: run_kefu(environment, "vault", "status"),
            ],
            started=self._threads,
        )
        key = re.search(r"^kf_\S+$", printed[0], re.MULTILINE)
        if key is None:
            raise SystemExit(f"`kefu keys create` printed no key:\n{printed[0]}")
        self.api_key = key.group(0)

    def _env(self, index: int) -> dict[str, str]:
        assert self.postgres is not None and self.redis is not None and self.llm is not None
        return {
            "KEFU_DATABASE_URL": self.postgres.url(),
            "KEFU_REDIS_URL": self.redis.url,
            "KEFU_LLM_BASE_URLS": json.dumps([self.llm.base_url]),
            "KEFU_VAULT_KEY": self.vault_key,
            "KEFU_SECRET_KEY": self.secret_key,
            "KEFU_REPLICA_ID": f"replica-{index}",
            "KEFU_INTENT_MODEL_DIR": str(self.intents_dir),
            **({"KEFU_TURN_LOCK_TTL_S": str(self.turn_lock_ttl_s)} if self.turn_lock_ttl_s is not None else {}),
            **self.extra_env,
        }

    def stop(self) -> None:
        """Stop everything that runs (nginx, replicas, the fake LLM, Redis, PostgreSQL); never raises."""
        for balancer in [*self._balancers, self.nginx]:
            if balancer is not None:
                with contextlib.suppress(Exception):
                    balancer.stop()
        self._balancers, self.nginx = [], None
        self._stop_replicas()
        # A start interrupted while its threads run: a replica's start ends as soon as its process is
        # stopped; wait for them, then stop whatever they launched in the meantime.
        for thread in self._threads:
            thread.join(60)
        self._threads = []
        self._stop_replicas()
        if self.llm is not None:
            with contextlib.suppress(Exception):
                self.llm.kill()
        for server in (self.redis, self.postgres):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        self.llm = self.redis = self.postgres = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_replicas(self) -> None:
        _in_parallel([lambda replica=replica: replica.stop(grace_s=15) for replica in self.replicas], raise_=False)

    def __enter__(self) -> Self:
        """Start the cluster."""
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        """Stop the cluster."""
        self.stop()

    # -- replicas ----------------------------------------------------------------------------------
    def kill(self, index: int) -> None:
        """SIGKILL replica ``index`` (its whole process group at once: no shutdown code runs)."""
        self.replicas[index].kill()

    def restart(self, index: int) -> float:
        """Start replica ``index`` again on its port and data; the seconds until it answered ``/readyz``."""
        started = time.monotonic()
        self.replicas[index].start()
        return time.monotonic() - started

    def alive(self) -> list[int]:
        """The replicas whose process runs."""
        return [i for i, r in enumerate(self.replicas) if r.process is not None and r.process.poll() is None]

    def balancer(self, indexes: Iterable[int]) -> NginxServer:
        """Another nginx in front of some replicas only (stopped with the cluster, or by the caller)."""
        server = NginxServer([self.replicas[i].port for i in indexes]).start()
        self._balancers.append(server)
        return server

    # -- for clients -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL of nginx, in front of every replica.

        Raises:
            RuntimeError: the cluster is not running.
        """
        if self.nginx is None:
            raise RuntimeError("the cluster is not running")
        return self.nginx.url

    @property
    def agent(self) -> tuple[str, str]:
        """The console login every cluster gets (a ``lead``): user name and password."""
        return BENCH_AGENT, self.agent_password

    def customers(self) -> list[Customer]:
        """The seeded customers, in id order (read from the replicas' database).

        Raises:
            RuntimeError: the cluster is not running, or its store has no customers.
        """
        if not self.replicas:
            raise RuntimeError("the cluster is not running")
        customers = load_customers(self.replicas[0].env["KEFU_DATABASE_URL"])
        if not customers:
            raise RuntimeError("the store has no customers: was `kefu seed` run?")
        return customers

    def log_tail(self, index: int, lines: int = 40) -> str:
        """The last ``lines`` lines of replica ``index``'s log."""
        path = self.replicas[index].log_path
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _in_parallel(calls: Sequence[Any], *, raise_: bool = True, started: list[threading.Thread] | None = None) -> None:
    """Run blocking calls in threads; with ``raise_``, re-raise the first failure once all have ended.

    The threads are added to ``started`` first, so a caller interrupted while waiting (SIGTERM,
    Ctrl-C) can still wait for them before cleaning up what they started.
    """
    failures: list[BaseException] = []

    def run(call: Any) -> None:
        try:
            call()
        except BaseException as exc:  # SystemExit from KefuServer included
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(call,), daemon=True) for call in calls]
    if started is not None:
        started.extend(threads)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures and raise_:
        raise failures[0]


# -- failover ----------------------------------------------------------------------------------------
class _Refused(Exception):
    """The server answered a message with an ``error`` frame."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"error frame {status}: {detail}")
        self.status = status


@dataclass
class _Talk:
    """One customer's conversation in the failover run."""

    id: str
    customer: str
    url: str
    """The WebSocket URL through nginx, session token included."""
    texts: list[str]
    acked: int = 0
    """Messages answered: always the first ``acked`` of ``texts``."""
    sent: int = 0
    """Messages sent at least once."""
    retried: int = 0
    """Messages that needed more than one send."""
    failed_sends: int = 0
    """Sends that got no reply: the socket dropped, an error frame, a timeout."""
    reconnects: int = 0
    dropped_at: float | None = None
    """When its socket first dropped after the kill (it was on the killed replica)."""
    reconnected_at: float | None = None
    """When its socket was open again after that drop."""
    recovered_at: float | None = None
    """When its first turn after that drop was answered."""
    errors: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """What the failover clients share."""

    deadline: float
    turn_timeout_s: float
    total: int
    kill_at: float
    gate: asyncio.Semaphore
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    acked: int = 0
    killed_at: float | None = None
    turn_ms: list[float] = field(default_factory=list)
    turn_ms_after_kill: list[float] = field(default_factory=list)

    def answered(self, elapsed_ms: float) -> None:
        self.acked += 1
        self.turn_ms.append(elapsed_ms)
        if self.killed_at is not None:
            self.turn_ms_after_kill.append(elapsed_ms)
        if self.acked >= self.kill_at * self.total:
            self.enough.set()


async def _answer(ws: ClientConnection, message_id: str) -> dict[str, Any]:
    """Frames until the ``reply`` to ``message_id``.

    Raises:
        _Refused: an ``error`` frame for this message.
    """
    while True:
        frame = await _next_frame(ws)
        if frame.get("type") == "error" and frame.get("id") in (message_id, None):
            raise _Refused(int(frame.get("status") or 0), str(frame.get("detail")))
        if frame.get("type") == "reply" and frame.get("id") == message_id:
            return frame


async def _open(talk: _Talk, run: _Run) -> ClientConnection | None:
    """A socket through nginx, retried until the deadline (a replica may just have died)."""
    delay, last = 0.1, "no attempt"
    while time.monotonic() < run.deadline:
        try:
            async with run.gate:
                return await _connect(talk.url, timeout_s=30)
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(delay)
        delay = min(2.0, delay * 2)
    talk.errors.append(f"{talk.id}: could not connect before the deadline ({last})")
    return None


async def _talk(talk: _Talk, run: _Run) -> None:
    """Send every message after the previous reply; on a dropped socket reconnect and send it again, same id."""
    ws: ClientConnection | None = None
    connected = False
    try:
        for index, text in enumerate(talk.texts):
            message_id = f"{talk.id}-m{index}"
            frame = json.dumps({"type": "message", "id": message_id, "text": text, "lang": "en"})
            attempts = 0
            while True:
                if time.monotonic() > run.deadline:
                    talk.errors.append(f"{message_id}: not answered before the deadline")
                    return
                if ws is None:
                    ws = await _open(talk, run)
                    if ws is None:
                        return
                    talk.reconnects += connected
                    connected = True
                    if talk.dropped_at is not None and talk.reconnected_at is None:
                        talk.reconnected_at = time.monotonic()
                if not attempts:
                    started = time.perf_counter()  # the turn's latency counts from its first send
                attempts += 1
                talk.sent = max(talk.sent, index + 1)
                try:
                    await ws.send(frame)
                    await asyncio.wait_for(_answer(ws, message_id), run.turn_timeout_s)
                except _Refused as exc:
                    talk.failed_sends += 1
                    if exc.status not in RETRYABLE:
                        talk.errors.append(f"{message_id}: {exc}")
                        return
                    await asyncio.sleep(0.5)
                    continue
                except (OSError, TimeoutError, WebSocketException, ValueError):  # dropped, or no answer in time
                    talk.failed_sends += 1
                    if run.killed_at is not None and talk.dropped_at is None:
                        talk.dropped_at = time.monotonic()
                    with contextlib.suppress(Exception):
                        await ws.close()
                    ws = None
                    await asyncio.sleep(random.uniform(0.05, 0.3))
                    continue
                break
            run.answered((time.perf_counter() - started) * 1000)
            talk.acked += 1
            if attempts > 1:
                talk.retried += 1
            if talk.dropped_at is not None and talk.recovered_at is None:
                talk.recovered_at = time.monotonic()
    finally:
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


@dataclass(frozen=True)
class HistoryCheck:
    """One conversation's stored history against what its client sent and had answered."""

    lost: int
    """Answered messages missing from the history."""
    duplicated: int
    """Customer messages stored more often than they were sent."""
    in_order: bool
    """The stored customer messages are the sent ones, in send order (the answered ones at least)."""
    paired: bool
    """Each answered message is followed by one bot reply before the next message."""
    unacknowledged_stored: int
    """Messages stored whose reply never reached the client (not lost: the client gave up on them)."""

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated, reordered or unanswered in the history."""
        return self.lost == self.duplicated == 0 and self.in_order and self.paired


def check_history(entries: Sequence[Mapping[str, Any]], sent: Sequence[str], answered: int) -> HistoryCheck:
    """Judge a history (``GET /v1/conversations/{id}``'s ``messages``) against what a client sent.

    Args:
        entries: The stored messages, oldest first, each with ``role`` and ``text``.
        sent: The texts the client sent, in order, each at least once (possibly several times, same id).
        answered: How many of ``sent`` got their reply: always the first ones (each message waits for
            the previous reply).

    Returns:
        Counts of lost and duplicated messages, and whether order and pairing hold.
    """
    said = [str(e["text"]) for e in entries if e["role"] == "customer"]
    acked = list(sent[:answered])
    lost = sum((Counter(acked) - Counter(said)).values())
    duplicated = sum((Counter(said) - Counter(sent)).values())
    in_order = said[:answered] == acked and said == list(sent[: len(said)])
    roles = [e["role"] for e in entries if e["role"] in ("customer", "agent")]
    paired = roles[: 2 * answered] == ["customer", "agent"] * answered
    return HistoryCheck(lost, duplicated, in_order, paired, max(0, len(said) - answered))


async def failover(
    cluster: Cluster,
    *,
    conversations: int = 200,
    turns: int = 6,
    kill_at: float = 1 / 3,
    victim: int | None = None,
    restart: bool = True,
    turn_timeout_s: float = 300.0,
    deadline_s: float = 1800.0,
    seed: int = 9,
) -> dict[str, Any]:
    """Chat through nginx, SIGKILL a replica mid-run, then check every conversation's history.

    Args:
        cluster: A running cluster of at least two replicas.
        conversations: Customers chatting at once over WebSockets.
        turns: Messages each sends, each after the previous one's reply.
        kill_at: The share of all turns answered when the replica is killed.
        victim: The replica to kill; None picks the first one running (nginx spreads the sockets evenly).
        restart: Start the killed replica again afterwards and have it answer a turn.
        turn_timeout_s: A sent message not answered within this long is sent again.
        deadline_s: Clients give up on what is not answered by then.
        seed: Of the random choice of each conversation's messages.

    Returns:
        Counts, recovery times and ``passed``.

    Raises:
        ValueError: fewer than two replicas are running.
    """
    if len(cluster.alive()) < 2:
        raise ValueError("failover needs at least two running replicas")
    rng = random.Random(seed)
    run_id = secrets.token_hex(3)
    customers = cluster.customers()
    english = [c for c in customers if c.lang == "en"] or customers
    ws_base = "ws" + cluster.url.removeprefix("http")
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=cluster.url, timeout=60, limits=limits) as http:
        plan = [(f"fo-{run_id}-{n:04d}", english[n % len(english)]) for n in range(conversations)]
        tokens = await _session_tokens(http, cluster.api_key, {c.id for _, c in plan})
        talks = [
            _Talk(
                id=cid,
                customer=customer.id,
                url=f"{ws_base}/v1/conversations/{cid}/ws?token={tokens[customer.id]}",
                texts=_texts(rng, turns),
            )
            for cid, customer in plan
        ]
        run = _Run(
            deadline=time.monotonic() + deadline_s,
            turn_timeout_s=turn_timeout_s,
            total=conversations * turns,
            kill_at=kill_at,
            gate=asyncio.Semaphore(50),
        )
        started = time.monotonic()
        everyone: asyncio.Future[Any] = asyncio.gather(*(_talk(talk, run) for talk in talks))
        waiting: asyncio.Future[Any] = asyncio.ensure_future(run.enough.wait())
        await asyncio.wait([waiting, everyone], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        chosen = victim if victim is not None else cluster.alive()[0]
        acked_before_kill = run.acked
        run.killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, chosen)
        await everyone
        seconds = time.monotonic() - started
        verdicts = await _histories(http, cluster.api_key, talks)
        restart_s, restarted_answers = None, None
        if restart:
            restart_s = await asyncio.to_thread(cluster.restart, chosen)
            restarted_answers = await _one_turn(http, cluster.replicas[chosen].port, tokens[english[0].id], run_id)
    killed_at = run.killed_at
    affected = [t for t in talks if t.dropped_at is not None]
    recovery = [t.recovered_at - killed_at for t in affected if t.recovered_at is not None]
    reconnect = [t.reconnected_at - killed_at for t in affected if t.reconnected_at is not None]
    errors = [e for t in talks for e in t.errors] + [e for e in verdicts if isinstance(e, str)]
    checked = [v for v in verdicts if isinstance(v, HistoryCheck)]
    result: dict[str, Any] = {
        "replicas": len(cluster.replicas),
        "conversations": conversations,
        "turns": turns,
        "messages": conversations * turns,
        "acknowledged": sum(t.acked for t in talks),
        "acknowledged_before_kill": acked_before_kill,
        "killed_replica": chosen,
        "conversations_on_killed_replica": len(affected),
        "recovered": len(recovery),
        "recovery_s": _p50_max(recovery),
        "reconnect_s": _p50_max(reconnect),
        "failed_sends": sum(t.failed_sends for t in talks),
        "retried_messages": sum(t.retried for t in talks),
        "reconnects": sum(t.reconnects for t in talks),
        "lost": sum(v.lost for v in checked),
        "duplicated": sum(v.duplicated for v in checked),
        "out_of_order": sum(1 for v in checked if not v.in_order),
        "unpaired": sum(1 for v in checked if not v.paired),
        "unacknowledged_stored": sum(v.unacknowledged_stored for v in checked),
        "turns_per_s": round(run.acked / seconds, 2) if seconds else 0.0,
        "turn_ms": percentiles(run.turn_ms, (0.5, 0.99)),
        "turn_ms_after_kill": percentiles(run.turn_ms_after_kill, (0.5, 0.99)),
        "seconds": round(seconds, 1),
        "restart_s": None if restart_s is None else round(restart_s, 1),
        "restarted_replica_answers": restarted_answers,
        "errors": errors[:20],
    }
    result["passed"] = (
        result["acknowledged"] == result["messages"]
        and result["lost"] == result["duplicated"] == result["out_of_order"] == result["unpaired"] == 0
        and len(checked) == conversations
        and 0 < result["recovered"] == len(affected)  # some conversations were on it, all went on elsewhere
        and restarted_answers is not False
        and not errors
    )
    return result


def _texts(rng: random.Random, turns: int) -> list[str]:
    """Distinct messages for one conversation (numbered once the shipped ones run out)."""
    if turns <= len(TEXTS):
        return rng.sample(TEXTS, turns)
    return [f"{TEXTS[i % len(TEXTS)]} ({i + 1})" for i in range(turns)]


def _p50_max(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "max": None}
    return {"p50": round(ordered[(len(ordered) - 1) // 2], 2), "max": round(ordered[-1], 2)}


async def _histories(http: httpx.AsyncClient, api_key: str, talks: Sequence[_Talk]) -> list[HistoryCheck | str]:
    """Each conversation's history through nginx, judged; a string for one that could not be read."""
    gate = asyncio.Semaphore(20)

    async def one(talk: _Talk) -> HistoryCheck | str:
        async with gate:
            for attempt in range(5):
                try:
                    response = await http.get(
                        f"/v1/conversations/{talk.id}",
                        params={"customer_id": talk.customer},
                        headers={"Authorization": f"Bearer {api_key}"},
                    )
                except httpx.TransportError as exc:
                    problem = f"{talk.id}: history: {type(exc).__name__}"
                else:
                    if response.status_code == 200:
                        return check_history(response.json()["messages"], talk.texts[: talk.sent], talk.acked)
                    problem = f"{talk.id}: history: HTTP {response.status_code} {response.text[:200]}"
                await asyncio.sleep(0.5 * (attempt + 1))
            return problem

    return list(await asyncio.gather(*(one(talk) for talk in talks)))


async def _one_turn(http: httpx.AsyncClient, port: int, token: str, run_id: str) -> bool:
    """Whether the replica on ``port`` answers one message on a socket of its own."""
    url = f"ws://127.0.0.1:{port}/v1/conversations/fo-{run_id}-restarted/ws?token={token}"
    try:
        async with await _connect(url, timeout_s=30) as ws:
            await ws.send(json.dumps({"type": "message", "id": "after-restart", "text": TEXTS[1], "lang": "en"}))
            await asyncio.wait_for(_answer(ws, "after-restart"), 120)
    except (OSError, TimeoutError, WebSocketException, ValueError, _Refused):
        return False
    return True


# -- handoff across replicas --------------------------------------------------------------------------
async def handoff(
    cluster: Cluster, *, console_replica: int = 0, customer_replica: int = 1, timeout_s: float = 60.0
) -> dict[str, Any]:
    """A console on one replica takes over and answers a customer connected to another.

    Args:
        cluster: A running cluster.
        console_replica: Where the agent logs in and holds the console socket (its own port).
        customer_replica: Where the customer's socket is (its own port).
        timeout_s: How long each step may take.

    Returns:
        What was seen, with timings in ms from the customer's "I want a human", and ``passed``.
    """
    a, b = cluster.replicas[console_replica], cluster.replicas[customer_replica]
    customers = cluster.customers()
    customer = next((c for c in customers if c.lang == "en"), customers[0])
    conversation_id = f"handoff-{secrets.token_hex(3)}"
    result: dict[str, Any] = {
        "console_replica": console_replica,
        "customer_replica": customer_replica,
        "conversation_id": conversation_id,
        "handoff_id": None,
        "queue_ms": None,
        "joined_ms": None,
        "agent_reply_ms": None,
        "customer_message_ms": None,
        "agent_seen_by_customer": None,
        "error": None,
    }
    frames: list[dict[str, Any]] = []
    arrived = asyncio.Condition()

    async def seen(match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first console frame ``match`` accepts, waiting for it."""
        async with arrived:
            await asyncio.wait_for(arrived.wait_for(lambda: any(match(f) for f in frames)), timeout_s)
        return next(f for f in frames if match(f))

    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=timeout_s) as agent_http,
        httpx.AsyncClient(base_url=b.base_url, timeout=timeout_s) as customer_http,
    ):
        listener: asyncio.Task[None] | None = None
        console: ClientConnection | None = None
        try:
            login = await agent_http.post(
                "/v1/console/login", json={"username": cluster.agent[0], "password": cluster.agent[1]}
            )
            login.raise_for_status()
            cookie = f"{CONSOLE_COOKIE}={login.cookies[CONSOLE_COOKIE]}"
            console = await _connect(f"ws://127.0.0.1:{a.port}/v1/console/ws", timeout_s=timeout_s, cookie=cookie)

            async def listen(console: ClientConnection) -> None:
                while True:
                    frame = await _next_frame(console)
                    async with arrived:
                        frames.append({**frame, "_at": time.perf_counter()})
                        arrived.notify_all()

            listener = asyncio.create_task(listen(console))
            token = (await _session_tokens(customer_http, cluster.api_key, {customer.id}))[customer.id]
            url = f"ws://127.0.0.1:{b.port}/v1/conversations/{conversation_id}/ws?token={token}"
            async with await _connect(url, timeout_s=timeout_s) as ws:
                started = time.perf_counter()
                await ws.send(json.dumps({"type": "message", "id": "human", "text": HUMAN["en"], "lang": "en"}))
                reply = await asyncio.wait_for(_answer(ws, "human"), timeout_s)
                if reply.get("state") != "handoff":
                    raise RuntimeError(f"the conversation went to {reply.get('state')!r}, not handoff")
                queued = await seen(
                    lambda f: (
                        f.get("type") == "queue"
                        and any(i.get("conversation_id") == conversation_id for i in f.get("items") or [])
                    )
                )
                item = next(i for i in queued["items"] if i["conversation_id"] == conversation_id)
                result["handoff_id"] = handoff_id = int(item["id"])
                result["queue_ms"] = round((queued["_at"] - started) * 1000, 1)
                (await agent_http.post(f"/v1/console/handoffs/{handoff_id}/take")).raise_for_status()
                joined = await _event(ws, "human_joined", timeout_s)
                result["joined_ms"] = round((time.perf_counter() - started) * 1000, 1)
                await console.send(json.dumps({"type": "reply", "handoff_id": handoff_id, "text": AGENT_TEXT}))
                answer = await _event(ws, "human_message", timeout_s)
                result["agent_reply_ms"] = round((time.perf_counter() - started) * 1000, 1)
                if answer.get("text") != AGENT_TEXT:
                    raise RuntimeError(f"the customer got {answer.get('text')!r}, not the agent's reply")
                await ws.send(json.dumps({"type": "message", "id": "follow-up", "text": FOLLOW_UP, "lang": "en"}))
                message = await seen(
                    lambda f: f.get("type") == "customer_message" and f.get("handoff_id") == handoff_id
                )
                result["customer_message_ms"] = round((message["_at"] - started) * 1000, 1)
                result["agent_seen_by_customer"] = joined.get("agent")
        except (OSError, TimeoutError, WebSocketException, ValueError, RuntimeError, KeyError, httpx.HTTPError) as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listener
            if console is not None:
                with contextlib.suppress(Exception):
                    await console.close()
    result["console_events"] = [f"{f.get('type')}:{f.get('handoff_id', '')}" for f in frames]
    result["passed"] = result["error"] is None and result["customer_message_ms"] is not None
    return result


async def _event(ws: ClientConnection, kind: str, timeout_s: float) -> dict[str, Any]:
    """The next frame of type ``kind`` on a customer socket."""

    async def wait() -> dict[str, Any]:
        while True:
            frame = await _next_frame(ws)
            if frame.get("type") == kind:
                return frame

    return await asyncio.wait_for(wait(), timeout_s)


# -- throughput ---------------------------------------------------------------------------------------
def throughput(
    cluster: Cluster,
    *,
    replica_counts: Sequence[int] = (1, 2, 3),
    conversations: int = 200,
    turns: int = 5,
    turn_timeout_s: float = 900.0,
) -> list[dict[str, Any]]:
    """The same load through nginx over the first 1, 2, 3… replicas: turns/s and turn latency.

    Every replica answers a few turns first (the first turns load models lazily); each count
    gets its own nginx in front of that many replicas, the others idle.

    Returns:
        One row per replica count.

    Raises:
        ValueError: a count larger than the running cluster.
    """
    if max(replica_counts) > len(cluster.alive()):
        raise ValueError(f"the cluster runs {len(cluster.alive())} replicas, not {max(replica_counts)}")
    customers = cluster.customers()
    for replica in cluster.replicas:
        asyncio.run(
            run_bench(replica.base_url, cluster.api_key, customers, sessions=2, turns=1, handoffs=0, baseline_turns=0)
        )
    rows = []
    for count in replica_counts:
        balancer = cluster.balancer(range(count))
        try:
            result = asyncio.run(
                run_bench(
                    balancer.url,
                    cluster.api_key,
                    customers,
                    sessions=conversations,
                    turns=turns,
                    handoffs=0,
                    baseline_turns=0,
                    turn_timeout_s=turn_timeout_s,
                )
            )
        finally:
            balancer.stop()
        answered = len(result.turn_ms)
        rows.append(
            {
                "replicas": count,
                "conversations": conversations,
                "turns": answered,
                "of": conversations * turns,
                "seconds": round(result.turns_s, 1),
                "turns_per_s": round(answered / result.turns_s, 2) if result.turns_s else 0.0,
                "turn_ms": percentiles(result.turn_ms, (0.5, 0.99)),
                "server_ms": percentiles(result.server_ms, (0.5, 0.99)),
                "failures": len(result.failures),
                "first_failures": result.failures[:5],
            }
        )
    return rows


# -- the command line ---------------------------------------------------------------------------------
def print_report(results: Mapping[str, Any], console: Console) -> None:
    """The scenarios' numbers as tables."""
    fo = results.get("failover")
    if fo:
        table = Table("failover", "value", title=f"kill -9 one of {fo['replicas']} replicas mid-run")
        table.add_row("conversations × turns", f"{fo['conversations']} × {fo['turns']}")
        table.add_row("acknowledged (before the kill)", f"{fo['acknowledged']} of {fo['messages']} "
                      f"({fo['acknowledged_before_kill']})")  # fmt: skip
        table.add_row("killed replica", str(fo["killed_replica"]))
        table.add_row("conversations on it / recovered", f"{fo['conversations_on_killed_replica']} / {fo['recovered']}")
        table.add_row("socket open again after the kill, p50 / max", _pair(fo["reconnect_s"], "p50", "max", " s"))
        table.add_row("first answered turn after the kill, p50 / max", _pair(fo["recovery_s"], "p50", "max", " s"))
        table.add_row("failed sends / messages sent again", f"{fo['failed_sends']} / {fo['retried_messages']}")
        table.add_row("lost / duplicated", f"{fo['lost']} / {fo['duplicated']}")
        table.add_row("out of order / unpaired", f"{fo['out_of_order']} / {fo['unpaired']}")
        table.add_row("turns/s, turn p50 / p99 (ms)", f"{fo['turns_per_s']}, {_pair(fo['turn_ms'], 'p50', 'p99', '')}")
        table.add_row("turn p50 / p99 after the kill (ms)", _pair(fo["turn_ms_after_kill"], "p50", "p99", ""))
        table.add_row(
            "restart of the killed replica", f"{fo['restart_s']} s, answers: {fo['restarted_replica_answers']}"
        )
        table.add_row("passed", _verdict(fo["passed"]))
        console.print(table)
        for line in fo["errors"][:10]:
            console.print(f"[red]{line}[/red]", highlight=False)
    ho = results.get("handoff")
    if ho:
        table = Table("handoff across replicas", "value")
        table.add_row("console on / customer on", f"replica {ho['console_replica']} / replica {ho['customer_replica']}")
        for key in ("queue_ms", "joined_ms", "agent_reply_ms", "customer_message_ms"):
            table.add_row(key.removesuffix("_ms").replace("_", " ") + " (ms after asking)", str(ho[key]))
        table.add_row("passed", _verdict(ho["passed"]) + (f" {ho['error']}" if ho["error"] else ""))
        console.print(table)
    rows = results.get("throughput")
    if rows:
        table = Table("replicas", "turns", "seconds", "turns/s", "p50 ms", "p99 ms", "failures",
                      title=f"throughput through nginx, {rows[0]['conversations']} conversations at once")  # fmt: skip
        for row in rows:
            table.add_row(str(row["replicas"]), f"{row['turns']} of {row['of']}", str(row["seconds"]),
                          str(row["turns_per_s"]), str(row["turn_ms"]["p50"]), str(row["turn_ms"]["p99"]),
                          str(row["failures"]))  # fmt: skip
        console.print(table)


def _pair(values: Mapping[str, Any], first: str, second: str, unit: str) -> str:
    return f"{values.get(first)}{unit} / {values.get(second)}{unit}"


def _verdict(passed: bool) -> str:
    return "[green]yes[/green]" if passed else "[red]no[/red]"


def passed(results: Mapping[str, Any]) -> bool:
    """Whether failover lost and duplicated nothing and the handoff was seen (throughput has no verdict)."""
    fo, ho = results.get("failover"), results.get("handoff")
    return (fo is None or bool(fo["passed"])) and (ho is None or bool(ho["passed"]))


def main(argv: list[str] | None = None) -> int:
    """Start a cluster, run the scenarios, print tables, write JSON; 1 if failover or the handoff failed."""
    parser = argparse.ArgumentParser(
        prog="python -m evals.cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", nargs="?", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--replicas", type=int, default=3, help="API replicas behind nginx")
    parser.add_argument("--conversations", type=int, default=200, help="failover: concurrent conversations")
    parser.add_argument("--turns", type=int, default=6, help="failover: messages per conversation")
    parser.add_argument("--kill-at", type=float, default=1 / 3, help="failover: share of turns answered at the kill")
    parser.add_argument("--load-conversations", type=int, default=200, help="throughput: conversations at once")
    parser.add_argument("--load-turns", type=int, default=5, help="throughput: messages per conversation")
    parser.add_argument("--turn-lock-ttl-s", type=float, help="KEFU_TURN_LOCK_TTL_S of the replicas (default: Kefu's)")
    parser.add_argument("--workdir", type=Path, help="keep the replicas' data and logs here (default: temporary)")
    parser.add_argument("--out", type=Path, help="write the results as JSON, e.g. evals/results/cluster.json")
    args = parser.parse_args(argv)
    if args.replicas < 2 and args.scenario in ("all", "failover", "handoff"):
        parser.error("failover and handoff need at least two replicas")
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    console = Console()
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the cluster's servers are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = " ".join(["python -m evals.cluster", *(sys.argv[1:] if argv is None else argv)])
    results: dict[str, Any] = {"machine": machine(), "command": command, "replicas": args.replicas}
    console.print(f"starting PostgreSQL, Redis, the fake LLM, {args.replicas} replicas and nginx…")
    started = time.monotonic()
    with Cluster(args.replicas, workdir=args.workdir, turn_lock_ttl_s=args.turn_lock_ttl_s) as cluster:
        results["start_s"] = round(time.monotonic() - started, 1)
        results["start_phases_s"] = cluster.timings
        console.print(f"cluster up in {results['start_s']} s: nginx at {cluster.url}")
        # Throughput first, on an untouched cluster; the kill comes last.
        if "throughput" in chosen:
            counts = [n for n in (1, 2, 3) if n <= args.replicas]
            results["throughput"] = throughput(
                cluster, replica_counts=counts, conversations=args.load_conversations, turns=args.load_turns
            )
        if "handoff" in chosen:
            results["handoff"] = asyncio.run(handoff(cluster))
        if "failover" in chosen:
            results["failover"] = asyncio.run(
                failover(cluster, conversations=args.conversations, turns=args.turns, kill_at=args.kill_at)
            )
        if not passed(results):
            for index in range(args.replicas):
                console.print(f"[dim]replica {index}'s log, last lines:[/dim]")
                console.print(cluster.log_tail(index), highlight=False, markup=False)
    print_report(results, console)
    results["passed"] = passed(results)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
        console.print(f"wrote {args.out}")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
