"""Shared fixtures: an isolated data directory, a seeded demo store, services with scripted models.

Tests that use ``settings`` under the directories in ``_BOTH_DATABASES`` run twice: on SQLite and
on PostgreSQL (``[sqlite]`` / ``[postgresql]``), except those marked ``sqlite_only``. PostgreSQL is
a real server started once per session (``evals.localservers``) with a seeded template database;
each test gets its own copy. ``KEFU_TEST_DATABASES=sqlite`` (or ``postgresql``, or both with a
comma) runs only those.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import spacy.cli
import uvicorn
from pydantic import SecretStr

from agent.intents import IntentModel, default_examples
from core.db import make_engine
from core.desk import DeskStore
from core.embeddings import sentence_encoder
from core.seed import seed
from core.settings import Settings
from core.store import SqlStore
from core.types import Channel
from core.vault import generate_key
from evals.localservers import PostgresServer, missing
from graphs.checkpoint import close_checkpointer, postgres_checkpointer
from knowledge import KnowledgeBase
from serving.app import create_app
from serving.auth import create_api_key
from serving.llm_server import free_port
from serving.service import KefuService
from tests.fakes import ScriptedChatModel, loopback_only

DATABASES = ("sqlite", "postgresql")
_BOTH_DATABASES = frozenset({"core", "graphs", "serving", "insights", "reliability"})
"""Test directories whose ``settings`` tests run on both databases."""
_TESTS = Path(__file__).parent
_TEMPLATE = "kefu_template"
_COPIES = itertools.count(1)


def _wanted_databases() -> tuple[str, ...]:
    raw = os.environ.get("KEFU_TEST_DATABASES", "")
    wanted = tuple(name.strip() for name in raw.split(",") if name.strip()) or DATABASES
    unknown = set(wanted) - set(DATABASES)
    if unknown:
        raise pytest.UsageError(f"KEFU_TEST_DATABASES: unknown {sorted(unknown)}; use sqlite, postgresql or both")
    return wanted


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the database tests of ``_BOTH_DATABASES`` on each database.

    ``db_backend`` is chosen per test (``settings``, ``store_url``), ``module_db_backend`` per
    module (``make_database_url``, for fixtures that build a world once per module).
    """
    folder = Path(metafunc.definition.path).relative_to(_TESTS).parts[0]
    both = folder in _BOTH_DATABASES and metafunc.definition.get_closest_marker("sqlite_only") is None
    wanted = _wanted_databases()
    for name, scope in (("db_backend", "function"), ("module_db_backend", "module")):
        if name not in metafunc.fixturenames:
            continue
        if both:
            metafunc.parametrize(name, [db for db in DATABASES if db in wanted], indirect=True, scope=scope)
        elif "sqlite" not in wanted:
            skip = pytest.mark.skip(reason="runs on SQLite only, and KEFU_TEST_DATABASES leaves SQLite out")
            metafunc.parametrize(name, [pytest.param("sqlite", marks=skip)], indirect=True, scope=scope)


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    """The store's database in this test: ``sqlite`` or ``postgresql`` (see ``pytest_generate_tests``)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (fsync off), on a free loopback port."""
    if "postgresql" not in _wanted_databases():
        pytest.skip("KEFU_TEST_DATABASES leaves PostgreSQL out")
    if "postgresql" in missing():
        pytest.fail(
            "PostgreSQL is not installed, and the [postgresql] tests need it: run `make services` "
            "(apt-get install postgresql), or set KEFU_TEST_DATABASES=sqlite to run on SQLite only",
            pytrace=False,
        )
    with PostgresServer(durable=False) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> str:
    """A database seeded once, as ``seeded_db``, with the checkpoint tables set up; tests get copies."""
    postgres.psql(f"CREATE DATABASE {_TEMPLATE}", database="postgres")
    engine = make_engine(postgres.url(_TEMPLATE))
    seed(engine)
    engine.dispose()
    close_checkpointer(postgres_checkpointer(postgres.url(_TEMPLATE, driver="postgresql"), pool_size=1))
    return _TEMPLATE


def _create_database(server: PostgresServer, template: str | None) -> str:
    name = f"t_{next(_COPIES)}"
    server.psql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""), database="postgres")
    return name


def _drop_database(server: PostgresServer, name: str) -> None:
    server.psql(f"DROP DATABASE {name} WITH (FORCE)", database="postgres")


