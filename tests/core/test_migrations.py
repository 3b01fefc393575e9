"""The store's Alembic migrations (``core.migrations``), on SQLite and on PostgreSQL.

Every database reaches ``head`` through ``make_engine``: an empty one by running the revisions, one
made before migrations by being completed to the baseline and stamped; and the migrated schema is
exactly what ``core/db.py`` declares (``alembic check``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, create_engine, insert, inspect, select, text
from typer.testing import CliRunner

from core.db import Base, make_engine
from core.migrations import _baseline as baseline_schema
from core.migrations import alembic_config, current_revision, head_revision
from core.seed import seed
from core.vault import generate_key
from evals.localservers import PostgresServer
from serving.cli import app

_EMPTY = itertools.count(1)


@pytest.fixture
def empty_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty database on ``db_backend``."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"m_{next(_EMPTY)}"
    server.psql(f"CREATE DATABASE {name}", database="postgres")
    yield server.url(name)
    server.psql(f"DROP DATABASE {name} WITH (FORCE)", database="postgres")


def _check(url: str) -> None:
    """``alembic check``: fail if autogenerate would write anything."""
    engine = make_engine(url, migrate=False)
    try:
        with engine.connect() as connection:
            command.check(alembic_config(connection))
    finally:
        engine.dispose()


def test_an_empty_database_is_migrated_to_head(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) == head_revision()
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    _check(empty_url)


def test_the_migrated_schema_is_the_declared_one(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_a_migrated_database_takes_the_demo_data(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        summary = seed(engine)
        assert summary.created and summary.tickets > 0
        # Seeded rows carry explicit ids; the next ticket still gets a fresh one (PostgreSQL's sequence).
        with engine.begin() as connection:
            ticket = connection.execute(
                insert(Base.metadata.tables["tickets"]).returning(Base.metadata.tables["tickets"].c.id),
                {
                    "customer_id": "C0001",
                    "kind": "general",
                    "status": "open",
                    "priority": 3,
                    "subject": "a new ticket",
                    "created_at": datetime(2026, 11, 23),
                },
            ).scalar_one()
        assert ticket == summary.tickets + 1
    finally:
        engine.dispose()


_DROPPED = {("conversation_log", "seeded"), ("conversation_log", "variant"), ("turn_audit", "variant")}
"""Columns a database made by an older Kefu lacks (added later, without migrations)."""


def _pre_migration_database(url: str) -> None:
    """What an older Kefu made: the baseline without some columns and without ``access_audit``."""
    old = MetaData()
    for table in baseline_schema().sorted_tables:
        if table.name == "access_audit":
            continue
        if any(name == table.name for name, _ in _DROPPED):  # these tables have no foreign keys to copy
            Table(table.name, old, *(c._copy() for c in table.columns if (table.name, c.name) not in _DROPPED))
        else:
            table.to_metadata(old)
    engine = create_engine(url)
    try:
        old.create_all(engine)
        with engine.begin() as connection:
            connection.execute(
                insert(old.tables["conversation_log"]),
                {
                    "conversation_id": "c-1",
                    "customer_id": "C0001",
                    "channel": "web",
                    "lang": "en",
                    "started_at": datetime(2026, 1, 1),
                    "last_at": datetime(2026, 1, 1),
                    "turns": 2,
                    "intents": {},
                    "negative_turns": 0,
                    "fallback_turns": 0,
                    "reached_close_deal": False,
                },
            )
    finally:
        engine.dispose()


def test_a_database_made_before_migrations_is_completed_and_stamped(empty_url: str) -> None:
    _pre_migration_database(empty_url)
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) == head_revision()
        inspector = inspect(engine)
        assert "access_audit" in inspector.get_table_names()
        for table, column in _DROPPED:
            assert column in {c["name"] for c in inspector.get_columns(table)}
        assert "ix_conversation_log_variant" in {i["name"] for i in inspector.get_indexes("conversation_log")}
        log = Base.metadata.tables["conversation_log"]
        with engine.connect() as connection:
            row = connection.execute(select(log.c.seeded, log.c.variant, log.c.turns)).one()
        assert (bool(row.seeded), row.variant, row.turns) == (False, None, 2)  # the old row got the default
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    # Columns added to rows that exist stay nullable: the only difference left from the declared schema.
    assert {(d[0][0], d[0][2], d[0][3]) for d in diffs} == {("modify_nullable", "conversation_log", "seeded")}


def test_an_upgraded_database_is_left_alone(empty_url: str) -> None:
    make_engine(empty_url).dispose()
    engine = make_engine(empty_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [head_revision()]
    finally:
        engine.dispose()


def test_replicas_starting_together_migrate_once(postgres: PostgresServer) -> None:
    name = f"m_{next(_EMPTY)}"
    postgres.psql(f"CREATE DATABASE {name}", database="postgres")
    url = postgres.url(name)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def replica() -> None:
        start.wait()
        try:
            make_engine(url, pool_size=1).dispose()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    engine = make_engine(url, migrate=False)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    postgres.psql(f"DROP DATABASE {name} WITH (FORCE)", database="postgres")


def test_postgresql_urls_without_a_driver_use_psycopg(postgres: PostgresServer) -> None:
    engine = make_engine(postgres.url("kefu", driver="postgresql"), migrate=False)
    try:
        assert engine.dialect.driver == "psycopg"
        assert (engine.pool.size(), engine.pool._max_overflow) == (10, 10)  # type: ignore[attr-defined]
        with engine.connect() as connection:
            assert connection.scalar(text("SHOW timezone")) == "UTC"
    finally:
        engine.dispose()


def test_kefu_db_current_then_upgrade(empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEFU_VAULT_KEY", generate_key())
    monkeypatch.setenv("KEFU_DATABASE_URL", empty_url)
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 0, before.output
    assert "unversioned" in before.output and "kefu db upgrade" in before.output
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"{head_revision()} (head)" in upgraded.output and "was unversioned" in upgraded.output
    after = runner.invoke(app, ["db", "current"])
    assert after.output.strip() == f"{head_revision()} (head)"
