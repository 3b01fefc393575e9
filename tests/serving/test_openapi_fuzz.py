"""Property-based fuzzing of every HTTP operation in the OpenAPI schema with schemathesis.

The real app runs in-process (rules only, the real classifier) with a channel API key and a
logged-in console agent, so the fuzzer gets past authentication and reaches the handlers. Every
response must be a documented status code with a body of the documented shape, and none may be a
5xx. WebSocket routes are not in the schema; ``/metrics`` is Prometheus text, not an API.

The schema is the app's own ``/openapi.json``, read when the module is collected (no lifespan runs
for that); the requests go in-process through schemathesis' ASGI transport to one app started for
the module.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agent.intents import IntentModel
from core.db import make_engine
from core.desk import DeskStore
from core.settings import Settings
from core.types import Channel
from core.vault import generate_key
from serving.app import create_app
from serving.auth import TokenSigner, create_api_key, hash_password, load_secret
from serving.console import COOKIE
from serving.service import KefuService

MAX_EXAMPLES = 15
"""Generated cases per operation, on top of the schema's examples and the coverage phase."""

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

_EVENT_STREAMS = {"/v1/conversations/{conversation_id}/events"}
"""Endpoints whose 200 is a stream that never ends: read it for a moment, then keep what arrived."""

_CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261122,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "operations": [{"include-path": "/metrics", "enabled": False}],
    }
)
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi(), config=_CONFIG)


@dataclass(frozen=True)
class Target:
    """The running app and the credentials every request carries."""

    app: FastAPI
    headers: dict[str, str]
    cookies: dict[str, str]


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory,
    make_database_url: Callable[..., str],
    seeded_kb: Path,
    intent_model: IntentModel,
) -> Iterator[Target]:
    """One app for the whole module, with rate limits out of the way, an API key and a console login."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "var"
    data_dir.mkdir()
    database_url = make_database_url(seeded=True)
    shutil.copytree(seeded_kb, data_dir / "kb")
    settings = Settings(
        data_dir=data_dir,
        cache_dir=data_dir.parent / "cache",
        vault_key=SecretStr(generate_key()),
        rate_per_key_per_min=1_000_000,
        rate_per_conversation_per_min=1_000_000,
        database_url=database_url,
        _env_file=None,
    )
    engine = make_engine(settings.resolved_database_url)
    desk = DeskStore(engine)
    key, _ = create_api_key(desk, "fuzz", Channel.APP)
    desk.add_agent("lin", "Lin", "agent", hash_password("correct horse battery"))
    engine.dispose()
    login = TokenSigner(load_secret(settings), settings.session_ttl_s).console("lin")
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    try:
        yield Target(app, {"Authorization": f"Bearer {key}"}, {COOKIE: login})
    finally:
        asgi.shutdown_lifespans()  # the transport started the app's lifespan; close the service now


@schema.parametrize()
def test_no_server_errors_and_documented_responses(case: schemathesis.Case[Any], target: Target) -> None:
    timeout = 0.5 if case.operation.path in _EVENT_STREAMS else 30
    # schemathesis adds its own headers to the dicts it is given: pass copies
    case.call_and_validate(
        headers=dict(target.headers), cookies=dict(target.cookies), checks=CHECKS, app=target.app, timeout=timeout
    )
