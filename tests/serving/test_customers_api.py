"""``GET /v1/customers/{id}/profile`` over HTTP against the real app and the seeded demo store.

The insight models are another module's work; a tiny fake ``Insights`` stands in for them here,
at the boundary the route codes against (``customer_insight``).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from agent.intents import IntentModel
from core.audit import AuditLog
from core.settings import Settings
from core.types import Channel, Contribution, ConversationId, CustomerId, CustomerInsight, Prediction, TurnAudit
from core.vault import generate_key
from serving.app import create_app
from serving.auth import create_api_key
from serving.service import KefuService

T0 = datetime(2026, 10, 20, 9, 0)


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
    make_database_url: Callable[..., str],
    seeded_kb: Path,
    intent_model: IntentModel,
) -> Iterator[TestClient]:
    """The real app (rules only) on one copy of the seeded store for the whole module."""
    root = tmp_path_factory.mktemp("customers")
    data_dir = root / "var"
    data_dir.mkdir()
    database_url = make_database_url(seeded=True)
    shutil.copytree(seeded_kb, data_dir / "kb")
    settings = Settings(  # type: ignore[call-arg]
        data_dir=data_dir,
        cache_dir=root / "cache",
        vault_key=SecretStr(generate_key()),
        database_url=database_url,
        _env_file=None,
    )
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def service(client: TestClient) -> KefuService:
    found: KefuService = client.app.state.service  # type: ignore[attr-defined]
    return found


@pytest.fixture(scope="module")
def key(service: KefuService) -> tuple[str, dict[str, str]]:
    """An API key's id and its request headers."""
    secret, listing = create_api_key(service.desk, "profile-tests", Channel.APP)
    return listing.id, {"Authorization": f"Bearer {secret}"}


def _session(client: TestClient, key: tuple[str, dict[str, str]], customer: str) -> dict[str, str]:
    response = client.post("/v1/sessions", json={"customer_id": customer}, headers=key[1])
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _profile(client: TestClient, customer: str, headers: dict[str, str], status: int = 200) -> dict[str, Any]:
    response = client.get(f"/v1/customers/{customer}/profile", headers=headers)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _turn(conversation: str, customer: str, minute: int, intent: str, **overrides: Any) -> TurnAudit:
    fields: dict[str, Any] = {
        "conversation_id": ConversationId(conversation),
        "customer_id": CustomerId(customer),
        "created_at": datetime(2026, 10, 20, 9, minute),
        "intent": intent,
        "confidence": 0.9,
        "stage": "classifier",
        "thresholds": "accept=0.6",
        "decision": "answer",
        "fallback": None,
        "emotion": "calm",
        "state": "answer",
        "events": [],
        "tools": [],
        "route": "rules",
        "llm_calls": 0,
        "latency_ms": 12.0,
        "channel": "web",
        "lang": "zh",
        "question": "…",
    }
    return TurnAudit(**{**fields, **overrides})


class FakeInsights:
    """Stands in for ``insights.profile.Insights`` until it lands: one known customer, scores or not."""

    def __init__(self, customer_id: str, *, trained: bool = True, scored: bool = True, broken: bool = False) -> None:
        self.customer_id = customer_id
        self.trained = trained
        self.scored = scored
        self.broken = broken
        self.asked: list[str] = []

    @property
    def models(self) -> dict[str, object]:
        """The loaded models by target; only their presence matters to the route."""
        return {"churn_30d": object(), "repurchase_3d": object()} if self.trained else {}

    def customer_insight(self, customer_id: CustomerId, at: datetime | None = None) -> CustomerInsight | None:
        self.asked.append(customer_id)
        if self.broken:
            raise OSError("model file truncated")
        if customer_id != self.customer_id:
            return None
        contributions = [
            Contribution(feature=f, value=v, effect=e)
            for f, v, e in [("recency_days", 95.0, 1.2), ("orders_365d", 2.0, 0.6), ("complaints_365d", 1.0, 0.2)]
            + [(f"extra_{n}", 0.0, 0.01) for n in range(4)]
        ]
        churn = Prediction(target="churn_30d", score=0.71, contributions=contributions, model_version="gb-1")
        repurchase = Prediction(target="repurchase_3d", score=0.04, contributions=contributions, model_version="gb-1")
        return CustomerInsight(
            customer_id=customer_id,
            at=T0,
            features={"recency_days": 95.0, "frequency_365d": 2.0, "monetary_365d": 1598.0, "return_rate": 0.5},
            rfm="R2F2M3",
            segment="at_risk",
            churn=churn if self.trained and self.scored else None,
            repurchase=repurchase if self.trained and self.scored else None,
        )


