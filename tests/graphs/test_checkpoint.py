"""Checkpoint pruning: only the latest checkpoint survives, history and resumption are intact, old conversations go."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.postgres import PostgresSaver
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.db import AccessAuditRow, ConversationLogRow, TurnAuditRow
from core.settings import Settings
from evals.localservers import PostgresServer
from graphs.checkpoint import (
    checkpoint_id_at,
    close_checkpointer,
    postgres_checkpointer,
    prune_checkpoints,
    sqlite_checkpointer,
)
from serving.cli import app as cli
from serving.service import KefuService
from tests.fakes import ScriptedIntents

Factory = Callable[..., KefuService]


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


def _checkpoint_rows(settings: Settings, query: str) -> list[tuple[object, ...]]:
    """Rows of the checkpoint tables, wherever the settings keep them."""
    if settings.on_postgres:
        with psycopg.connect(settings.libpq_url) as db:
            return [tuple(row) for row in db.execute(query).fetchall()]
    return _rows(settings.checkpoint_path, query)


def test_checkpoint_ids_of_a_moment_sort_between_earlier_and_later_checkpoints() -> None:
    before = checkpoint_id_at(datetime.now(UTC) - timedelta(seconds=1))
    made = str(uuid6(clock_seq=3))
    after = checkpoint_id_at(datetime.now(UTC) + timedelta(seconds=1))
    assert before < made < after
    assert checkpoint_id_at(datetime(2026, 1, 1)) == checkpoint_id_at(datetime(2026, 1, 1, tzinfo=UTC))


def test_pruning_keeps_the_latest_checkpoint_and_the_conversation_continues(
    make_service: Factory, settings: Settings
) -> None:
    service = make_service()
    for n, text in enumerate(["Hi there", "Where is my order?", "Can I return an item?"]):
        service.chat("keep-1", "C0001", text, message_id=f"k1-{n}")
    service.chat("keep-2", "C0002", "Hi there", message_id="k2-0")
    history_before = service.history("keep-1", "C0001")
    assert len(_checkpoint_rows(settings, "SELECT 1 FROM checkpoints")) == 4

    report = service.prune()

    assert report.superseded_checkpoints == 2 and report.expired_conversations == 0
    rows = _checkpoint_rows(settings, "SELECT thread_id, checkpoint_id FROM checkpoints ORDER BY thread_id")
    assert [thread for thread, _ in rows] == ["keep-1", "keep-2"]
    if settings.on_postgres:  # only values the kept checkpoints name are left (the history below reads them)
        assert report.checkpoint_values > 0 and _checkpoint_rows(settings, _GARBAGE_BLOBS) == []
    assert service.history("keep-1", "C0001") == history_before
    retry = service.chat("keep-1", "C0001", "Can I return an item?", message_id="k1-2")
    assert retry.replayed
    nxt = service.chat("keep-1", "C0001", "How long do refunds take?", message_id="k1-3")
    assert not nxt.replayed and nxt.reply
    _state, entries = service.history("keep-1", "C0001")
    assert entries[: len(history_before[1])] == history_before[1]
    assert [e.role for e in entries[len(history_before[1]) :]] == ["customer", "agent"]
    assert entries[-2].text == "How long do refunds take?"


def test_kefu_prune_and_vacuum_on_either_database(
    make_service: Factory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service()
    for n, text in enumerate(["Hi there", "Where is my order?"]):
        service.chat("cli-1", "C0001", text, message_id=f"c1-{n}")
    service.close()
    monkeypatch.setenv("KEFU_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("KEFU_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("KEFU_VAULT_KEY", settings.vault_key.get_secret_value() if settings.vault_key else "")
    result = CliRunner().invoke(cli, ["prune", "--vacuum"])
    assert result.exit_code == 0, result.output
    assert "deleted 1 superseded checkpoints" in result.output and "vacuumed" in result.output
    assert _checkpoint_rows(settings, "SELECT thread_id FROM checkpoints") == [("cli-1",)]


def test_only_unanswered_turns_keep_the_customers_words(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents({"order": [("order_status", 0.95)]}))
    service.chat("answered-1", "C0001", "Where is my order?", message_id="a-0")
    service.chat("answered-1", "C0001", "can you call me back later?", message_id="a-1")
    answered, unsure = service.audit("answered-1", "C0001")
    assert answered.question is None
    assert unsure.question == "can you call me back later?"


def test_each_record_is_kept_for_its_own_retention(make_service: Factory, settings: Settings) -> None:
    """Conversation data goes after ``retention_days``; decisions and the service log stay for their own retention."""
    # The scripted classifier is unsure of everything but "order": unsure turns keep the customer's
    # (redacted) words for the dashboard's unanswered questions; answered turns keep none.
    service = make_service(intents=ScriptedIntents({"order": [("order_status", 0.95)]}))
    service.chat("old-1", "C0001", "My phone is 13812345678, can you call me?", message_id="o-0")
    assert service.vault.entries("old-1")
    [audit] = service.audit("old-1", "C0001")
    assert audit.question and "<CN_MOBILE_1>" in audit.question and "13812345678" not in audit.question
    now = datetime.now(UTC)
    with Session(service.store.engine) as session, session.begin():
        session.add(
            AccessAuditRow(
                at=now.replace(tzinfo=None), actor="agent:lin", role="agent", action="view_conversation", target="old-1"
            )
        )

    def kept() -> tuple[list[str | None], bool, bool]:
        with Session(service.store.engine) as session:
            questions = list(
                session.scalars(select(TurnAuditRow.question).where(TurnAuditRow.conversation_id == "old-1"))
            )
            log = session.get(ConversationLogRow, "old-1") is not None
            access = session.scalar(select(AccessAuditRow).where(AccessAuditRow.target == "old-1")) is not None
        return questions, log, access

    nothing = service.prune(now=now + timedelta(days=settings.retention_days - 1))
    assert nothing.expired_conversations == 0 and service.history("old-1", "C0001")[1]
    assert kept() == ([audit.question], True, True)

    report = service.prune(now=now + timedelta(days=settings.retention_days + 1))

    assert report.expired_conversations == 1 and report.expired_checkpoints == 1
    assert report.answers == 1 and report.vault_entries >= 1 and report.questions >= 1
    assert service.history("old-1", "C0001") == (None, [])
    assert service.vault.entries("old-1") == {}
    # The decision stays for the audit retention; the customer's words went with the conversation.
    assert [(a.intent, a.decision, a.question) for a in service.audit("old-1", "C0001")] == [
        (audit.intent, audit.decision, None)
    ]
    assert kept() == ([None], True, True)
    # The id is free again: the same message id starts a new conversation instead of replaying.
    fresh = service.chat("old-1", "C0001", "Hi there", message_id="o-0")
    assert not fresh.replayed
    assert [e.role for e in service.history("old-1", "C0001")[1]] == ["customer", "agent"]

    audits = service.prune(now=now + timedelta(days=settings.audit_retention_days + 1))
    assert audits.turn_audits >= 2 and audits.access_audits >= 1
    assert kept() == ([], True, False)

    analytics = service.prune(now=now + timedelta(days=settings.analytics_retention_days + 1))
    assert analytics.conversation_logs >= 1
    assert kept() == ([], False, False)


def test_pruning_a_bare_checkpointer_deletes_superseded_writes_too(tmp_path: Path) -> None:
    saver = sqlite_checkpointer(tmp_path / "c.sqlite", busy_timeout_s=1)
    saver.setup()
    older, newer = str(uuid6(clock_seq=1)), str(uuid6(clock_seq=2))
    with saver.cursor() as cursor:
        for checkpoint_id in (older, newer):
            cursor.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id) VALUES ('t', '', ?)",
                (checkpoint_id,),
            )
            cursor.execute(
                "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel) "
                "VALUES ('t', '', ?, 'task', 0, 'messages')",
                (checkpoint_id,),
            )
    report = prune_checkpoints(saver)
    assert (report.superseded_checkpoints, report.writes) == (1, 1)
    assert _rows(tmp_path / "c.sqlite", "SELECT checkpoint_id FROM checkpoints") == [(newer,)]
    assert _rows(tmp_path / "c.sqlite", "SELECT checkpoint_id FROM writes") == [(newer,)]
    saver.conn.close()


_REFERENCED = """
SELECT c.thread_id, c.checkpoint_ns, v.key AS channel, v.value AS version
FROM checkpoints AS c CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
"""
_GARBAGE_BLOBS = f"""
SELECT b.thread_id, b.channel, b.version FROM checkpoint_blobs AS b
WHERE NOT EXISTS (
    SELECT 1 FROM ({_REFERENCED}) AS r WHERE (b.thread_id, b.checkpoint_ns, b.channel, b.version)
        = (r.thread_id, r.checkpoint_ns, r.channel, r.version))
