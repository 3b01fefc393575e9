"""Hold hundreds of customer WebSocket sessions open against the real server and time their turns.

Starts ``evals/fake_llm.py``'s instant OpenAI-compatible endpoint, then ``kefu serve`` as a separate
process on a fresh data directory prepared the way an operator would (``kefu seed``, ``kefu vault
init``, ``kefu keys create``, ``kefu agents add``), with the rate limits raised out of the way.
Then, as an app backend and its customers would:

1. gets a session token per customer (``POST /v1/sessions`` with the API key), warms the server up
   with a short conversation per language, and sends ``--baseline-turns`` turns one at a time:
   the latency of a turn when nothing queues;
2. opens ``--sessions`` WebSockets (``/v1/conversations/{id}/ws?token=...``), all held open at once
   (checked against the server's ``kefu_websockets`` gauge), and has every session send ``--turns``
   messages, each after the previous reply, all sessions starting together: a burst of
   ``--sessions`` simultaneous messages, timed from sending the frame to its ``reply`` frame;
3. logs into the agent console, opens its WebSocket, and ``--handoffs`` times has a customer ask for
   a human, timing until the console's ``queue`` event shows the handoff, and until
   ``GET /v1/console/handoffs/{id}`` returns its context packet.

The fake LLM answers at once (or after ``--llm-latency-ms``), so the *added latency* (turn latency
minus the fake's own time for the turn's LLM calls) is what Kefu itself costs: the network, the
graph, redaction, guards, the database and, under load, waiting for a worker. Under the burst the
latency is mostly that wait: about the number of messages ahead divided by the turns per second.

    python -m evals.ws_bench --sessions 500 --out evals/results/ws_bench.json

It is a benchmark, not a test: ``tests/evals/test_ws_bench.py`` only checks that it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from core.db import CustomerRow, make_engine
from evals.fake_llm import FakeLlm
from evals.harness import BENCH_AGENT, KefuServer, percentiles

__all__ = ["BenchResult", "Customer", "HandoffSample", "main", "run_bench"]

TEXTS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Hi there", "Where is my order?", "When will it arrive?", "Do you ship to Hong Kong?"),
    "zh": ("你好", "我的订单到哪了？", "什么时候能到？", "退货运费谁出？"),
}
"""What the customers say, turn after turn (cycled), in their language."""

HUMAN: Final[dict[str, str]] = {"en": "I want to talk to a human", "zh": "转人工"}

CONSOLE_COOKIE: Final = "kefu_console"


@dataclass(frozen=True)
class Customer:
    """A seeded customer to chat as."""

    id: str
    lang: str
    """``zh`` or ``en``: the language its messages are written in."""


@dataclass(frozen=True)
class HandoffSample:
    """One "I want a human" message, seen from the agent console."""

    conversation_id: str
    handoff_id: int
    queue_ms: float
    """From sending the message until the console's ``queue`` event listed the handoff."""
    packet_ms: float
    """From sending the message until ``GET /v1/console/handoffs/{id}`` returned the context packet."""