@pytest.fixture
def store_url(db_backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The test's own copy of the seeded PostgreSQL database (dropped after it); None on SQLite."""
    if db_backend != "postgresql":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = _create_database(server, request.getfixturevalue("postgres_template"))
    yield server.url(name)
    _drop_database(server, name)


@pytest.fixture(scope="module")
def module_db_backend(request: pytest.FixtureRequest) -> str:
    """The database of this module's ``make_database_url``: ``sqlite`` or ``postgresql``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="module")
def make_database_url(
    module_db_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, seeded_db: Path
) -> Iterator[Callable[..., str]]:
    """Make databases on the module's backend: ``make_database_url()`` an empty one,
    ``make_database_url(seeded=True)`` a copy of the seeded demo store. Dropped after the module."""
    made: list[str] = []
    server: PostgresServer | None = None
    template = None
    if module_db_backend == "postgresql":
        server = request.getfixturevalue("postgres")
        template = request.getfixturevalue("postgres_template")

    def new(*, seeded: bool = False) -> str:
        if server is None:
            path = tmp_path_factory.mktemp("db") / "kefu.db"
            if seeded:
                shutil.copy(seeded_db, path)
            return f"sqlite:///{path}"
        made.append(_create_database(server, template if seeded else None))
        return server.url(made[-1])

    yield new
    for name in made:
        assert server is not None
        _drop_database(server, name)


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo database seeded once per test session; tests get copies."""
    path = tmp_path_factory.mktemp("seed") / "kefu.db"
    engine = make_engine(f"sqlite:///{path}")
    seed(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def seeded_kb(tmp_path_factory: pytest.TempPathFactory, seeded_db: Path) -> Path:
    """The demo knowledge base (documents ingested, product graph built) once per session; tests get copies."""
    path = tmp_path_factory.mktemp("kb") / "kb"
    engine = make_engine(f"sqlite:///{seeded_db}")
    KnowledgeBase.open(path, SqlStore(engine).list_products())
    engine.dispose()
    return path


@pytest.fixture
def settings(tmp_path: Path, seeded_db: Path, seeded_kb: Path, store_url: str | None) -> Settings:
    """Settings with a private data directory holding a copy of the seeded knowledge base, and a copy
    of the seeded database: a SQLite file there, or a PostgreSQL database (``store_url``)."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    if store_url is None:
        shutil.copy(seeded_db, data_dir / "kefu.db")
    shutil.copytree(seeded_kb, data_dir / "kb")
    return Settings(  # type: ignore[call-arg]
        data_dir=data_dir,
        cache_dir=tmp_path / "cache",
        vault_key=SecretStr(generate_key()),
        database_url=store_url,
        _env_file=None,
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[SqlStore]:
    """The seeded demo store."""
    engine = make_engine(settings.resolved_database_url)
    yield SqlStore(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def intent_model() -> IntentModel:
    """The real classifier trained once per test session on the shipped data."""
    return IntentModel.train(default_examples(), sentence_encoder())


@pytest.fixture
def make_service(settings: Settings, intent_model: IntentModel) -> Iterator[Callable[..., KefuService]]:
    """Build services on the test's data directory; all are closed after the test.

    ``intents`` replaces the real classifier with a scripted one (``tests.fakes.ScriptedIntents``).
    """
    started: list[KefuService] = []

    def factory(model: ScriptedChatModel | None = None, intents: Any = None, **overrides: Any) -> KefuService:
        local = settings.model_copy(update=overrides) if overrides else settings
        service = KefuService.start(
            local, chat_model=model, use_llm=model is not None, intent_model=intents or intent_model
        )
        started.append(service)
        return service

    yield factory
    for service in started:
        service.close()


@pytest.fixture(autouse=True)
def _no_real_model_calls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any call to a real OpenAI-compatible model outside tests marked ``e2e``."""
    if request.node.get_closest_marker("e2e"):
        return

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a unit test tried to call a real LLM; use tests.fakes.ScriptedChatModel")

    monkeypatch.setattr("langchain_openai.ChatOpenAI._generate", refuse)


@pytest.fixture
def loopback_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ChatOpenAI reach 127.0.0.1 (the fake LLM endpoint), and nothing else."""
    monkeypatch.setattr("langchain_openai.ChatOpenAI._generate", loopback_only)


@pytest.fixture
def api_key(settings: Settings) -> str:
    """A channel API key stored in the test database (what ``kefu keys create`` makes)."""
    engine = make_engine(settings.resolved_database_url)
    key, _ = create_api_key(DeskStore(engine), "tests", Channel.APP)
    engine.dispose()
    return key


@pytest.fixture
def live_server(settings: Settings, intent_model: IntentModel) -> Iterator[str]:
    """The real app (rules only) served by uvicorn on a free loopback port."""
    port = free_port()
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make every socket connection, subprocess and spaCy download fail, and record attempts."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def _refuse(*args: object, **kwargs: object) -> None:
            attempts.append(what)
            raise OSError(f"network disabled in tests: {what}")

        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    monkeypatch.setattr(spacy.cli, "download", refuse("spacy.cli.download"))
    yield attempts