"""
_BARE = itertools.count(1)


@pytest.fixture
def bare_postgres(postgres: PostgresServer) -> Iterator[str]:
    """An empty PostgreSQL database (libpq URL)."""
    name = f"c_{next(_BARE)}"
    postgres.psql(f"CREATE DATABASE {name}", database="postgres")
    yield postgres.url(name, driver="postgresql")
    postgres.psql(f"DROP DATABASE {name} WITH (FORCE)", database="postgres")


def _version(n: int) -> str:
    return f"{n:032}.0.5"


def test_pruning_postgres_spares_what_a_running_turn_is_saving(bare_postgres: str) -> None:
    """Superseded checkpoints, their writes and values go; a newer, not yet committed turn's rows stay."""
    saver = postgres_checkpointer(bare_postgres, pool_size=2)
    older, newer, running = (str(uuid6(clock_seq=n)) for n in (1, 2, 3))
    checkpoints = [
        (older, {"messages": _version(1), "intent": _version(1)}),
        (newer, {"messages": _version(2), "intent": _version(1)}),
    ]
    blobs = [("messages", 1), ("intent", 1), ("messages", 2), ("messages", 3)]  # 3: saved by a running turn
    with psycopg.connect(bare_postgres, autocommit=True) as db:
        for checkpoint_id, versions in checkpoints:
            db.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint, metadata) "
                "VALUES ('t', '', %s, %s, '{}')",
                (checkpoint_id, psycopg.types.json.Jsonb({"channel_versions": versions, "channel_values": {}})),
            )
        for channel, n in blobs:
            db.execute(
                "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) "
                "VALUES ('t', '', %s, %s, 'msgpack', '')",
                (channel, _version(n)),
            )
        for checkpoint_id in (older, newer, running):
            db.execute(
                "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, blob) "
                "VALUES ('t', '', %s, 'task', 0, 'messages', '')",
                (checkpoint_id,),
            )
    try:
        report = prune_checkpoints(saver)
        assert (report.superseded_checkpoints, report.writes, report.blobs) == (1, 1, 1)
        with psycopg.connect(bare_postgres) as db:
            assert db.execute("SELECT checkpoint_id FROM checkpoints").fetchall() == [(newer,)]
            kept = db.execute("SELECT channel, version FROM checkpoint_blobs ORDER BY 1, 2").fetchall()
            assert kept == [("intent", _version(1)), ("messages", _version(2)), ("messages", _version(3))]
            writes = db.execute("SELECT checkpoint_id FROM checkpoint_writes ORDER BY 1").fetchall()
            assert writes == [(newer,), (running,)]

        expired = prune_checkpoints(saver, inactive_before=datetime.now(UTC) + timedelta(seconds=1))
        assert (expired.expired_conversations, expired.expired_checkpoints) == (("t",), 1)
        with psycopg.connect(bare_postgres) as db:
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
                assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    finally:
        close_checkpointer(saver)


def test_postgres_checkpointer_sets_up_once_for_many_processes(bare_postgres: str) -> None:
    first = postgres_checkpointer(bare_postgres, pool_size=1)
    second = postgres_checkpointer(bare_postgres, pool_size=1)
    try:
        with psycopg.connect(bare_postgres) as db:
            versions = db.execute("SELECT v FROM checkpoint_migrations ORDER BY v").fetchall()
        assert versions == [(v,) for v in range(len(PostgresSaver.MIGRATIONS))]
    finally:
        close_checkpointer(first)
        close_checkpointer(second)
