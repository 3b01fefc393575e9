"""Kefu under faults, and the size of what it stores: three scenarios against the real server.

``kill9``
    ``kefu serve`` (on the fake LLM) holds ``--conversations`` concurrent conversations of
    ``--turns`` messages, each message with its own ``message_id``, sent to
    ``POST /v1/conversations/{id}/messages``. Once about ``--kill-at`` of the messages are
    acknowledged the server is SIGKILLed (its whole process group; no shutdown code runs) and
    started again on the same data. Clients retry every unacknowledged message with the same id
    until it is acknowledged, then finish their turns and send one more message after the restart.
    From ``GET /v1/conversations/{id}`` each conversation must hold every customer message exactly
    once, in order, each followed by one agent reply: ``lost`` and ``duplicated`` must be 0.

``llm-down``
    The LLM backend runs as its own process (``python -m evals.fake_llm --port P``, or the embedded
    llama-server with ``--model``). A conversation is answered by the LLM; the backend is SIGKILLed;
    the next turns must get rule-based replies (route ``rules`` with a fallback reason) within the
    budget, which is ``llm_timeout_s`` plus ``--overhead-s``: a dead backend costs at most one
    timeout per turn (``LlmGateway``'s breaker then fails fast for ``llm_cooldown_s``). The backend
    starts again on the same port and turns are sent until one is answered by the LLM again:
    the recovery time, which the breaker's cooldown (set low here) bounds.

``retention``
    Storage after ``--retention-conversations`` conversations. Sending 10,000 x 4 turns over HTTP
    (a few turns per second on two cores) would take hours, so the rows are made by real turns
    and then replicated: ``--sample`` conversations of ``--turns`` messages run through the real
    server (each leaving its per-turn checkpoints, stored answers, turn audits and vault
    entries), then every sample conversation's rows are copied under new conversation ids with
    new, time-ordered checkpoint ids (each checkpoint is deserialized, given its new id and time,
    and serialized again by the checkpointer's own serializer), spread over the last
    ``--spread-days`` days, so some conversations are past the retention. Sizes and row counts
    are measured (a) as LangGraph leaves them, (b) after ``graphs.checkpoint.prune_checkpoints``
    keeps only each conversation's latest checkpoint, and (c) after the server's start-up
    pruning, which also deletes conversations, answers and audits older than the retention.
    Then a sample conversation continues (history intact, one more turn), and an expired one
    reads as new.

    python -m evals.reliability all --out evals/results/reliability.json
    python -m evals.reliability kill9 --conversations 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import httpx
from langgraph.checkpoint.sqlite import SqliteSaver
from rich.console import Console
from rich.table import Table

from evals.fake_llm import FakeLlm
from evals.harness import KefuServer, LlmServerProcess, free_port, machine, percentiles
from graphs.checkpoint import checkpoint_id_at, prune_checkpoints, sqlite_checkpointer

__all__ = [
    "FakeLlmProcess",
    "kill9_scenario",
    "llm_down_scenario",
    "main",
    "run_kill9",
    "run_llm_down",
    "run_retention",
]

SCENARIOS: Final = ("kill9", "llm-down", "retention")

TEXTS: Final[tuple[str, ...]] = (
    "Hi there",
    "Where is my order?",
    "When will it arrive?",
    "Can I return an item?",
    "How long do refunds take?",
    "Do you ship to Hong Kong?",
    "What payment methods do you accept?",
    "Thanks, that helps",
)
"""Distinct messages, so a duplicated or lost one shows in the history."""

CUSTOMERS: Final = tuple(f"C{n:04d}" for n in range(1, 21))
_RESUME_TEXT: Final = "One more question: do you have gift cards?"
_SQL_TIME: Final = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy stores a ``DateTime`` in SQLite."""


# -- kill -9 under load ------------------------------------------------------------------------
@dataclass
class _Client:
    """One simulated customer's conversation and what the server acknowledged."""

    conversation_id: str
    customer_id: str
    texts: list[str]
    acked: list[str] = field(default_factory=list)
    retried: int = 0
    """Messages sent more than once (the first attempt got no answer)."""
    errors: list[str] = field(default_factory=list)
    reached: Callable[[], None] | None = None
    """Called after each acknowledgement (the kill -9 scenario waits for enough of them)."""


