"""Checkpointer choice: conversations survive restarts, and their storage stays bounded.

LangGraph's ``SqliteSaver`` keeps every checkpoint of every thread forever: one per turn (Kefu
runs with ``durability="exit"``) and one per desk write (``update_state``), each holding the whole
conversation so far. Kefu only ever reads the latest checkpoint of a conversation (``get_state``
and the graph's own resume; nothing uses time travel or ``get_state_history``, and the state has
no delta channels that would need the parent chain), so ``prune_checkpoints`` keeps exactly that
one and deletes the rest, and deletes whole conversations whose last activity is older than the
retention period.

"Latest" means what ``SqliteSaver.get_tuple`` means: the greatest ``checkpoint_id`` of the thread
(``ORDER BY checkpoint_id DESC``). Checkpoint ids are UUIDv6 strings whose leading hex digits are
the creation time in 100 ns steps, so the same order is also the time order, and "last activity
before a date" is a string comparison with the id of that date (``checkpoint_id_at``).
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

__all__ = ["CheckpointPrune", "checkpoint_id_at", "prune_checkpoints", "sqlite_checkpointer"]

_UUID_EPOCH_OFFSET = 0x01B21DD213814000
"""100 ns intervals between the UUID epoch (1582-10-15) and the Unix epoch."""

_WAL_LIMIT_BYTES = 64 * 1024 * 1024
"""After a checkpoint of the write-ahead log, SQLite truncates the file back to this size."""

# A checkpoint is superseded when a later one of the same thread and namespace exists. The
# correlated MAX uses the primary key (thread_id, checkpoint_ns, checkpoint_id) as an index.
_SUPERSEDED_CHECKPOINTS = """
DELETE FROM checkpoints
WHERE checkpoint_id < (
    SELECT MAX(latest.checkpoint_id) FROM checkpoints AS latest
    WHERE latest.thread_id = checkpoints.thread_id AND latest.checkpoint_ns = checkpoints.checkpoint_ns
)
"""
# Writes belong to one checkpoint; once it is gone they can never be read.
_ORPHANED_WRITES = """
DELETE FROM writes
WHERE NOT EXISTS (
    SELECT 1 FROM checkpoints AS kept
    WHERE kept.thread_id = writes.thread_id AND kept.checkpoint_ns = writes.checkpoint_ns
      AND kept.checkpoint_id = writes.checkpoint_id
)
"""
_EXPIRED_THREADS = "SELECT thread_id FROM checkpoints GROUP BY thread_id HAVING MAX(checkpoint_id) < ?"


@dataclass(frozen=True)
class CheckpointPrune:
    """What one ``prune_checkpoints`` run deleted."""

    superseded_checkpoints: int
    """Earlier checkpoints of live conversations."""
    expired_conversations: tuple[str, ...]
    """Conversations (thread ids) whose last activity was before the cutoff, deleted whole."""
    expired_checkpoints: int
    """Checkpoints of those conversations."""
    writes: int
    """Pending-write rows of every deleted checkpoint."""


def sqlite_checkpointer(path: Path, *, busy_timeout_s: float = 30.0) -> SqliteSaver:
    """A SQLite checkpointer at ``path``, shared safely by the API's worker threads.

    Args:
        path: The database file; its folder is created if missing.
        busy_timeout_s: How long a write waits for another connection's lock before it fails with
            ``sqlite3.OperationalError: database is locked``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), check_same_thread=False, timeout=busy_timeout_s)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
    return SqliteSaver(connection)


def checkpoint_id_at(moment: datetime) -> str:
    """The smallest checkpoint id LangGraph could give a checkpoint created at ``moment`` (UUIDv6).

    Every checkpoint created earlier has a smaller id as a string, every one created at or after
    ``moment`` a greater or equal one. A naive ``moment`` is taken as UTC.
    """
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    intervals = (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10
    timestamp = intervals + _UUID_EPOCH_OFFSET
    value = ((timestamp >> 12) & 0xFFFFFFFFFFFF) << 80 | (0x6000 | timestamp & 0x0FFF) << 64  # version 6
    value |= 0x8000 << 48  # RFC 4122 variant, clock sequence 0, node 0
    return str(uuid.UUID(int=value))


def prune_checkpoints(saver: SqliteSaver, *, inactive_before: datetime | None = None) -> CheckpointPrune:
    """Keep only each conversation's latest checkpoint; delete conversations inactive since ``inactive_before``.

    Safe beside running turns: it holds the saver's lock (the one its reads and writes take) for
    one transaction, and a turn's new checkpoint is always the greatest id of its thread, so the
    checkpoint a turn started from is never the one a concurrent prune keeps by mistake. A turn
    that started from a checkpoint pruned meanwhile still saves its own (the parent id is only a
    pointer; Kefu never follows it).

    Args:
        saver: The checkpointer (its connection is used).
        inactive_before: Conversations whose latest checkpoint is older than this are deleted
            whole; None keeps every conversation.

    Returns:
        What was deleted.
    """
    with saver.cursor() as cursor:
        expired: list[str] = []
        expired_checkpoints = 0
        if inactive_before is not None:
            cursor.execute(_EXPIRED_THREADS, (checkpoint_id_at(inactive_before),))
            expired = [str(row[0]) for row in cursor.fetchall()]
            for start in range(0, len(expired), 500):
                chunk = expired[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cursor.execute(f"DELETE FROM checkpoints WHERE thread_id IN ({marks})", chunk)
                expired_checkpoints += max(cursor.rowcount, 0)
        cursor.execute(_SUPERSEDED_CHECKPOINTS)
        superseded = max(cursor.rowcount, 0)
        cursor.execute(_ORPHANED_WRITES)
        writes = max(cursor.rowcount, 0)
    return CheckpointPrune(
        superseded_checkpoints=superseded,
        expired_conversations=tuple(expired),
        expired_checkpoints=expired_checkpoints,
        writes=writes,
    )