def test_an_api_key_reads_the_whole_profile(
    client: TestClient, service: KefuService, key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "insights", None)  # a service built without the insight models
    body = _profile(client, "C0002", key[1])
    expected = service.store.customer_profile(CustomerId("C0002"))
    assert expected is not None
    customer = body["customer"]
    assert customer["id"] == "C0002" and customer["name"] == expected.customer.name
    assert customer["tier"] == "gold" and customer["lang"] == "en"
    assert (customer["email"], customer["phone"]) == (expected.customer.email, expected.customer.phone)
    orders = body["orders"]
    assert orders["count"] == expected.order_count > 0
    assert orders["lifetime_value"] == expected.lifetime_value
    newest = service.store.list_orders(CustomerId("C0002"), limit=5)
    assert [o["id"] for o in orders["last_orders"]] == [o.id for o in newest]
    assert all(o["items"] and " x " in o["items"][0] for o in orders["last_orders"])
    assert [t["id"] for t in body["open_tickets"]] == [t.id for t in expected.open_tickets]
    assert set(body["conversations"]) >= {"count", "intents", "handoffs", "mean_satisfaction", "channels"}
    # Without the insight models the features and scores are null, and the reason is given.
    assert body["features"] is body["churn"] is body["repurchase"] is body["segment"] is None
    assert body["models"] == "not trained: run kefu insights train"


def test_a_session_reads_its_own_profile_without_contact_details(client: TestClient, key: Any) -> None:
    body = _profile(client, "C0001", _session(client, key, "C0001"))
    assert body["customer"]["id"] == "C0001" and body["customer"]["tier"] == "vip"
    assert body["customer"]["email"] is None and body["customer"]["phone"] is None
    assert body["orders"]["count"] > 0


def test_a_session_cannot_read_another_customers_profile(client: TestClient, service: KefuService, key: Any) -> None:
    own = _session(client, key, "C0001")
    other = service.store.customer_profile(CustomerId("C0002"))
    assert other is not None
    before = AuditLog(service.store.engine).query(action="view_profile", target="C0002", limit=1000)
    response = client.get("/v1/customers/C0002/profile", headers=own)
    assert response.status_code == 403
    assert response.json() == {"detail": "a session token may read only its own customer's profile"}
    for secret in [other.customer.name, other.customer.email, other.customer.phone, other.customer.city]:
        assert secret not in response.text
    assert all(order.id not in response.text for order in other.recent_orders)
    # Unknown ids read the same, so a session cannot probe which customers exist.
    unknown = client.get("/v1/customers/C9999/profile", headers=own)
    assert unknown.status_code == 403 and unknown.json() == response.json()
    after = AuditLog(service.store.engine).query(action="view_profile", target="C0002", limit=1000)
    assert after == before, "a refused read shows nothing and records no view"


def test_unknown_customer_and_missing_credentials(client: TestClient, key: Any) -> None:
    assert _profile(client, "C9999", key[1], 404) == {"detail": "unknown customer 'C9999'"}
    assert client.get("/v1/customers/C0001/profile").status_code == 401
    forged = {"Authorization": "Bearer ks1.forged.x"}
    assert client.get("/v1/customers/C0001/profile", headers=forged).status_code == 401
    assert client.get("/v1/customers/C0001;drop/profile", headers=key[1]).status_code == 422


def test_every_read_is_audited(client: TestClient, service: KefuService, key: Any) -> None:
    audit = AuditLog(service.store.engine)
    start = len(audit.query(action="view_profile", limit=1000))
    _profile(client, "C0003", key[1])
    _profile(client, "C0004", _session(client, key, "C0004"))
    rows = audit.query(action="view_profile", limit=1000)
    assert len(rows) == start + 2
    assert [(r.actor, r.role, r.target) for r in rows[:2]] == [
        ("session:C0004", "customer", "C0004"),
        (f"key:{key[0]}", "key", "C0003"),
    ]


