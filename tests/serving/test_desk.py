"""The human desk end to end over HTTP and WebSockets: handoff packet, queue, take over, reply, notes,
hand back, close; and the console's credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.intents import IntentModel
from core.settings import Settings
from core.types import HandoffStatus
from serving.app import create_app
from serving.auth import hash_password
from serving.service import KefuService


@pytest.fixture
def client(settings: Settings, intent_model: IntentModel) -> Iterator[TestClient]:
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    with TestClient(app) as test_client:
        service: KefuService = app.state.service
        service.desk.add_agent("lin", "Lin", "agent", hash_password("lin-password"))
        service.desk.add_agent("wu", "Wu", "agent", hash_password("wu-password"))
        yield test_client


def _customer(client: TestClient, api_key: str, customer: str = "C0002") -> dict[str, str]:
    token = client.post(
        "/v1/sessions", json={"customer_id": customer}, headers={"Authorization": f"Bearer {api_key}"}
    ).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def _say(client: TestClient, headers: dict[str, str], conversation: str, text: str) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{conversation}/messages", json={"text": text}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _agent(client: TestClient, user: str, password: str) -> TestClient:
    agent = TestClient(client.app)
    response = agent.post("/v1/console/login", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    return agent


def _next(ws: Any, kind: str) -> dict[str, Any]:
    for _ in range(20):
        frame: dict[str, Any] = ws.receive_json()
        if frame["type"] == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


def test_handoff_with_context_take_over_reply_hand_back(client: TestClient, api_key: str) -> None:
    customer = _customer(client, api_key)
    _say(client, customer, "h1", "Where is my order?")
    handed = _say(client, customer, "h1", "This is useless, I want to talk to a human agent")
    assert "escalate" in handed["events"] and handed["state"] == "handoff"

    lin = _agent(client, "lin", "lin-password")
    queue = lin.get("/v1/console/queue").json()
    assert [item["conversation_id"] for item in queue] == ["h1"]
    item = queue[0]
    assert item["status"] == "waiting" and item["tier"] and item["priority"] > 0
    detail = lin.get(f"/v1/console/handoffs/{item['id']}").json()
    packet = detail["packet"]
    assert "order_status" in packet["summary"] and "C0002" in packet["summary"]
    assert [i["intent"] for i in packet["intents"]] == ["order_status", "human_agent"]
    assert packet["orders"] and packet["orders"][0]["id"].startswith("KF")
    assert "list_recent_orders" in packet["tools"]
    assert [t["role"] for t in packet["transcript"]] == ["customer", "agent", "customer", "agent"]
    assert len(packet["confidence_trail"]) == 2

    with (
        client.websocket_connect(f"/v1/conversations/h1/ws?token={customer['Authorization'][7:]}") as customer_ws,
        lin.websocket_connect("/v1/console/ws") as console_ws,
    ):
        assert _next(console_ws, "queue")["items"][0]["id"] == item["id"]
        taken = lin.post(f"/v1/console/handoffs/{item['id']}/take")
        assert taken.status_code == 200 and taken.json()["status"] == "active"
        joined = _next(customer_ws, "human_joined")
        assert joined["agent"] == "Lin" and "Lin" in joined["text"]

        # Another agent cannot take it or answer in it.
        wu = _agent(client, "wu", "wu-password")
        clash = wu.post(f"/v1/console/handoffs/{item['id']}/take")
        assert clash.status_code == 409 and "lin" in clash.json()["detail"]
        assert wu.post(f"/v1/console/handoffs/{item['id']}/messages", json={"text": "hi"}).status_code == 403

        console_ws.send_json({"type": "reply", "handoff_id": item["id"], "text": "Hi, I am Lin. Let me check."})
        said = _next(customer_ws, "human_message")
        assert said == {"type": "human_message", "agent": "Lin", "text": "Hi, I am Lin. Let me check."}

        # While the human owns it the bot is silent, and the customer's words reach the console.
        customer_ws.send_json({"type": "message", "id": "c-9", "text": "Thanks, my phone is 13812345678"})
        assert _next(customer_ws, "ack")["id"] == "c-9"
        seen = _next(console_ws, "customer_message")
        assert seen["handoff_id"] == item["id"] and "Thanks" in seen["text"]
        assert "13812345678" not in seen["text"], "the console sees the redacted transcript"

        note = lin.post(f"/v1/console/handoffs/{item['id']}/notes", json={"text": "VIP, refund likely"})
        assert note.status_code == 200

        released = lin.post(f"/v1/console/handoffs/{item['id']}/release")
        assert released.status_code == 200 and released.json()["status"] == "returned"
        assert _next(customer_ws, "human_left")["text"]

    history = client.get("/v1/conversations/h1", headers=customer).json()
    roles = [m["role"] for m in history["messages"]]
    assert roles == ["customer", "agent", "customer", "agent", "notice", "human", "customer", "notice"]
    human = next(m for m in history["messages"] if m["role"] == "human")
    assert human["agent"] == "Lin" and human["text"] == "Hi, I am Lin. Let me check."
    assert "VIP, refund likely" not in str(history), "private notes never reach the customer"
    assert any("13812345678" in m["text"] for m in history["messages"]), "the customer sees their own words"
    assert history["handoff"] is None and history["state"] == "need_confirm"

    # Handed back: the bot answers again, with the whole history.
    again = _say(client, customer, "h1", "Where is my order?")
    assert again["route"] == "rules" and "KF" in again["reply"]
    detail = lin.get(f"/v1/console/handoffs/{item['id']}").json()
    assert [n["text"] for n in detail["notes"]] == ["VIP, refund likely"]
    assert lin.get("/v1/console/queue").json() == []


def test_close_ends_the_conversation(client: TestClient, api_key: str) -> None:
    customer = _customer(client, api_key, "C0001")
    _say(client, customer, "h2", "转人工")
    lin = _agent(client, "lin", "lin-password")
    handoff_id = lin.get("/v1/console/queue").json()[0]["id"]
    assert lin.post(f"/v1/console/handoffs/{handoff_id}/take").status_code == 200
    silent = _say(client, customer, "h2", "你好，在吗？")
    assert silent["route"] == "human" and silent["reply"] == ""
    closed = lin.post(f"/v1/console/handoffs/{handoff_id}/close")
    assert closed.status_code == 200 and closed.json()["status"] == HandoffStatus.CLOSED
    assert lin.post(f"/v1/console/handoffs/{handoff_id}/close").status_code == 409
    history = client.get("/v1/conversations/h2", headers=customer).json()
    assert history["state"] == "end" and history["messages"][-1]["role"] == "notice"
    assert "结束" in history["messages"][-1]["text"]
    fresh = _say(client, customer, "h2", "我的订单到哪了？")
    assert fresh["route"] == "rules" and fresh["reply"]


def test_console_needs_a_login(client: TestClient) -> None:
    assert client.get("/v1/console/queue").status_code == 401
    bad = client.post("/v1/console/login", json={"username": "lin", "password": "wrong"})
    unknown = client.post("/v1/console/login", json={"username": "nobody", "password": "wrong"})
    assert bad.status_code == unknown.status_code == 401
    assert bad.json()["detail"] == unknown.json()["detail"] == "wrong user name or password"
    client.cookies.set("kefu_console", "ka1.forged.token")
    assert client.get("/v1/console/me").status_code == 401
    with client.websocket_connect("/v1/console/ws") as ws:
        assert ws.receive_json()["status"] == 401


def test_a_disabled_agent_is_logged_out(client: TestClient) -> None:
    lin = _agent(client, "lin", "lin-password")
    assert lin.get("/v1/console/me").json()["name"] == "Lin"
    service: KefuService = client.app.state.service  # type: ignore[attr-defined]
    service.desk.set_agent_active("lin", False)
    assert lin.get("/v1/console/me").status_code == 401
    assert client.post("/v1/console/login", json={"username": "lin", "password": "lin-password"}).status_code == 401


def test_login_attempts_are_rate_limited(client: TestClient) -> None:
    codes = [
        client.post("/v1/console/login", json={"username": "lin", "password": f"guess-{n}"}).status_code
        for n in range(11)
    ]
    assert codes[:10] == [401] * 10 and codes[10] == 429


def test_priority_puts_angry_vips_first(client: TestClient, api_key: str) -> None:
    service: KefuService = client.app.state.service  # type: ignore[attr-defined]
    vip = next(c for c in ("C0001", "C0002", "C0003", "C0004", "C0005") if _tier(service, c) in ("vip", "gold"))
    calm = next(c for c in ("C0001", "C0002", "C0003", "C0004", "C0005") if _tier(service, c) == "standard")
    _say(client, _customer(client, api_key, calm), "p-calm", "I want to talk to a human")
    _say(client, _customer(client, api_key, vip), "p-vip", "This is ridiculous and unacceptable, get me a human now")
    lin = _agent(client, "lin", "lin-password")
    queue = lin.get("/v1/console/queue").json()
    assert [i["conversation_id"] for i in queue] == ["p-vip", "p-calm"]
    assert queue[0]["priority"] > queue[1]["priority"]


def _tier(service: KefuService, customer_id: str) -> str:
    customer = service.store.get_customer(customer_id)  # type: ignore[arg-type]
    return customer.tier.value if customer is not None else ""


def test_agents_see_what_a_waiting_customer_adds(client: TestClient, api_key: str) -> None:
    customer = _customer(client, api_key)
    _say(client, customer, "w1", "I want to talk to a human agent")
    lin = _agent(client, "lin", "lin-password")
    with lin.websocket_connect("/v1/console/ws") as console_ws:
        handoff_id = _next(console_ws, "queue")["items"][0]["id"]
        held = _say(client, customer, "w1", "It is about order KF1001, it never arrived")
        assert held["state"] == "handoff" and held["reply"], "the bot holds the line until someone takes over"
        seen = _next(console_ws, "customer_message")
    assert seen["handoff_id"] == handoff_id and "KF1001" in seen["text"]