async def _send(client: httpx.AsyncClient, who: _Client, text: str, message_id: str, deadline: float) -> bool:
    """Send until acknowledged (same message id every time); False past the deadline."""
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        try:
            response = await client.post(
                f"/v1/conversations/{who.conversation_id}/messages",
                json={"text": text, "customer_id": who.customer_id, "message_id": message_id, "lang": "en"},
            )
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            if attempt > 1:
                who.retried += 1
            who.acked.append(text)
            if who.reached is not None:
                who.reached()
            return True
        if response is not None and response.status_code not in (502, 503, 504):
            who.errors.append(f"{message_id}: HTTP {response.status_code} {response.text[:200]}")
            return False
        await asyncio.sleep(0.25)
    who.errors.append(f"{message_id}: not acknowledged before the deadline")
    return False


async def _converse(client: httpx.AsyncClient, who: _Client, deadline: float) -> None:
    for index, text in enumerate(who.texts):
        if not await _send(client, who, text, f"{who.conversation_id}-m{index}", deadline):
            return
        await asyncio.sleep(random.uniform(0.0, 0.2))  # customers do not all type at once


def _check_history(entries: list[dict[str, Any]], expected: list[str]) -> tuple[int, int, bool]:
    """Lost and duplicated customer messages, and whether each one got exactly one agent reply, in order."""
    customer = [e["text"] for e in entries if e["role"] == "customer"]
    have, want = Counter(customer), Counter(expected)
    lost = sum((want - have).values())
    duplicated = sum((have - want).values())
    roles = [e["role"] for e in entries if e["role"] in ("customer", "agent")]
    paired = roles == ["customer", "agent"] * len(expected) and customer == expected
    return lost, duplicated, paired


async def _history(client: httpx.AsyncClient, who: _Client) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/conversations/{who.conversation_id}", params={"customer_id": who.customer_id})
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()["messages"]
    return entries


