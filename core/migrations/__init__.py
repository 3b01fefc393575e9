"""The store's schema migrations (Alembic), applied by ``core.db.make_engine`` and ``kefu db upgrade``.

Alembic is configured here, in code: no ``alembic.ini`` is needed at run time. ``upgrade`` brings
any database to the newest revision (``head``):

* an empty database gets every revision, from the baseline on;
* a database made before migrations existed (Kefu's tables, no ``alembic_version``) is first
  completed to the baseline (missing tables created, missing columns added, filled from their
  defaults), then stamped with it, then upgraded;
* any other database gets the revisions it lacks.

Several API replicas may start at once against one PostgreSQL database: the first takes an
advisory lock and migrates, the others wait for it and then find nothing left to do. On
PostgreSQL one migration runs in one transaction; SQLite applies DDL as it goes.

To write a revision: change ``core/db.py``, then, on a connection to a database at ``head``, run
``alembic.command.revision(alembic_config(connection), "what changed", autogenerate=True)`` and
review the file it writes into ``versions/``; ``alembic.command.check`` says whether anything is
left to write.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, MetaData, inspect, literal, text

__all__ = ["BASELINE", "LOCK_KEY", "alembic_config", "current_revision", "head_revision", "upgrade"]

BASELINE = "0001"
"""The first revision: the schema as it was when migrations began."""

LOCK_KEY = 0x6B65_6675_0000_0001
"""PostgreSQL advisory-lock key ("kefu" and 1) that serializes migrations between processes."""

_POLL_S = 0.2


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for Kefu's migrations, running on ``connection`` (``env.py`` reads it).

    Alembic's own commands (``alembic.command.revision(alembic_config(conn), autogenerate=True)``)
    work with it as they would with an ``alembic.ini``.
    """
    config = Config()
    config.set_main_option("script_location", "core:migrations")
    config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The newest revision this version of Kefu knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the baseline ships with the package
        raise RuntimeError("no migrations found in core/migrations/versions")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database behind ``engine`` is at; None before any (empty or made before migrations)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, *, lock_timeout_s: float = 600.0) -> str:
    """Bring the database behind ``engine`` to the newest revision; returns it.

    Args:
        engine: The store's database.
        lock_timeout_s: How long to wait for another process's migration (PostgreSQL) before giving up.

    Raises:
        TimeoutError: another process held the migration lock for longer than ``lock_timeout_s``.
    """
    head = head_revision()
    if current_revision(engine) == head:  # the usual case, without taking the lock
        return head
    with engine.connect() as connection, _exclusive(connection, lock_timeout_s):
        config = alembic_config(connection)
        existing = set(inspect(connection).get_table_names())
        revision = MigrationContext.configure(connection).get_current_revision()
        if revision is None and existing & set(_baseline().tables):
            _complete_to_baseline(connection, existing)
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
        connection.commit()
    return head


@contextmanager
def _exclusive(connection: Connection, timeout_s: float) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock ``LOCK_KEY`` on ``connection``; nothing on other databases.

    It polls ``pg_try_advisory_lock`` rather than waiting in ``pg_advisory_lock``: a session that
    waits inside a statement holds a snapshot, and ``CREATE INDEX CONCURRENTLY`` in the lock
    holder (LangGraph's checkpointer set-up does that) would wait for it in turn.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    deadline = time.monotonic() + timeout_s
    while not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}):
        connection.commit()
        if time.monotonic() > deadline:
            raise TimeoutError(f"another process has been migrating the database for over {timeout_s:.0f} s")
        time.sleep(_POLL_S)
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()  # a failed migration leaves its transaction open
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        connection.commit()


@cache
def _baseline() -> MetaData:
    """The baseline revision's tables."""
    script = ScriptDirectory.from_config(alembic_config()).get_revision(BASELINE)
    assert script is not None
    module: Any = script.module
    metadata: MetaData = module.schema()
    return metadata


def _complete_to_baseline(connection: Connection, existing: set[str]) -> None:
    """Create the baseline's missing tables and indexes and add its missing columns.

    A database made before migrations holds some older version of the baseline's tables: only
    tables, columns and indexes were ever added then, never renamed or retyped. A column added to
    existing rows is nullable, filled with its default where it has one.
    """
    schema = _baseline()
    schema.create_all(connection, tables=[t for t in schema.sorted_tables if t.name not in existing])
    inspector = inspect(connection)
    operations = Operations(MigrationContext.configure(connection))
    for table in schema.sorted_tables:
        if table.name not in existing:
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                operations.add_column(table.name, _added(column, connection))
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(connection)


def _added(column: Column[Any], connection: Connection) -> Column[Any]:
    """``column`` as it can be added to a table with rows: nullable, with its scalar default as the server's."""
    default = None
    if column.default is not None and getattr(column.default, "is_scalar", False):
        value = getattr(column.default, "arg", None)
        default = text(str(literal(value, column.type).compile(connection, compile_kwargs={"literal_binds": True})))
    return Column(column.name, column.type, nullable=True, server_default=default)
