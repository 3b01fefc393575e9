"""The conversation API: credentials, sessions, REST and SSE messages, WebSocket, idempotency, limits, ops."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent.intents import IntentModel
from core.settings import Settings
from serving.app import create_app
from serving.conversations import pieces
from serving.logs import JsonFormatter
from serving.service import KefuService


def _app(settings: Settings, intent_model: IntentModel) -> TestClient:
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    return TestClient(app)


@pytest.fixture
def client(settings: Settings, intent_model: IntentModel) -> Iterator[TestClient]:
    with _app(settings, intent_model) as test_client:
        yield test_client


def _session(client: TestClient, api_key: str, customer: str = "C0002") -> str:
    response = client.post(
        "/v1/sessions", json={"customer_id": customer}, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_conversation_api_needs_a_credential(client: TestClient) -> None:
    body = {"text": "hello", "customer_id": "C0002"}
    missing = client.post("/v1/conversations/c1/messages", json=body)
    wrong = client.post("/v1/conversations/c1/messages", json=body, headers=_bearer("kf_nope_nope"))
    forged = client.post("/v1/conversations/c1/messages", json=body, headers=_bearer("ks1.eyJjIjoiQzAwMDIifQ.AAAA"))
    assert missing.status_code == wrong.status_code == forged.status_code == 401
    assert "missing credential" in missing.json()["detail"]
    assert "unknown or revoked" in wrong.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"


def test_api_keys_are_stored_hashed_and_can_be_revoked(client: TestClient, api_key: str) -> None:
    service: KefuService = client.app.state.service  # type: ignore[attr-defined]
    listed = service.desk.list_api_keys()
    assert len(listed) == 1 and listed[0].id in api_key
    with service.store.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT digest FROM api_keys").scalar_one()
    assert api_key not in stored and len(stored) == 64
    body = {"text": "hello", "customer_id": "C0002"}
    assert client.post("/v1/conversations/k1/messages", json=body, headers=_bearer(api_key)).status_code == 200
    service.desk.revoke_api_key(listed[0].id)
    assert client.post("/v1/conversations/k1/messages", json=body, headers=_bearer(api_key)).status_code == 401


def test_a_session_token_acts_only_for_its_customer(client: TestClient, api_key: str) -> None:
    token = _session(client, api_key, "C0002")
    ok = client.post("/v1/conversations/s1/messages", json={"text": "Where is my order?"}, headers=_bearer(token))
    assert ok.status_code == 200 and "KF" in ok.json()["reply"]
    other = client.post(
        "/v1/conversations/s1/messages", json={"text": "hi", "customer_id": "C0001"}, headers=_bearer(token)
    )
    assert other.status_code == 401 and "another customer" in other.json()["detail"]
    # Another customer's session cannot read or continue this conversation; it looks like it does not exist.
    stranger = _session(client, api_key, "C0001")
    assert client.get("/v1/conversations/s1", headers=_bearer(stranger)).status_code == 404
    history = client.get("/v1/conversations/s1", headers=_bearer(token)).json()
    assert [m["role"] for m in history["messages"]] == ["customer", "agent"]
    # A session token cannot mint sessions or read insights.
    assert client.post("/v1/sessions", json={"customer_id": "C0001"}, headers=_bearer(token)).status_code == 403
    nba = client.post("/v1/insights/next-best-action", json={"customer_id": "C0002"}, headers=_bearer(token))
    assert nba.status_code == 403


def test_a_retried_message_id_is_answered_once(client: TestClient, api_key: str) -> None:
    token = _session(client, api_key)
    body = {"text": "Where is my order?", "message_id": "m-1"}
    first = client.post("/v1/conversations/r1/messages", json=body, headers=_bearer(token)).json()
    again = client.post("/v1/conversations/r1/messages", json=body, headers=_bearer(token)).json()
    assert again["reply"] == first["reply"]
    history = client.get("/v1/conversations/r1", headers=_bearer(token)).json()["messages"]
    assert [m["role"] for m in history] == ["customer", "agent"]
    service: KefuService = client.app.state.service  # type: ignore[attr-defined]
    assert len(service.audit("r1", "C0002")) == 1


def test_the_reply_streams_over_sse_after_the_turn(client: TestClient, api_key: str) -> None:
    token = _session(client, api_key)
    with client.stream(
        "POST",
        "/v1/conversations/sse1/messages",
        json={"text": "Where is my order?", "message_id": "s-1"},
        headers={**_bearer(token), "Accept": "text/event-stream"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["ack", "typing"] and kinds[-1] == "reply"
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    assert streamed == events[-1]["reply"] and "KF" in streamed
    assert kinds.count("token") > 3


def test_websocket_turns_errors_and_history(client: TestClient, api_key: str) -> None:
    token = _session(client, api_key)
    with client.websocket_connect(f"/v1/conversations/ws1/ws?token={token}") as ws:
        ws.send_text("not json")
        assert ws.receive_json() == {
            "type": "error",
            "id": None,
            "status": 422,
            "detail": "frames must be JSON objects",
        }
        ws.send_json({"type": "message", "id": "w-1", "text": ""})
        error = ws.receive_json()
        assert error["type"] == "error" and error["status"] == 422 and "text" in error["detail"]
        ws.send_json({"type": "message", "id": "w-2", "text": "Where is my order?", "lang": "en"})
        frames = [ws.receive_json()]
        while frames[-1]["type"] != "reply":
            frames.append(ws.receive_json())
    assert [f["type"] for f in frames[:2]] == ["ack", "typing"]
    reply = frames[-1]
    assert reply["id"] == "w-2" and reply["intent"] == "order_status"
    assert "".join(f["text"] for f in frames if f["type"] == "token") == reply["reply"]
    history = client.get("/v1/conversations/ws1", headers=_bearer(token)).json()
    assert [m["role"] for m in history["messages"]] == ["customer", "agent"]


def test_websocket_refuses_a_bad_token(client: TestClient) -> None:
    with client.websocket_connect("/v1/conversations/ws2/ws?token=ks1.bad.token") as ws:
        frame = ws.receive_json()
    assert frame["type"] == "error" and frame["status"] == 401


def test_rate_limits_per_conversation_and_per_key(settings: Settings, intent_model: IntentModel, api_key: str) -> None:
    limited = settings.model_copy(update={"rate_per_conversation_per_min": 2, "rate_per_key_per_min": 5})
    with _app(limited, intent_model) as client:
        headers = _bearer(api_key)
        body = {"text": "hi", "customer_id": "C0002"}
        codes = [client.post("/v1/conversations/rl/messages", json=body, headers=headers).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        refused = client.post("/v1/conversations/rl/messages", json=body, headers=headers)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "conversation" in refused.json()["detail"] and "2/min" in refused.json()["detail"]
        # Four requests so far with this key; the fifth passes (another conversation), the sixth does not.
        assert client.post("/v1/conversations/rl2/messages", json=body, headers=headers).status_code == 200
        other = client.post("/v1/conversations/rl3/messages", json=body, headers=headers)
        assert other.status_code == 429 and "credential" in other.json()["detail"]


def test_cors_allows_only_the_configured_origins(settings: Settings, intent_model: IntentModel) -> None:
    configured = settings.model_copy(update={"cors_origins": ["https://shop.example.com"]})
    with _app(configured, intent_model) as client:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = client.options(
            "/v1/conversations/x/messages", headers={"Origin": "https://shop.example.com", **preflight}
        )
        denied = client.options("/v1/conversations/x/messages", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert "access-control-allow-origin" not in denied.headers


def test_demo_session_only_for_demo_customers_and_only_when_enabled(
    settings: Settings, intent_model: IntentModel
) -> None:
    with _app(settings, intent_model) as client:
        assert client.post("/v1/demo/session", json={"customer_id": "C0001"}).status_code == 200
        assert client.post("/v1/demo/session", json={"customer_id": "C0005"}).status_code == 403
        assert client.get("/demo/shop").status_code == 200
    with _app(settings.model_copy(update={"demo_pages": False}), intent_model) as client:
        assert client.post("/v1/demo/session", json={"customer_id": "C0001"}).status_code == 403
        assert client.get("/demo/shop").status_code == 404
        assert client.get("/v1/demo/customers").status_code == 404


def test_readyz_and_metrics(client: TestClient, api_key: str) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["database"] == "ok" and body["vector_store"].startswith("ok") and body["llm"] == "none (rules only)"
    token = _session(client, api_key)
    client.post("/v1/conversations/m1/messages", json={"text": "Where is my order?"}, headers=_bearer(token))
    client.post("/v1/conversations/m1/messages", json={"text": "I want a human agent"}, headers=_bearer(token))
    client.post("/v1/conversations/m1/messages", json={"text": ""}, headers=_bearer(token))
    text = client.get("/metrics").text
    assert 'kefu_turns_total{channel="app",route="rules"} 2.0' in text
    assert 'kefu_node_seconds_count{node="redact"} 2.0' in text
    assert 'kefu_intents_total{intent="order_status",stage="classifier"} 1.0' in text
    assert "kefu_handoffs_total 1.0" in text
    assert 'kefu_fallbacks_total{kind="handoff"} 1.0' in text
    assert 'kefu_rejected_requests_total{status="422"} 1.0' in text


def test_readyz_is_503_when_the_database_is_gone(client: TestClient) -> None:
    service: KefuService = client.app.state.service  # type: ignore[attr-defined]
    service.store.engine.dispose()
    service.store._engine = __import__("sqlalchemy").create_engine("sqlite:////nonexistent/dir/kefu.db")
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["database"].startswith("down")


def test_json_logs_carry_no_customer_text_or_tokens(
    client: TestClient, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = _session(client, api_key)
    secret_text = "My phone is 13812345678, I want a human agent now"
    with caplog.at_level(logging.DEBUG):
        client.post("/v1/conversations/log1/messages", json={"text": secret_text}, headers=_bearer(token))
        with client.websocket_connect(f"/v1/conversations/log1/ws?token={token}"):
            pass
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert lines, "the turn should log something (the handoff)"
    joined = "\n".join(lines)
    assert "13812345678" not in joined and "I want a human" not in joined and token not in joined
    assert all(json.loads(line)["level"] for line in lines)
    handoff = [json.loads(line) for line in lines if "handoff opened" in line]
    assert handoff and handoff[0]["conversation_id"] == "log1"
    masked = formatter.format(
        logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "GET /ws?token=%s HTTP/1.1", (token,), None)
    )
    assert token not in masked and "token=***" in masked


def test_pieces_rejoin_to_the_text() -> None:
    for text in ("Your order KF1001 has shipped.", "您的订单 KF1001 已发货，预计明天送达。", "  spaced\n\nlines "):
        assert "".join(pieces(text)) == text and len(pieces(text)) > 1
