"""Satisfaction ratings: ``POST /v1/conversations/{id}/feedback`` stores 1-5 in the service log, for its owner only."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent.intents import IntentModel
from core.db import ConversationLogRow, make_engine
from core.desk import DeskStore
from core.settings import Settings
from core.types import Channel
from core.vault import generate_key
from serving.app import create_app
from serving.auth import create_api_key
from serving.service import KefuService


@dataclass(frozen=True)
class Shop:
    """The app, an API key, a session token for C0001 and one for C0002, each with a conversation."""

    client: TestClient
    engine: Engine
    key: dict[str, str]
    wang: dict[str, str]
    emma: dict[str, str]


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory,
    make_database_url: Callable[..., str],
    seeded_kb: Path,
    intent_model: IntentModel,
) -> Iterator[Shop]:
    """One app for the module; C0001 talked in ``fb-wang``, C0002 in ``fb-emma``."""
    data_dir = tmp_path_factory.mktemp("feedback") / "var"
    data_dir.mkdir()
    database_url = make_database_url(seeded=True)
    shutil.copytree(seeded_kb, data_dir / "kb")
    settings = Settings(
        data_dir=data_dir,
        cache_dir=data_dir.parent / "cache",
        vault_key=SecretStr(generate_key()),
        database_url=database_url,
        _env_file=None,
    )
    engine = make_engine(settings.resolved_database_url)
    api_key, _ = create_api_key(DeskStore(engine), "feedback", Channel.APP)
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    with TestClient(app) as client:
        key = {"Authorization": f"Bearer {api_key}"}
        tokens = {}
        for customer, conversation in (("C0001", "fb-wang"), ("C0002", "fb-emma")):
            session = client.post("/v1/sessions", json={"customer_id": customer}, headers=key)
            tokens[customer] = {"Authorization": f"Bearer {session.json()['token']}"}
            said = client.post(
                f"/v1/conversations/{conversation}/messages", json={"text": "hi"}, headers=tokens[customer]
            )
            assert said.status_code == 200, said.text
        yield Shop(client, engine, key, tokens["C0001"], tokens["C0002"])
    engine.dispose()


def _satisfaction(shop: Shop, conversation_id: str) -> int | None:
    with Session(shop.engine) as session:
        log = session.get(ConversationLogRow, conversation_id)
        assert log is not None
        return log.satisfaction


def test_a_customer_rates_their_conversation_and_a_new_rating_replaces_it(shop: Shop) -> None:
    response = shop.client.post("/v1/conversations/fb-emma/feedback", json={"rating": 4}, headers=shop.emma)
    assert response.status_code == 200, response.text
    assert response.json() == {"conversation_id": "fb-emma", "rating": 4}
    assert _satisfaction(shop, "fb-emma") == 4
    again = shop.client.post("/v1/conversations/fb-emma/feedback", json={"rating": 2}, headers=shop.emma)
    assert again.status_code == 200
    assert _satisfaction(shop, "fb-emma") == 2


def test_an_api_key_rates_for_the_customer_it_names(shop: Shop) -> None:
    unnamed = shop.client.post("/v1/conversations/fb-wang/feedback", json={"rating": 5}, headers=shop.key)
    assert unnamed.status_code == 401 and "customer_id is required" in unnamed.json()["detail"]
    named = shop.client.post(
        "/v1/conversations/fb-wang/feedback", json={"rating": 5, "customer_id": "C0001"}, headers=shop.key
    )
    assert named.status_code == 200
    assert _satisfaction(shop, "fb-wang") == 5


def test_a_seeded_conversation_is_rated_by_its_owner_only(shop: Shop) -> None:
    with Session(shop.engine) as session:
        seeded = session.get(ConversationLogRow, "seed-C0003-001")
        assert seeded is not None and seeded.seeded
        before = seeded.satisfaction
    stranger = {"rating": 1, "customer_id": "C0004"}
    assert (
        shop.client.post("/v1/conversations/seed-C0003-001/feedback", json=stranger, headers=shop.key).status_code
        == 404
    )
    assert _satisfaction(shop, "seed-C0003-001") == before
    owner = {"rating": 3, "customer_id": "C0003"}
    assert (
        shop.client.post("/v1/conversations/seed-C0003-001/feedback", json=owner, headers=shop.key).status_code == 200
    )
    assert _satisfaction(shop, "seed-C0003-001") == 3


def test_another_customers_conversation_reads_as_missing(shop: Shop) -> None:
    before = _satisfaction(shop, "fb-emma")
    response = shop.client.post("/v1/conversations/fb-emma/feedback", json={"rating": 1}, headers=shop.wang)
    assert response.status_code == 404 and "fb-emma" in response.json()["detail"]
    by_key = shop.client.post(
        "/v1/conversations/fb-emma/feedback", json={"rating": 1, "customer_id": "C0001"}, headers=shop.key
    )
    assert by_key.status_code == 404
    assert _satisfaction(shop, "fb-emma") == before


@pytest.mark.parametrize(
    ("conversation", "body", "reason"),
    [
        ("never-talked", {"rating": 5}, "no conversation 'never-talked'"),
        ("fb-wang", {"rating": 5, "customer_id": "C9999"}, "unknown customer"),
    ],
)
def test_unknown_conversations_and_customers_are_404(
    shop: Shop, conversation: str, body: dict[str, object], reason: str
) -> None:
    headers = shop.key if "customer_id" in body else shop.wang
    response = shop.client.post(f"/v1/conversations/{conversation}/feedback", json=body, headers=headers)
    assert response.status_code == 404
    assert reason in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"rating": "great"}, "rating"),
        ({}, "rating"),
        ({"rating": 5, "comment": "my phone is 13812345678"}, "comment"),
    ],
)
def test_a_bad_rating_is_422_with_the_field(shop: Shop, body: dict[str, object], field: str) -> None:
    before = _satisfaction(shop, "fb-wang")
    response = shop.client.post("/v1/conversations/fb-wang/feedback", json=body, headers=shop.wang)
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]
    assert _satisfaction(shop, "fb-wang") == before


def test_credentials_are_checked(shop: Shop) -> None:
    assert shop.client.post("/v1/conversations/fb-wang/feedback", json={"rating": 5}).status_code == 401
    forged = {"Authorization": "Bearer ks1.forged.token"}
    assert shop.client.post("/v1/conversations/fb-wang/feedback", json={"rating": 5}, headers=forged).status_code == 401
    # A session token acts for its own customer only: naming another is refused before anything is looked up.
    other = shop.client.post(
        "/v1/conversations/fb-emma/feedback", json={"rating": 1, "customer_id": "C0002"}, headers=shop.wang
    )
    assert other.status_code == 401 and "another customer" in other.json()["detail"]
