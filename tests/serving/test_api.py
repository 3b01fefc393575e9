"""The HTTP API: happy path, history, and 4xx with a reason for every kind of bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent.intents import IntentModel
from core.settings import Settings
from serving.app import create_app
from serving.service import KefuService


@pytest.fixture
def client(settings: Settings, intent_model: IntentModel, api_key: str) -> Iterator[TestClient]:
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as test_client:
        yield test_client


def test_chat_and_history(client: TestClient) -> None:
    response = client.post("/v1/chat", json={"conversation_id": "api-1", "customer_id": "C0002", "text": "hello"})
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "need_confirm"
    assert body["intent"] == "greeting"
    assert body["route"] == "rules"
    assert body["reply"]
    history = client.get("/v1/conversations/api-1", params={"customer_id": "C0002"}).json()
    assert history["state"] == "need_confirm"
    assert [m["role"] for m in history["messages"]] == ["customer", "agent"]


def test_index_page_is_the_web_chat(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "/v1/chat" in page.text and "<form" in page.text


def test_demo_customers_list_their_orders(client: TestClient) -> None:
    customers = client.get("/v1/demo/customers").json()
    assert [c["id"] for c in customers] == ["C0001", "C0002"]
    assert all(c["recent_orders"] for c in customers)


def test_health_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["llm"] == "none (rules only)"


def test_openapi_documents_the_chat_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/chat" in spec["paths"]
    assert "examples" in str(spec["components"]["schemas"]["ChatRequest"])


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        ({"conversation_id": "a", "customer_id": "C0001", "text": ""}, 422, "text"),
        ({"conversation_id": "a", "customer_id": "C0001", "text": "x" * 5000}, 422, "text"),
        ({"conversation_id": "a", "customer_id": "C9999", "text": "hi"}, 404, "unknown customer"),
        ({"conversation_id": "a b/c", "customer_id": "C0001", "text": "hi"}, 422, "conversation_id"),
        ({"conversation_id": "a", "customer_id": "C0001"}, 422, "text"),
        ({"conversation_id": "a", "customer_id": "C0001", "text": "hi", "channel": "fax"}, 422, "channel"),
        ({"conversation_id": "a", "customer_id": "C0001", "text": "hi", "lang": "fr"}, 422, "lang"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(
    client: TestClient, payload: dict[str, str], status: int, reason: str
) -> None:
    response = client.post("/v1/chat", json=payload)
    assert response.status_code == status
    assert reason in str(response.json()["detail"])


def test_oversized_body_is_refused_before_parsing(client: TestClient) -> None:
    body = '{"conversation_id": "a", "customer_id": "C0001", "text": "' + "x" * 100_000 + '"}'
    response = client.post("/v1/chat", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_malformed_json_is_a_422_with_a_reason(client: TestClient) -> None:
    response = client.post("/v1/chat", content=b'{"conversation_id": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "JSON" in str(response.json()["detail"])


def test_history_of_someone_elses_conversation_is_404(client: TestClient) -> None:
    client.post("/v1/chat", json={"conversation_id": "api-2", "customer_id": "C0001", "text": "你好"})
    response = client.get("/v1/conversations/api-2", params={"customer_id": "C0002"})
    assert response.status_code == 404


def test_audit_endpoint(client: TestClient) -> None:
    client.post("/v1/chat", json={"conversation_id": "api-audit", "customer_id": "C0002", "text": "hello there"})
    entries = client.get("/v1/conversations/api-audit/audit", params={"customer_id": "C0002"}).json()
    assert len(entries) == 1
    assert {"intent", "confidence", "stage", "thresholds", "decision", "fallback"} <= set(entries[0])
    assert client.get("/v1/conversations/api-audit/audit", params={"customer_id": "C0001"}).status_code == 404
