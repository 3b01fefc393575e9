"""The insight routes over HTTP: segments for API keys only, next-best-action with scores and drivers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.intents import IntentModel
from core.db import make_engine
from core.settings import Settings
from core.store import SqlStore
from core.types import CustomerId, TicketStatus, Tier
from insights.pipeline import train_models
from insights.profile import Insights
from knowledge.nba import CHURN_RISK_THRESHOLD, REPURCHASE_THRESHOLD
from serving.app import create_app
from serving.service import KefuService


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, seeded_db: Path) -> Path:
    """Both models trained once on a copy of the seeded store (the tests' stores are copies of the same)."""
    root = tmp_path_factory.mktemp("insights-api")
    shutil.copy(seeded_db, root / "kefu.db")
    engine = make_engine(f"sqlite:///{root / 'kefu.db'}")
    train_models(engine, root / "models")
    engine.dispose()
    return root / "models"


@pytest.fixture
def client(settings: Settings, intent_model: IntentModel, api_key: str, model_dir: Path) -> Iterator[TestClient]:
    local = settings.model_copy(update={"insights_dir": model_dir})
    app = create_app(local, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as test_client:
        yield test_client


def _session(client: TestClient, customer: str) -> dict[str, str]:
    token = client.post("/v1/sessions", json={"customer_id": customer}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def test_segments_need_an_api_key(client: TestClient) -> None:
    response = client.get("/v1/insights/segments")
    assert response.status_code == 200, response.text
    body = response.json()
    names = [segment["name"] for segment in body["segments"]]
    assert len(names) == len(set(names)) == 5
    assert sum(segment["size"] for segment in body["segments"]) == body["customers"] == 220
    assert all(segment["label_zh"] and segment["description"] for segment in body["segments"])
    assert body["at"].startswith("2026-11-01")

    as_customer = client.get("/v1/insights/segments", headers=_session(client, "C0002"))
    assert as_customer.status_code == 403 and "API key" in as_customer.json()["detail"]
    anonymous = client.get("/v1/insights/segments", headers={"Authorization": ""})
    assert anonymous.status_code == 401


def test_next_best_action_carries_scores_and_drivers(client: TestClient, settings: Settings, model_dir: Path) -> None:
    engine = make_engine(settings.resolved_database_url)
    insights, store = Insights(engine, model_dir), SqlStore(engine)

    def no_ticket_not_gold(customer: str) -> bool:
        """Rules 1 and 4 stay quiet: no open ticket, and not a gold or VIP member."""
        found, profile = store.get_customer(CustomerId(customer)), store.customer_profile(CustomerId(customer))
        return (
            found is not None
            and found.tier in (Tier.STANDARD, Tier.SILVER)
            and profile is not None
            and all(t.status is TicketStatus.RESOLVED for t in profile.open_tickets)
        )

    def ask(customer: str) -> dict[str, Any]:
        response = client.post("/v1/insights/next-best-action", json={"customer_id": customer, "lang": "en"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body["scores"]) == {"churn_30d", "repurchase_3d"}
        return body

    scored = [insights.customer_insight(CustomerId(f"C{n:04d}")) for n in range(1, 221)]
    candidates = [i for i in scored if i is not None and i.churn and no_ticket_not_gold(i.customer_id)]
    at_risk = [i for i in candidates if i.churn and i.churn.score >= CHURN_RISK_THRESHOLD]
    likely = [i for i in candidates if i.repurchase and i.repurchase.score >= REPURCHASE_THRESHOLD]
    assert at_risk and likely

    # A fresh purchase's accessory (rule 3) may outrank a score; some customers must get the score's offer.
    offers = [(i, body) for i in at_risk[:6] if (body := ask(i.customer_id))["action"] == "retention_offer"]
    assert offers, [(i.customer_id, ask(i.customer_id)["action"]) for i in at_risk[:6]]
    for insight, body in offers:
        assert insight.churn is not None
        assert body["scores"]["churn_30d"] == pytest.approx(insight.churn.score)
        assert body["drivers"][0] == f"churn_30d={insight.churn.score:.2f}"
        raising = [c.feature for c in insight.churn.contributions if c.effect > 0]
        assert raising[0] in body["rationale"] and raising[0] in body["drivers"][1]

    picks = [(i, b) for i in likely[:6] if (b := ask(i.customer_id))["drivers"][0].startswith("repurchase_3d=")]
    assert picks
    for insight, body in picks:
        assert insight.repurchase is not None
        assert body["action"] in {"recommend_product", "recommend_accessory"} and body["product_id"]
        assert body["drivers"][0] == f"repurchase_3d={insight.repurchase.score:.2f}"
        assert "←" in body["drivers"][-1]  # the graph path
    engine.dispose()
