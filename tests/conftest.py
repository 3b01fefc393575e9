"""Shared fixtures: an isolated data directory, a seeded demo store, services with scripted models."""

from __future__ import annotations

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
from knowledge import KnowledgeBase
from serving.app import create_app
from serving.auth import create_api_key
from serving.llm_server import free_port
from serving.service import KefuService
from tests.fakes import ScriptedChatModel


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
def settings(tmp_path: Path, seeded_db: Path, seeded_kb: Path) -> Settings:
    """Settings with a private data directory holding copies of the seeded database and knowledge base."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    shutil.copy(seeded_db, data_dir / "kefu.db")
    shutil.copytree(seeded_kb, data_dir / "kb")
    return Settings(  # type: ignore[call-arg]
        data_dir=data_dir, cache_dir=tmp_path / "cache", vault_key=SecretStr(generate_key()), _env_file=None
    )


@pytest.fixture
def store(settings: Settings) -> SqlStore:
    """The seeded demo store."""
    return SqlStore(make_engine(settings.resolved_database_url))


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