async def kill9_scenario(server: KefuServer, conversations: int, turns: int, kill_at: float) -> dict[str, Any]:
    """SIGKILL ``server`` once ``kill_at`` of the messages are acknowledged, restart it, check every conversation."""
    rng = random.Random(7)
    clients = [
        _Client(f"k9-{n:03d}", CUSTOMERS[n % len(CUSTOMERS)], rng.sample(TEXTS, turns)) for n in range(conversations)
    ]
    total = conversations * turns
    deadline = time.monotonic() + 600
    restart_s = 0.0
    acked_before_kill = 0
    limits = httpx.Limits(max_connections=conversations + 10)
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=120, limits=limits) as c:
        enough = asyncio.Event()

        def reached() -> None:
            if sum(len(who.acked) for who in clients) >= kill_at * total:
                enough.set()

        for who in clients:
            who.reached = reached
        tasks = [asyncio.create_task(_converse(c, who, deadline)) for who in clients]
        finished = asyncio.gather(*tasks)
        waiter = asyncio.ensure_future(enough.wait())
        await asyncio.wait([waiter, cast("asyncio.Future[Any]", finished)], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        acked_before_kill = sum(len(who.acked) for who in clients)
        in_flight = sum(1 for t in tasks if not t.done())
        await asyncio.to_thread(server.kill)
        started = time.monotonic()
        await asyncio.to_thread(server.start)
        restart_s = time.monotonic() - started
        await finished
        # Every conversation resumes after the restart: one more turn on the state it had.
        before = {who.conversation_id: await _history(c, who) for who in clients}
        for who in clients:
            await _send(c, who, _RESUME_TEXT, f"{who.conversation_id}-resume", deadline)
        resumed = 0
        lost = duplicated = unpaired = 0
        for who in clients:
            entries = await _history(c, who)
            old = before[who.conversation_id]
            if entries[: len(old)] == old and len(entries) == len(old) + 2 and entries[-2]["text"] == _RESUME_TEXT:
                resumed += 1
            missing, extra, paired = _check_history(entries, who.acked)
            lost += missing
            duplicated += extra
            unpaired += 0 if paired else 1
    acknowledged = sum(len(who.acked) for who in clients)
    errors = [error for who in clients for error in who.errors]
    expected = total + conversations
    return {
        "conversations": conversations,
        "turns": turns,
        "messages": expected,
        "acknowledged": acknowledged,
        "acknowledged_before_kill": acked_before_kill,
        "conversations_in_flight_at_kill": in_flight,
        "retried": sum(who.retried for who in clients),
        "lost": lost,
        "duplicated": duplicated,
        "unpaired_conversations": unpaired,
        "resumed": resumed,
        "restart_s": round(restart_s, 2),
        "errors": errors[:20],
        "passed": acknowledged == expected
        and lost == 0
        and duplicated == 0
        and unpaired == 0
        and resumed == conversations
        and not errors,
    }


def run_kill9(workdir: Path, *, conversations: int = 50, turns: int = 4, kill_at: float = 0.4) -> dict[str, Any]:
    """The kill -9 scenario on a fresh data directory under ``workdir``."""
    with (
        FakeLlm(tool_every=0, foreign_every=0) as fake,
        KefuServer(workdir / "kill9", llm_base_url=fake.base_url) as server,
    ):
        return asyncio.run(kill9_scenario(server, conversations, turns, kill_at))


# -- the LLM backend killed mid-conversation -------------------------------------------------------
class FakeLlmProcess:
    """``python -m evals.fake_llm`` as a process of its own on a fixed port: kill it, start it again."""

    def __init__(self, port: int | None = None) -> None:
        """Pick the port; ``start`` launches it."""
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 30) -> FakeLlmProcess:
        """Launch it and wait for ``/health``."""
        command = [sys.executable, "-m", "evals.fake_llm", "--port", str(self.port), "--tool-every", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the fake LLM exited with {self.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise SystemExit(f"the fake LLM did not answer on port {self.port} within {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL it."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(10)


def _turn(client: httpx.Client, conversation_id: str, text: str, message_id: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = client.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"text": text, "customer_id": "C0002", "message_id": message_id, "lang": "en"},
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body, time.perf_counter() - started


def llm_down_scenario(
    server: KefuServer, backend: FakeLlmProcess | LlmServerProcess, timeout_s: float, overhead_s: float, down_turns: int
) -> dict[str, Any]:
    """Kill ``backend`` (the LLM) mid-conversation, time the rule-based turns, restart it, time the recovery."""
    conversation = f"llm-down-{int(time.time())}"
    turns = iter(range(1000))
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=timeout_s + 60) as client:
        first, _ = _turn(client, conversation, "Where is my order?", f"m{next(turns)}")
        backend.kill()
        down: list[dict[str, Any]] = []
        latencies: list[float] = []
        for index in range(down_turns):
            body, seconds = _turn(client, conversation, TEXTS[(index + 2) % len(TEXTS)], f"m{next(turns)}")
            down.append({"route": body["route"], "fallback": body["fallback"], "latency_s": round(seconds, 3)})
            latencies.append(seconds)
        backend.start()
        back_at = time.monotonic()
        recovered: float | None = None
        attempts = 0
        while time.monotonic() - back_at < 120:
            attempts += 1
            body, _ = _turn(client, conversation, TEXTS[attempts % len(TEXTS)], f"m{next(turns)}")
            if body["route"] == "llm":
                recovered = time.monotonic() - back_at
                break
            time.sleep(0.25)
        history = client.get(f"/v1/conversations/{conversation}", params={"customer_id": "C0002"}).json()["messages"]
    budget = timeout_s + overhead_s
    rules = all(turn["route"] == "rules" and turn["fallback"] for turn in down)
    customer_turns = sum(1 for entry in history if entry["role"] == "customer")
    return {
        "first_route": first["route"],
        "down_turns": down,
        "rule_reply_s": percentiles(latencies, (0.5, 1.0)),
        "budget_s": budget,
        "recovery_s": None if recovered is None else round(recovered, 2),
        "turns_until_recovery": attempts,
        "history_customer_messages": customer_turns,
        "passed": first["route"] == "llm"
        and rules
        and max(latencies) <= budget
        and recovered is not None
        and customer_turns == 1 + down_turns + attempts,
    }


def run_llm_down(
    workdir: Path,
    *,
    model: str | None = None,
    timeout_s: float = 10.0,
    cooldown_s: float = 2.0,
    overhead_s: float = 3.0,
    down_turns: int = 3,
) -> dict[str, Any]:
    """The LLM-killed scenario on a fresh data directory under ``workdir``; ``model`` uses llama-server."""
    backend: FakeLlmProcess | LlmServerProcess = LlmServerProcess(model) if model else FakeLlmProcess()
    backend.start()
    env = {"KEFU_LLM_TIMEOUT_S": str(timeout_s), "KEFU_LLM_COOLDOWN_S": str(cooldown_s)}
    if model:
        env["KEFU_LLM_MODEL"] = model
    try:
        with KefuServer(workdir / "llm-down", llm_base_url=backend.base_url, extra_env=env) as server:
            result = llm_down_scenario(server, backend, timeout_s, overhead_s, down_turns)
    finally:
        backend.kill()
    return {"backend": model or "fake", "llm_timeout_s": timeout_s, "llm_cooldown_s": cooldown_s, **result}


# -- storage at scale ------------------------------------------------------------------------------
def _bytes(path: Path) -> dict[str, int]:
    """File size, and the bytes its live pages hold (a pruned file keeps free pages for reuse)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = int(db.execute("PRAGMA page_size").fetchone()[0])
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    return {"file_bytes": path.stat().st_size, "used_bytes": page * (pages - free)}


def _count(path: Path, query: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute(query).fetchone()[0])


def _measure(data_dir: Path) -> dict[str, Any]:
    checkpoints, store = data_dir / "conversations.sqlite", data_dir / "kefu.db"
    return {
        "conversations": _count(checkpoints, "SELECT COUNT(DISTINCT thread_id) FROM checkpoints"),
        "checkpoints": _count(checkpoints, "SELECT COUNT(*) FROM checkpoints"),
        "writes": _count(checkpoints, "SELECT COUNT(*) FROM writes"),
        "answers": _count(store, "SELECT COUNT(*) FROM inbound_messages"),
        "turn_audits": _count(store, "SELECT COUNT(*) FROM turn_audit"),
        "vault_entries": _count(store, "SELECT COUNT(*) FROM pii_vault"),
        "checkpoint_db": _bytes(checkpoints),
        "store_db": _bytes(store),
    }


def _sample_texts(index: int, turns: int) -> list[str]:
    texts = [TEXTS[(index + turn) % len(TEXTS)] for turn in range(turns)]
    # Personal data in one message per conversation puts entries in the vault, as real chats do.
    texts[min(1, turns - 1)] += f" My phone is 1381234{index:04d}."
    return texts


def _replicate(
    data_dir: Path, samples: Sequence[str], copies: int, spread_days: float, retention_days: float, seed: int = 11
) -> None:
    """Copy every sample conversation's rows under new ids, with new time-ordered checkpoint ids and times."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    saver = sqlite_checkpointer(data_dir / "conversations.sqlite")
    rows = {
        thread: saver.conn.execute(
            "SELECT checkpoint_ns, checkpoint_id, type, checkpoint, metadata FROM checkpoints WHERE thread_id = ? "
            "ORDER BY checkpoint_id",
            (thread,),
        ).fetchall()
        for thread in samples
    }
    store = sqlite3.connect(data_dir / "kefu.db")
    tables = {
        table: [column[1] for column in store.execute(f"PRAGMA table_info({table})")]
        for table in ("inbound_messages", "turn_audit", "pii_vault")
    }
    store_rows = {
        table: {
            thread: store.execute(f"SELECT * FROM {table} WHERE conversation_id = ?", (thread,)).fetchall()
            for thread in samples
        }
        for table in tables
    }
    checkpoint_rows: list[tuple[Any, ...]] = []
    table_rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in tables}
    for copy in range(copies):
        sample = samples[copy % len(samples)]
        thread = f"r{copy:05d}-{sample}"
        last = now - dt.timedelta(days=rng.uniform(0, spread_days))
        turns = rows[sample]
        parent: str | None = None
        for turn, (namespace, _old_id, kind, blob, metadata) in enumerate(turns):
            moment = last - dt.timedelta(minutes=2 * (len(turns) - 1 - turn))
            new_id = _unique_id(checkpoint_id_at(moment), rng)
            checkpoint = saver.serde.loads_typed((kind, blob))
            checkpoint["id"], checkpoint["ts"] = new_id, moment.isoformat()
            new_kind, new_blob = saver.serde.dumps_typed(checkpoint)
            checkpoint_rows.append((thread, namespace, new_id, parent, new_kind, new_blob, metadata))
            parent = new_id
        naive_last = last.replace(tzinfo=None)
        for table, columns in tables.items():
            for row in store_rows[table][sample]:
                values = dict(zip(columns, row, strict=True))
                values["conversation_id"] = thread
                if "id" in values and table == "turn_audit":
                    values["id"] = None
                values["created_at"] = naive_last.strftime(_SQL_TIME)
                if table == "pii_vault":
                    values["expires_at"] = (naive_last + dt.timedelta(days=retention_days)).strftime(_SQL_TIME)
                table_rows[table].append(tuple(values[c] for c in columns))
    with saver.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
            " metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
            checkpoint_rows,
        )
    with store:
        for table, columns in tables.items():
            marks = ", ".join("?" * len(columns))
            store.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", table_rows[table])
    store.close()
    saver.conn.close()


