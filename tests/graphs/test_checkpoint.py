"""Checkpoint pruning: only the latest checkpoint survives, history and resumption are intact, old conversations go."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from langgraph.checkpoint.base.id import uuid6

from core.settings import Settings
from graphs.checkpoint import checkpoint_id_at, prune_checkpoints, sqlite_checkpointer
from serving.service import KefuService

Factory = Callable[..., KefuService]


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


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
    assert len(_rows(settings.checkpoint_path, "SELECT 1 FROM checkpoints")) == 4

    report = service.prune()

    assert report.superseded_checkpoints == 2 and report.expired_conversations == 0
    rows = _rows(settings.checkpoint_path, "SELECT thread_id, checkpoint_id FROM checkpoints ORDER BY thread_id")
    assert [thread for thread, _ in rows] == ["keep-1", "keep-2"]
    assert service.history("keep-1", "C0001") == history_before
    retry = service.chat("keep-1", "C0001", "Can I return an item?", message_id="k1-2")
    assert retry.replayed
    nxt = service.chat("keep-1", "C0001", "How long do refunds take?", message_id="k1-3")
    assert not nxt.replayed and nxt.reply
    _state, entries = service.history("keep-1", "C0001")
    assert entries[: len(history_before[1])] == history_before[1]
    assert [e.role for e in entries[len(history_before[1]) :]] == ["customer", "agent"]
    assert entries[-2].text == "How long do refunds take?"


def test_conversations_past_the_retention_are_deleted_with_their_answers_audits_and_vault(
    make_service: Factory, settings: Settings
) -> None:
    service = make_service()
    service.chat("old-1", "C0001", "My phone is 13812345678, where is my order?", message_id="o-0")
    assert service.vault.entries("old-1")
    assert service.audit("old-1", "C0001")

    nothing = service.prune(now=datetime.now(UTC) + timedelta(days=settings.retention_days - 1))
    assert nothing.expired_conversations == 0 and service.history("old-1", "C0001")[1]

    report = service.prune(now=datetime.now(UTC) + timedelta(days=settings.retention_days + 1))

    assert report.expired_conversations == 1 and report.expired_checkpoints == 1
    assert report.answers == 1 and report.turn_audits == 1 and report.vault_entries >= 1
    assert service.history("old-1", "C0001") == (None, [])
    assert service.audit("old-1", "C0001") == []
    assert service.vault.entries("old-1") == {}
    # The id is free again: the same message id starts a new conversation instead of replaying.
    fresh = service.chat("old-1", "C0001", "Hi there", message_id="o-0")
    assert not fresh.replayed
    assert [e.role for e in service.history("old-1", "C0001")[1]] == ["customer", "agent"]


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