@dataclass
class BenchResult:
    """Everything one run measured; ``to_json`` is what goes into the results file."""

    sessions: int
    """Sessions asked for."""
    turns_per_session: int
    llm_latency_ms: float
    """The fake LLM's own delay per call."""
    held: int = 0
    """WebSockets open at the same moment, once all had connected (as the client sees them)."""
    server_held: int | None = None
    """The server's ``kefu_websockets{kind="customer"}`` gauge then, once it caught up (None if unreadable)."""
    open_after_turns: int = 0
    """Of those, still open after every turn was answered."""
    connect_s: float = 0.0
    """Time to open all sessions (tokens excluded)."""
    turns_s: float = 0.0
    """Wall time of the turn phase."""
    idle_ms: list[float] = field(default_factory=list)
    """Send-to-reply latency of the baseline turns, sent one at a time to an otherwise idle server."""
    idle_added_ms: list[float] = field(default_factory=list)
    """The same minus the fake LLM's delay: what Kefu adds to a turn when nothing queues."""
    turn_ms: list[float] = field(default_factory=list)
    """Send-to-reply latency of every answered turn of the sessions held at once."""
    added_ms: list[float] = field(default_factory=list)
    """The same minus the fake LLM's delay for the LLM calls of that turn."""
    server_ms: list[float] = field(default_factory=list)
    """The server's own ``latency_ms`` for the turn (inside the service, excluding socket and queueing)."""
    llm_calls: int = 0
    routes: dict[str, int] = field(default_factory=dict)
    handoffs: list[HandoffSample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """One line per failed connection, turn or handoff measurement."""

    def summary(self) -> dict[str, Any]:
        """The headline numbers."""
        turns = len(self.turn_ms)
        return {
            "sessions": self.sessions,
            "held": self.held,
            "server_held": self.server_held,
            "open_after_turns": self.open_after_turns,
            "connect_s": round(self.connect_s, 2),
            "idle_turns": len(self.idle_ms),
            "idle_turn_ms": percentiles(self.idle_ms),
            "idle_added_ms": percentiles(self.idle_added_ms),
            "turns": turns,
            "turns_per_s": round(turns / self.turns_s, 1) if self.turns_s else 0.0,
            "turn_ms": percentiles(self.turn_ms),
            "added_ms": percentiles(self.added_ms),
            "server_ms": percentiles(self.server_ms),
            "llm_calls_per_turn": round(self.llm_calls / turns, 2) if turns else 0.0,
            "routes": dict(sorted(self.routes.items())),
            "handoffs": len(self.handoffs),
            "handoff_queue_ms": percentiles([h.queue_ms for h in self.handoffs]),
            "handoff_packet_ms": percentiles([h.packet_ms for h in self.handoffs]),
            "failures": len(self.failures),
        }

    def to_json(self) -> dict[str, Any]:
        """Summary, settings and the handoff samples, JSON-ready."""
        return {
            "summary": self.summary(),
            "turns_per_session": self.turns_per_session,
            "llm_latency_ms": self.llm_latency_ms,
            "handoff_samples": [asdict(h) for h in self.handoffs],
            "failures": self.failures[:50],
        }


# -- the run against a server ----------------------------------------------------------------------


async def run_bench(
    base_url: str,
    api_key: str,
    customers: Sequence[Customer],
    *,
    sessions: int,
    turns: int = 3,
    handoffs: int = 20,
    baseline_turns: int = 30,
    agent: tuple[str, str] | None = None,
    llm_latency_s: float = 0.0,
    connect_concurrency: int = 50,
    turn_timeout_s: float = 300.0,
) -> BenchResult:
    """Open ``sessions`` customer WebSockets at once, have each send ``turns`` messages, then time handoffs.

    Args:
        base_url: The running server, e.g. ``http://127.0.0.1:8000``.
        api_key: A channel API key (``kefu keys create``): it creates the customers' session tokens.
        customers: Seeded customers; sessions take them in turn (several sessions may share one).
        sessions: WebSockets to hold open at the same time.
        turns: Messages each session sends, each after the previous one's reply.
        handoffs: Times to measure "customer asks for a human" to "the console sees the packet"; 0 skips.
        baseline_turns: Turns sent one at a time before the sessions open (conversations of ``turns``
            messages), for the latency without queueing; 0 skips.
        agent: Console login (user name, password) for the handoff measurement; required if ``handoffs``.
        llm_latency_s: The fake LLM's delay per call, subtracted to get the added latency.
        connect_concurrency: WebSocket handshakes in flight at once while connecting.
        turn_timeout_s: A turn (or a handoff) not answered within this long counts as failed.

    Returns:
        What was measured, failures included.

    Raises:
        ValueError: No customers, or handoffs without an agent login.

    """
    if not customers:
        raise ValueError("no customers to chat as")
    if handoffs and agent is None:
        raise ValueError("measuring handoffs needs an agent login")
    result = BenchResult(sessions=sessions, turns_per_session=turns, llm_latency_ms=llm_latency_s * 1000)
    run_id = secrets.token_hex(3)
    ws_base = "ws" + base_url.removeprefix("http")
    limits = httpx.Limits(max_connections=connect_concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=turn_timeout_s, limits=limits) as http:
        tokens = await _session_tokens(http, api_key, {c.id for c in customers[:sessions]})
        await _warm_up(ws_base, tokens, customers[:sessions], run_id, turn_timeout_s)
        await _baseline(ws_base, tokens, customers[:sessions], baseline_turns, turns, result, run_id, turn_timeout_s)
        plan = [(f"bench-{run_id}-{i}", customers[i % len(customers)]) for i in range(sessions)]
        gate = asyncio.Semaphore(connect_concurrency)

        async def open_one(conversation_id: str, customer: Customer) -> ClientConnection | None:
            url = f"{ws_base}/v1/conversations/{conversation_id}/ws?token={tokens[customer.id]}"
            async with gate:
                try:
                    return await _connect(url, timeout_s=turn_timeout_s)
                except (OSError, TimeoutError, ValueError) as exc:  # websockets' errors are OSError or ValueError
                    result.failures.append(f"connect {conversation_id}: {type(exc).__name__}: {exc}")
                    return None

        started = time.perf_counter()
        sockets = await asyncio.gather(*(open_one(cid, customer) for cid, customer in plan))
        result.connect_s = time.perf_counter() - started
        result.held = sum(1 for ws in sockets if ws is not None and _is_open(ws))
        result.server_held = await _server_count(http, result.held)
        try:
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    _converse(ws, conversation_id, customer, turns, result, llm_latency_s, turn_timeout_s)
                    for ws, (conversation_id, customer) in zip(sockets, plan, strict=True)
                    if ws is not None
                )
            )
            result.turns_s = time.perf_counter() - started
            result.open_after_turns = sum(1 for ws in sockets if ws is not None and _is_open(ws))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets if ws is not None), return_exceptions=True)
        if handoffs and agent is not None:
            await _measure_handoffs(http, ws_base, api_key, customers, handoffs, agent, result, run_id, turn_timeout_s)
    return result


