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

With a PostgreSQL store (``Settings.on_postgres``) the checkpoints live in the same database, in
LangGraph's ``PostgresSaver`` tables, so every API replica sees every conversation:
``checkpointer_for`` picks the saver from the settings, and ``prune_checkpoints`` bounds either.
``PostgresSaver`` keeps channel values apart from checkpoints (``checkpoint_blobs``, shared by
every checkpoint that has the same version of a channel), so pruning there also deletes the values
no kept checkpoint refers to.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from core.migrations import LOCK_KEY
from core.settings import Settings

__all__ = [
    "CheckpointPrune",
    "Checkpointer",
    "checkpoint_id_at",
    "checkpointer_for",
    "close_checkpointer",
    "postgres_checkpointer",
    "prune_checkpoints",
    "sqlite_checkpointer",
]

Checkpointer: TypeAlias = SqliteSaver | PostgresSaver
"""The savers Kefu runs on: SQLite beside a SQLite store, PostgreSQL beside a PostgreSQL one."""

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

# PostgreSQL. Each statement reads the rows committed when it starts (READ COMMITTED), and another
# replica may be saving a turn meanwhile: its checkpoint id, and the versions of the channel values
# it saves first, are greater than any already committed in the thread, so none of these deletes
# what a running turn writes.
_PG_EXPIRED = """
WITH expired AS (SELECT thread_id FROM checkpoints GROUP BY thread_id HAVING MAX(checkpoint_id) < %s)
DELETE FROM checkpoints WHERE thread_id IN (SELECT thread_id FROM expired) RETURNING thread_id
"""
# Values and writes of expired threads go with them, unless a new checkpoint arrived meanwhile (a
# customer came back at that very moment); the general statements below then collect the rest.
_PG_EXPIRED_REST = tuple(
    f"""
DELETE FROM {table} AS gone WHERE gone.thread_id = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM checkpoints AS kept WHERE kept.thread_id = gone.thread_id)
"""
    for table in ("checkpoint_blobs", "checkpoint_writes")
)
_PG_LATEST = "SELECT thread_id, checkpoint_ns, MAX(checkpoint_id) AS latest FROM checkpoints GROUP BY 1, 2"
_PG_SUPERSEDED = f"""
DELETE FROM checkpoints AS c USING ({_PG_LATEST}) AS l
WHERE c.thread_id = l.thread_id AND c.checkpoint_ns = l.checkpoint_ns AND c.checkpoint_id < l.latest
"""
# Writes of a checkpoint older than the thread's latest can never be read; writes of a newer one
# belong to a checkpoint not committed yet.
_PG_ORPHANED_WRITES = f"""
DELETE FROM checkpoint_writes AS w USING ({_PG_LATEST}) AS l
WHERE w.thread_id = l.thread_id AND w.checkpoint_ns = l.checkpoint_ns AND w.checkpoint_id < l.latest
"""
# A value no kept checkpoint refers to (through ``channel_versions``) is garbage if it is older
# than the newest version the thread refers to; a newer one was saved by a turn whose checkpoint
# is not committed yet. Versions start with a zero-padded counter, so they compare as strings.
_PG_UNREFERENCED_BLOBS = """
WITH referenced AS (
    SELECT c.thread_id, c.checkpoint_ns, v.key AS channel, v.value AS version
    FROM checkpoints AS c CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
), newest AS (
    SELECT thread_id, checkpoint_ns, MAX(version) AS version FROM referenced GROUP BY 1, 2
)
DELETE FROM checkpoint_blobs AS b USING newest AS n
WHERE b.thread_id = n.thread_id AND b.checkpoint_ns = n.checkpoint_ns AND b.version < n.version
  AND NOT EXISTS (
    SELECT 1 FROM referenced AS r
    WHERE r.thread_id = b.thread_id AND r.checkpoint_ns = b.checkpoint_ns
      AND r.channel = b.channel AND r.version = b.version
  )
"""
_LOCK_POLL_S = 0.2


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
    blobs: int = 0
    """Channel values no kept checkpoint refers to (PostgreSQL keeps them apart; SQLite inline)."""


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


def postgres_checkpointer(libpq_url: str, *, pool_size: int = 10, timeout_s: float = 30.0) -> PostgresSaver:
    """A PostgreSQL checkpointer over a pool of connections to ``libpq_url``, its tables set up.

    The connections are what LangGraph requires (autocommit, no prepared statements, rows as
    dicts), each checked before it is handed out, so a restarted server costs no failed turn.
    Several processes may start at once: LangGraph's set-up (tables, then indexes built
    concurrently) runs in one of them at a time, and not at all once it is done. Close the pool
    with ``close_checkpointer``.

    Args:
        libpq_url: ``postgresql://user:password@host:5432/kefu`` (``Settings.libpq_url``).
        pool_size: Most connections the pool opens.
        timeout_s: How long a read or write waits for a free connection before it fails with
            ``psycopg_pool.PoolTimeout``; also how long the first connection may take.

    Raises:
        psycopg.OperationalError: the server cannot be reached.
    """
    _set_up(libpq_url)
    pool: ConnectionPool[Connection[DictRow]] = ConnectionPool(
        libpq_url,
        connection_class=Connection[DictRow],
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        min_size=1,
        max_size=pool_size,
        timeout=timeout_s,
        check=ConnectionPool.check_connection,
        name="kefu-checkpoints",
        open=False,
    )
    pool.open(wait=True, timeout=timeout_s)
    return PostgresSaver(pool)