def _unique_id(floor: str, rng: random.Random) -> str:
    """A checkpoint id of the same instant as ``floor``, with a random clock sequence and node as LangGraph's have."""
    return f"{floor[:19]}{0x8000 | rng.getrandbits(14):04x}-{rng.getrandbits(48):012x}"


async def _sample_conversations(server: KefuServer, samples: int, turns: int) -> list[str]:
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=120) as client:

        async def one(index: int) -> str:
            who = _Client(f"sample-{index:03d}", CUSTOMERS[index % len(CUSTOMERS)], _sample_texts(index, turns))
            await _converse(client, who, time.monotonic() + 600)
            if who.errors:
                raise SystemExit(f"sample conversation failed: {who.errors}")
            return who.conversation_id

        return list(await asyncio.gather(*(one(index) for index in range(samples))))


def run_retention(
    workdir: Path,
    *,
    conversations: int = 10_000,
    samples: int = 20,
    turns: int = 4,
    spread_days: float = 45.0,
    retention_days: float = 30.0,
) -> dict[str, Any]:
    """The storage scenario on a fresh data directory under ``workdir``."""
    env = {"KEFU_RETENTION_DAYS": str(retention_days)}
    data_dir = workdir / "retention"
    with FakeLlm(tool_every=0, foreign_every=0) as fake:
        server = KefuServer(data_dir, llm_base_url=fake.base_url, extra_env=env)
        with server:
            sample_ids = asyncio.run(_sample_conversations(server, samples, turns))
        _replicate(data_dir, sample_ids, conversations - samples, spread_days, retention_days)
        unpruned = _measure(data_dir)
        saver: SqliteSaver = sqlite_checkpointer(data_dir / "conversations.sqlite")
        started = time.perf_counter()
        latest_only = prune_checkpoints(saver)
        latest_only_s = time.perf_counter() - started
        saver.conn.close()
        pruned = _measure(data_dir)
        with contextlib.closing(sqlite3.connect(data_dir / "conversations.sqlite")) as db:
            before = {str(row[0]) for row in db.execute("SELECT DISTINCT thread_id FROM checkpoints")}
        started = time.perf_counter()
        server.start()  # start-up pruning: latest checkpoints and the retention period
        restart_s = time.perf_counter() - started
        try:
            expired = _measure(data_dir)
            continued, gone = _after_pruning(server, sample_ids[0], turns, data_dir, before)
        finally:
            server.stop()
    vacuumed = _vacuumed_bytes(data_dir / "conversations.sqlite")
    live = expired["conversations"]
    per_live = expired["checkpoint_db"]["used_bytes"] / max(live, 1)
    bounded = (
        pruned["checkpoints"] == pruned["conversations"] == unpruned["conversations"]
        and expired["checkpoints"] == live
        and expired["answers"] <= live * turns
        and 0 < live < conversations
    )
    return {
        "conversations": conversations,
        "sampled_over_http": samples,
        "turns": turns,
        "retention_days": retention_days,
        "spread_days": spread_days,
        "unpruned": unpruned,
        "latest_only": pruned,
        "latest_only_prune_s": round(latest_only_s, 3),
        "superseded_checkpoints_deleted": latest_only.superseded_checkpoints,
        "after_retention": expired,
        "restart_with_pruning_s": round(restart_s, 2),
        "checkpoint_bytes_per_live_conversation": round(per_live),
        "checkpoint_file_bytes_after_vacuum": vacuumed,
        "sample_continues": continued,
        "expired_reads_as_new": gone,
        "passed": bounded and continued and gone,
    }