async def _warm_up(
    ws_base: str, tokens: dict[str, str], customers: Sequence[Customer], run_id: str, timeout_s: float
) -> None:
    """One short conversation per language before timing: the first turns load models lazily."""
    scratch = BenchResult(sessions=0, turns_per_session=0, llm_latency_ms=0)
    firsts = {c.lang: c for c in reversed(customers)}
    for lang, customer in sorted(firsts.items()):
        conversation_id = f"bench-{run_id}-warm-{lang}"
        url = f"{ws_base}/v1/conversations/{conversation_id}/ws?token={tokens[customer.id]}"
        async with await _connect(url, timeout_s=timeout_s) as ws:
            await _converse(ws, conversation_id, customer, 2, scratch, 0.0, timeout_s)
    if scratch.failures:
        raise RuntimeError(f"the warm-up failed: {scratch.failures[0]}")


async def _baseline(
    ws_base: str,
    tokens: dict[str, str],
    customers: Sequence[Customer],
    total: int,
    turns: int,
    result: BenchResult,
    run_id: str,
    timeout_s: float,
) -> None:
    """``total`` turns, one at a time, in conversations as long as the sessions' ones: no queueing."""
    scratch = BenchResult(sessions=0, turns_per_session=0, llm_latency_ms=result.llm_latency_ms)
    length = max(1, turns)
    for index in range(0, total, length):
        customer = customers[(index // length) % len(customers)]
        conversation_id = f"bench-{run_id}-idle-{index // length}"
        url = f"{ws_base}/v1/conversations/{conversation_id}/ws?token={tokens[customer.id]}"
        async with await _connect(url, timeout_s=timeout_s) as ws:
            await _converse(
                ws,
                conversation_id,
                customer,
                min(length, total - index),
                scratch,
                result.llm_latency_ms / 1000,
                timeout_s,
            )
    result.idle_ms, result.idle_added_ms = scratch.turn_ms, scratch.added_ms
    result.failures += [f"baseline {line}" for line in scratch.failures]


async def _server_count(http: httpx.AsyncClient, expected: int, settle_s: float = 10.0) -> int | None:
    """Customer sockets the server counts (``kefu_websockets{kind="customer"}``), once it has caught up.

    The server counts a socket after its credential and ownership checks, a moment after the
    handshake the client saw; so the gauge is read until it reaches ``expected`` or ``settle_s`` pass.
    """
    best: int | None = None
    deadline = time.perf_counter() + settle_s
    while True:
        try:
            text = (await http.get("/metrics")).text
        except httpx.HTTPError:
            return best
        for line in text.splitlines():
            if line.startswith('kefu_websockets{kind="customer"} '):
                best = max(best or 0, round(float(line.split()[-1])))
        if best is None or best >= expected or time.perf_counter() > deadline:
            return best
        await asyncio.sleep(0.1)


async def _session_tokens(http: httpx.AsyncClient, api_key: str, customer_ids: set[str]) -> dict[str, str]:
    """One session token per customer, as an app backend gets them."""

    async def one(customer_id: str) -> tuple[str, str]:
        response = await http.post(
            "/v1/sessions", json={"customer_id": customer_id}, headers={"Authorization": f"Bearer {api_key}"}
        )
        response.raise_for_status()
        return customer_id, str(response.json()["token"])

    return dict(await asyncio.gather(*(one(c) for c in sorted(customer_ids))))


async def _connect(url: str, *, timeout_s: float, cookie: str | None = None) -> ClientConnection:
    """A WebSocket that stays open however long the server takes (no client pings, no proxy)."""
    headers = {"Cookie": cookie} if cookie else None
    return await connect(
        url, additional_headers=headers, open_timeout=timeout_s, ping_interval=None, proxy=None, max_size=2**22
    )


def _is_open(ws: ClientConnection) -> bool:
    return ws.close_code is None


async def _next_frame(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(await ws.recv())
    if not isinstance(frame, dict):
        raise ValueError(f"not a JSON object: {frame!r}")
    return frame


async def _reply(ws: ClientConnection, message_id: str) -> dict[str, Any]:
    """Read frames until the ``reply`` to ``message_id``.

    Raises:
        RuntimeError: The server answered with an ``error`` frame.
    """
    while True:
        frame = await _next_frame(ws)
        if frame.get("type") == "error" and frame.get("id") in (message_id, None):
            raise RuntimeError(f"error frame {frame.get('status')}: {frame.get('detail')}")
        if frame.get("type") == "reply" and frame.get("id") == message_id:
            return frame


async def _converse(
    ws: ClientConnection,
    conversation_id: str,
    customer: Customer,
    turns: int,
    result: BenchResult,
    llm_latency_s: float,
    timeout_s: float,
) -> None:
    texts = TEXTS.get(customer.lang, TEXTS["en"])
    for index in range(turns):
        message_id = f"m{index}"
        frame = {"type": "message", "id": message_id, "text": texts[index % len(texts)]}
        started = time.perf_counter()
        try:
            await ws.send(json.dumps(frame, ensure_ascii=False))
            reply = await asyncio.wait_for(_reply(ws, message_id), timeout_s)
        except (OSError, TimeoutError, ValueError, RuntimeError) as exc:  # ConnectionClosed is an OSError
            result.failures.append(f"turn {conversation_id}#{index}: {type(exc).__name__}: {exc}")
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        calls = int(reply.get("llm_calls") or 0)
        result.turn_ms.append(elapsed_ms)
        result.added_ms.append(elapsed_ms - calls * llm_latency_s * 1000)
        result.server_ms.append(float(reply.get("latency_ms") or 0.0))
        result.llm_calls += calls
        route = str(reply.get("route"))
        result.routes[route] = result.routes.get(route, 0) + 1


async def _measure_handoffs(
    http: httpx.AsyncClient,
    ws_base: str,
    api_key: str,
    customers: Sequence[Customer],
    repeats: int,
    agent: tuple[str, str],
    result: BenchResult,
    run_id: str,
    timeout_s: float,
) -> None:
    """Customers ask for a human one after another; the console's view of each handoff is timed."""
    login = await http.post("/v1/console/login", json={"username": agent[0], "password": agent[1]})
    login.raise_for_status()
    cookie = login.cookies.get(CONSOLE_COOKIE)
    if cookie is None:
        raise RuntimeError("the console login set no cookie")
    seen: dict[str, tuple[float, int]] = {}  # conversation id -> (when the queue listed it, handoff id)
    arrived = asyncio.Condition()
    console = await _connect(f"{ws_base}/v1/console/ws", timeout_s=timeout_s, cookie=f"{CONSOLE_COOKIE}={cookie}")

    async def listen() -> None:
        while True:
            frame = await _next_frame(console)
            if frame.get("type") != "queue":
                continue
            now = time.perf_counter()
            async with arrived:
                for item in frame.get("items") or []:
                    seen.setdefault(str(item["conversation_id"]), (now, int(item["id"])))
                arrived.notify_all()

    listener = asyncio.create_task(listen())
    try:
        tokens = await _session_tokens(http, api_key, {c.id for c in customers[:repeats]})
        for index in range(repeats):
            customer = customers[index % len(customers)]
            conversation_id = f"bench-{run_id}-human-{index}"
            try:
                sample = await _one_handoff(
                    http, ws_base, tokens[customer.id], customer, conversation_id, seen, arrived, timeout_s
                )
            except (OSError, TimeoutError, ValueError, RuntimeError, httpx.HTTPError) as exc:
                result.failures.append(f"handoff {conversation_id}: {type(exc).__name__}: {exc}")
                continue
            result.handoffs.append(sample)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, ValueError):
            await listener
        await console.close()


async def _one_handoff(
    http: httpx.AsyncClient,
    ws_base: str,
    token: str,
    customer: Customer,
    conversation_id: str,
    seen: dict[str, tuple[float, int]],
    arrived: asyncio.Condition,
    timeout_s: float,
) -> HandoffSample:
    url = f"{ws_base}/v1/conversations/{conversation_id}/ws?token={token}"
    async with await _connect(url, timeout_s=timeout_s) as ws:
        frame = {"type": "message", "id": "human", "text": HUMAN.get(customer.lang, HUMAN["en"])}
        started = time.perf_counter()
        await ws.send(json.dumps(frame, ensure_ascii=False))
        async with arrived:
            await asyncio.wait_for(arrived.wait_for(lambda: conversation_id in seen), timeout_s)
        queued_at, handoff_id = seen[conversation_id]
        while True:
            response = await http.get(f"/v1/console/handoffs/{handoff_id}")
            if response.status_code == 200 and response.json().get("packet"):
                packet_at = time.perf_counter()
                break
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"no packet for handoff {handoff_id}: {response.status_code}")
            await asyncio.sleep(0.005)
        reply = await asyncio.wait_for(_reply(ws, "human"), timeout_s)  # let the turn finish before the next one
        if reply.get("state") != "handoff":
            raise RuntimeError(f"the conversation went to {reply.get('state')!r}, not handoff")
    return HandoffSample(conversation_id, handoff_id, (queued_at - started) * 1000, (packet_at - started) * 1000)


# -- the server and its data ----------------------------------------------------------------------


def raise_open_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit (child processes inherit it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def load_customers(database_url: str) -> list[Customer]:
    """The seeded customers, in id order."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(CustomerRow.id, CustomerRow.lang).order_by(CustomerRow.id)).all()
    finally:
        engine.dispose()
    return [Customer(str(row.id), str(row.lang)) for row in rows]


# -- report --------------------------------------------------------------------------------------


def print_report(result: BenchResult, console: Console) -> None:
    """The headline numbers as two tables (counts, latencies), then the first failures."""
    summary = result.summary()
    title = f"{result.sessions} WebSocket sessions × {result.turns_per_session} turns · {os.cpu_count()} CPU cores"
    counts = Table("measure", "value", title=title)
    counts.add_row("held open at once (client / server gauge)", f"{result.held} / {result.server_held}")
    counts.add_row("still open after every turn", str(result.open_after_turns))
    counts.add_row("time to open them all", f"{result.connect_s:.1f} s")
    counts.add_row("turns answered", f"{summary['turns']} of {result.sessions * result.turns_per_session}")
    counts.add_row("turns per second", str(summary["turns_per_s"]))
    counts.add_row("fake LLM calls per turn", f"{summary['llm_calls_per_turn']} ({result.llm_latency_ms:.0f} ms each)")
    counts.add_row("routes", ", ".join(f"{k} {v}" for k, v in summary["routes"].items()))
    counts.add_row("handoffs measured", str(summary["handoffs"]))
    counts.add_row("failures", str(summary["failures"]))
    console.print(counts)
    latency = Table("latency (ms)", "p50", "p90", "p99")
    for label, key in (
        (f"idle turn, one at a time ({summary['idle_turns']})", "idle_turn_ms"),
        ("idle added: turn − fake LLM time", "idle_added_ms"),
        (f"turn under load: send → reply ({summary['turns']})", "turn_ms"),
        ("added under load: turn − fake LLM time", "added_ms"),
        ("server time inside the turn, under load", "server_ms"),
        ("handoff → console queue event", "handoff_queue_ms"),
        ("handoff → packet from GET", "handoff_packet_ms"),
    ):
        values = summary[key]
        latency.add_row(label, *(f"{values[q]:.0f}" if values[q] is not None else "-" for q in ("p50", "p90", "p99")))
    console.print(latency)
    for line in result.failures[:10]:
        console.print(f"[red]{line}[/red]", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write the JSON results; 1 if anything failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=500, help="WebSockets held open at once")
    parser.add_argument("--turns", type=int, default=3, help="messages per session")
    parser.add_argument("--handoffs", type=int, default=20, help="handoff-to-console measurements (0: none)")
    parser.add_argument("--baseline-turns", type=int, default=30, help="turns sent one at a time first (0: none)")
    parser.add_argument("--llm-latency-ms", type=float, default=0.0, help="the fake LLM's delay per call")
    parser.add_argument("--connect-concurrency", type=int, default=50, help="handshakes in flight while connecting")
    parser.add_argument("--out", type=Path, default=Path("evals/results/ws_bench.json"))
    args = parser.parse_args(argv)

    console = Console()
    files = raise_open_file_limit()
    data_dir = Path(tempfile.mkdtemp(prefix="kefu-ws-bench-"))
    with FakeLlm(latency_s=args.llm_latency_ms / 1000) as fake:
        console.print(f"preparing {data_dir} and starting `kefu serve` (first start builds the knowledge base)…")
        with KefuServer(data_dir, llm_base_url=fake.base_url) as server:
            base_url, api_key = server.base_url, server.api_key
            customers = load_customers(server.database_url)
            console.print(f"server up at {base_url}; {len(customers)} customers; open-file limit {files}")
            result = asyncio.run(
                run_bench(
                    base_url,
                    api_key,
                    customers,
                    sessions=args.sessions,
                    turns=args.turns,
                    handoffs=args.handoffs,
                    baseline_turns=args.baseline_turns,
                    agent=(BENCH_AGENT, server.agent_password),
                    llm_latency_s=args.llm_latency_ms / 1000,
                    connect_concurrency=args.connect_concurrency,
                )
            )
        llm_requests = len(fake.requests)
    print_report(result, console)
    out = {
        **result.to_json(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "open_file_limit": files},
        "fake_llm_requests": llm_requests,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 1 if result.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