def _set_up(libpq_url: str) -> None:
    """Run ``PostgresSaver.setup`` unless its newest migration is there, one process at a time.

    It polls for the advisory lock instead of waiting in a statement: the holder builds indexes
    ``CONCURRENTLY``, which waits for every transaction with an older snapshot, a waiting
    statement's included.
    """
    latest = len(PostgresSaver.MIGRATIONS) - 1
    with Connection.connect(libpq_url, autocommit=True, prepare_threshold=0, row_factory=dict_row) as connection:
        if _schema_version(connection) == latest:
            return
        deadline = time.monotonic() + 600
        while not _scalar(connection, "SELECT pg_try_advisory_lock(%s) AS ok", LOCK_KEY):
            if time.monotonic() > deadline:
                raise TimeoutError("another process has been setting up the checkpoint tables for over 600 s")
            time.sleep(_LOCK_POLL_S)
        try:
            if _schema_version(connection) != latest:
                PostgresSaver(connection).setup()
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _schema_version(connection: Connection[DictRow]) -> int:
    """The newest of LangGraph's checkpoint migrations applied; -1 before any."""
    if _scalar(connection, "SELECT to_regclass('checkpoint_migrations') IS NOT NULL AS present"):
        return int(_scalar(connection, "SELECT COALESCE(MAX(v), -1) AS v FROM checkpoint_migrations"))
    return -1


def _scalar(connection: Connection[DictRow], sql: str, *params: Any) -> Any:
    row = connection.execute(sql, params or None).fetchone()
    assert row is not None
    return next(iter(row.values()))


def checkpointer_for(settings: Settings) -> Checkpointer:
    """The checkpointer the settings call for: in the store's PostgreSQL database, else a SQLite file.

    SQLite: ``settings.checkpoint_path``, waiting ``db_busy_timeout_s`` for locks. PostgreSQL: the
    store's own database (``settings.libpq_url``), ``db_pool_size`` connections, waiting
    ``db_busy_timeout_s`` for a free one.
    """
    if settings.on_postgres:
        return postgres_checkpointer(
            settings.libpq_url, pool_size=settings.db_pool_size, timeout_s=settings.db_busy_timeout_s
        )
    return sqlite_checkpointer(settings.checkpoint_path, busy_timeout_s=settings.db_busy_timeout_s)


def close_checkpointer(saver: Checkpointer) -> None:
    """Close a PostgreSQL checkpointer's connection pool (a SQLite one keeps its connection)."""
    if isinstance(saver, PostgresSaver) and isinstance(saver.conn, ConnectionPool):
        saver.conn.close()


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


def prune_checkpoints(saver: Checkpointer, *, inactive_before: datetime | None = None) -> CheckpointPrune:
    """Keep only each conversation's latest checkpoint; delete conversations inactive since ``inactive_before``.

    Safe beside running turns. SQLite: it holds the saver's lock (the one its reads and writes
    take) for one transaction, and a turn's new checkpoint is always the greatest id of its thread,
    so the checkpoint a turn started from is never the one a concurrent prune keeps by mistake. A
    turn that started from a checkpoint pruned meanwhile still saves its own (the parent id is only
    a pointer; Kefu never follows it). PostgreSQL: one transaction whose statements never delete
    what a turn saving meanwhile (in this or another replica) writes; see the statements' comments.
    A conversation that expires while its customer is writing again may lose its earlier values,
    which expiry deletes anyway.

    Args:
        saver: The checkpointer (its connection is used).
        inactive_before: Conversations whose latest checkpoint is older than this are deleted
            whole; None keeps every conversation.

    Returns:
        What was deleted.
    """
    if isinstance(saver, PostgresSaver):
        return _prune_postgres(saver, inactive_before)
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


@contextmanager
def _connection(saver: PostgresSaver) -> Iterator[Connection[DictRow]]:
    """A connection of the saver's pool, or its single connection under its lock."""
    if isinstance(saver.conn, ConnectionPool):
        with saver.conn.connection() as connection:
            yield connection
    else:
        with saver.lock:
            yield saver.conn


def _prune_postgres(saver: PostgresSaver, inactive_before: datetime | None) -> CheckpointPrune:
    expired: list[str] = []
    expired_checkpoints = writes = blobs = 0
    with _connection(saver) as connection, connection.transaction(), connection.cursor() as cursor:
        if inactive_before is not None:
            cursor.execute(_PG_EXPIRED, (checkpoint_id_at(inactive_before),))
            gone = [str(row["thread_id"]) for row in cursor.fetchall()]
            expired_checkpoints = len(gone)
            expired = sorted(set(gone))
            if expired:
                blobs_sql, writes_sql = _PG_EXPIRED_REST
                blobs += max(cursor.execute(blobs_sql, (expired,)).rowcount, 0)
                writes += max(cursor.execute(writes_sql, (expired,)).rowcount, 0)
        superseded = max(cursor.execute(_PG_SUPERSEDED).rowcount, 0)
        writes += max(cursor.execute(_PG_ORPHANED_WRITES).rowcount, 0)
        blobs += max(cursor.execute(_PG_UNREFERENCED_BLOBS).rowcount, 0)
    return CheckpointPrune(
        superseded_checkpoints=superseded,
        expired_conversations=tuple(expired),
        expired_checkpoints=expired_checkpoints,
        writes=writes,
        blobs=blobs,
    )