def _vacuumed_bytes(path: Path) -> int:
    """The file's size once ``VACUUM`` gives its free pages back (pruning alone leaves them for reuse)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("VACUUM")
    return path.stat().st_size


def _after_pruning(server: KefuServer, sample: str, turns: int, data_dir: Path, known: set[str]) -> tuple[bool, bool]:
    """A pruned sample conversation keeps its history and takes a turn; an expired one (in ``known``) is empty."""
    customer = CUSTOMERS[int(sample.rsplit("-", 1)[1]) % len(CUSTOMERS)]
    with contextlib.closing(sqlite3.connect(data_dir / "conversations.sqlite")) as db:
        live = {row[0] for row in db.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as client:
        before = client.get(f"/v1/conversations/{sample}", params={"customer_id": customer}).json()["messages"]
        turn = client.post(
            f"/v1/conversations/{sample}/messages",
            json={"text": _RESUME_TEXT, "customer_id": customer, "message_id": "after-prune", "lang": "en"},
        )
        after = client.get(f"/v1/conversations/{sample}", params={"customer_id": customer}).json()["messages"]
        expired = next((thread for thread in sorted(known) if thread.startswith("r") and thread not in live), None)
        gone = False
        if expired is not None:
            owner = CUSTOMERS[int(expired.rsplit("-", 1)[1]) % len(CUSTOMERS)]
            gone = client.get(f"/v1/conversations/{expired}", params={"customer_id": owner}).json()["messages"] == []
    continued = (
        turn.status_code == 200
        and len(before) == 2 * turns
        and after[: len(before)] == before
        and after[len(before)]["text"] == _RESUME_TEXT
    )
    return continued, gone


# -- the command -----------------------------------------------------------------------------------
def _table(results: dict[str, Any]) -> Table:
    table = Table(title="Kefu reliability")
    table.add_column("scenario")
    table.add_column("passed")
    table.add_column("numbers")
    for name in SCENARIOS:
        result = results.get(name)
        if result is None:
            continue
        if name == "kill9":
            numbers = (
                f"{result['conversations']} conversations, acknowledged {result['acknowledged']}, retried "
                f"{result['retried']}, lost {result['lost']}, duplicated {result['duplicated']}, resumed "
                f"{result['resumed']}, restart {result['restart_s']} s"
            )
        elif name == "llm-down":
            numbers = (
                f"rule replies p50/max {result['rule_reply_s']} s (budget {result['budget_s']} s), "
                f"recovery {result['recovery_s']} s"
            )
        else:
            rows = [("unpruned", result["unpruned"]), ("latest", result["latest_only"])]
            rows.append(("retention", result["after_retention"]))
            numbers = "; ".join(
                f"{label}: {m['conversations']} conv, {m['checkpoints']} ckpt, {m['answers']} answers, "
                f"{m['checkpoint_db']['used_bytes'] / 1e6:.1f} MB ckpt used"
                for label, m in rows
            )
        table.add_row(name, "yes" if result["passed"] else "NO", numbers)
    return table


def main(argv: list[str] | None = None) -> int:
    """Run one scenario or all, print a table and write the JSON results; 1 if any scenario failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--conversations", type=int, default=50, help="kill9: concurrent conversations")
    parser.add_argument("--turns", type=int, default=4, help="messages per conversation (kill9, retention)")
    parser.add_argument("--kill-at", type=float, default=0.4, help="kill9: share of messages acknowledged first")
    parser.add_argument("--model", help="llm-down: kill the embedded llama-server running this model, not the fake")
    parser.add_argument("--llm-timeout-s", type=float, default=10.0)
    parser.add_argument("--llm-cooldown-s", type=float, default=2.0)
    parser.add_argument("--retention-conversations", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=20, help="retention: conversations run over HTTP")
    parser.add_argument("--out", type=Path, default=Path("evals/results/reliability.json"))
    parser.add_argument("--workdir", type=Path, help="where the data directories go (default: a temporary one)")
    args = parser.parse_args(argv)
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    runners: dict[str, Callable[[Path], dict[str, Any]]] = {
        "kill9": lambda w: run_kill9(w, conversations=args.conversations, turns=args.turns, kill_at=args.kill_at),
        "llm-down": lambda w: run_llm_down(
            w, model=args.model, timeout_s=args.llm_timeout_s, cooldown_s=args.llm_cooldown_s
        ),
        "retention": lambda w: run_retention(
            w, conversations=args.retention_conversations, samples=args.sample, turns=args.turns
        ),
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kefu-reliability-") as temporary:
        workdir = args.workdir or Path(temporary)
        for name in chosen:
            started = time.monotonic()
            results[name] = {**runners[name](workdir), "seconds": round(time.monotonic() - started, 1)}
    out = {
        "machine": machine(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m evals.reliability", *(argv if argv is not None else sys.argv[1:])]),
        **results,
        "passed": all(result["passed"] for result in results.values()),
    }
    Console().print(_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