def test_the_conversation_history_comes_from_the_service_log(
    client: TestClient, service: KefuService, key: Any
) -> None:
    guest = service.desk.channel_customer(Channel.WECHAT, "openid-profile-1")
    store = service.store
    for turn in [
        _turn("pc-1", guest, 1, "order_status"),
        _turn("pc-1", guest, 2, "complaint", emotion="angry", state="handoff", fallback="handoff: angry customer"),
        _turn("pc-2", guest, 10, "product_recommendation", channel="wechat"),
        _turn("pc-2", guest, 11, "purchase", channel="wechat", state="close_deal"),
        _turn("pc-3", guest, 20, "order_status", emotion="dissatisfied", fallback="unsure: clarifying question"),
    ]:
        store.record_turn(turn)
    store.rate_conversation(ConversationId("pc-2"), guest, 5)
    store.rate_conversation(ConversationId("pc-3"), guest, 2)

    history = _profile(client, guest, key[1])["conversations"]
    assert history["count"] == 3 and history["turns"] == 5
    assert history["intents"] == {"order_status": 2, "complaint": 1, "product_recommendation": 1, "purchase": 1}
    assert history["negative_turns"] == 2 and history["fallback_turns"] == 2
    assert history["handoffs"] == 1 and history["handoff_reasons"] == {"angry customer": 1}
    assert history["conversions"] == 1
    assert history["mean_satisfaction"] == 3.5 and history["rated"] == 2
    assert history["channels"] == {"web": 2, "wechat": 1}
    assert [c["conversation_id"] for c in history["recent"]] == ["pc-3", "pc-2", "pc-1"]
    assert history["recent"][2]["handoff_reason"] == "angry customer"
    assert history["last_at"] == "2026-10-20T09:20:00"


def test_insight_scores_with_their_top_contributions(
    client: TestClient, service: KefuService, key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeInsights("C0002")
    monkeypatch.setattr(service, "insights", fake)
    body = _profile(client, "C0002", key[1])
    assert fake.asked == ["C0002"]
    assert body["models"] == "trained"
    assert body["segment"] == "at_risk" and body["rfm"] == "R2F2M3"
    assert body["features"]["recency_days"] == 95.0 and body["insight_at"] == "2026-10-20T09:00:00"
    churn = body["churn"]
    assert churn["score"] == 0.71 and churn["model_version"] == "gb-1"
    assert len(churn["top_contributions"]) == 5
    assert churn["top_contributions"][0] == {"feature": "recency_days", "value": 95.0, "effect": 1.2}
    assert body["repurchase"]["score"] == 0.04

    monkeypatch.setattr(service, "insights", FakeInsights("C0002", trained=False))
    untrained = _profile(client, "C0002", key[1])
    assert untrained["segment"] == "at_risk" and untrained["features"] is not None
    assert untrained["churn"] is None and untrained["repurchase"] is None
    assert untrained["models"] == "not trained: run kefu insights train"

    # Trained, but this customer has no score (the models score customers with an order).
    monkeypatch.setattr(service, "insights", FakeInsights("C0002", scored=False))
    unscored = _profile(client, "C0002", key[1])
    assert unscored["churn"] is None and unscored["models"].startswith("trained; no score for this customer")


def test_the_real_insight_module_fills_the_features_before_any_training(
    client: TestClient, service: KefuService, key: Any
) -> None:
    assert service.insights is not None and not service.insights.models, "the test store has no trained models"
    body = _profile(client, "C0001", key[1])
    assert body["features"] and body["features"]["orders_365d"] >= 0
    assert re.fullmatch(r"R[1-5]F[1-5]M[1-5]", body["rfm"])
    assert body["churn"] is None and body["repurchase"] is None
    assert body["models"] == "not trained: run kefu insights train"


def test_broken_insight_models_leave_the_rest_of_the_profile(
    client: TestClient, service: KefuService, key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "insights", FakeInsights("C0002", broken=True))
    body = _profile(client, "C0002", key[1])
    assert body["churn"] is None and body["features"] is None
    assert body["models"].startswith("unavailable")
    assert body["orders"]["count"] > 0
