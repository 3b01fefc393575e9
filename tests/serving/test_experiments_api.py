"""Experiments through the service: sticky variants in the records, the report API and CLI, insights in turns."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import SystemMessage
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from agent.intents import IntentModel
from core.db import ConversationLogRow, TurnAuditRow, make_engine
from core.errors import ConfigError
from core.settings import Settings
from core.types import CustomerId, CustomerInsight
from insights.experiments import Experiments
from prompts import load_prompt
from serving.app import create_app
from serving.cli import app as cli_app
from serving.service import KefuService
from tests.fakes import ScriptedChatModel, ScriptedIntents, echo_facts, sure

Factory = Callable[..., KefuService]

EXAMPLE = Path(str(resources.files("insights").joinpath("experiments.example.toml")))
INTENTS = {"status": sure("order_status"), "complaint": sure("complaint")}
# The example's pinned assignment (tests/insights/test_experiments.py): C0001 standard, C0002 concise.
ARMS = {"C0001": "reply_style:standard", "C0002": "reply_style:concise"}


def _rows(service: KefuService, row: Any, conversations: set[str]) -> list[Any]:
    """This test's rows (the demo seed writes its own history too)."""
    with Session(service.store.engine) as session:
        return list(session.scalars(select(row).where(row.conversation_id.in_(conversations))))


def test_each_customer_keeps_one_variant_and_every_record_carries_it(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents(INTENTS), experiments_file=EXAMPLE)
    assert service.experiments is not None
    assert {c: service.experiments.assign(CustomerId(c)) for c in ARMS} == ARMS
    for conversation, customer in (("x1", "C0001"), ("x2", "C0002"), ("x3", "C0002")):
        service.chat(conversation, customer, "status of my orders")
    audits = {(row.conversation_id, row.variant) for row in _rows(service, TurnAuditRow, {"x1", "x2", "x3"})}
    assert audits == {("x1", ARMS["C0001"]), ("x2", ARMS["C0002"]), ("x3", ARMS["C0002"])}
    logs = {row.conversation_id: row.variant for row in _rows(service, ConversationLogRow, {"x1", "x2", "x3"})}
    assert logs == {"x1": ARMS["C0001"], "x2": ARMS["C0002"], "x3": ARMS["C0002"]}


def test_the_variant_changes_the_reply_prompt_through_the_service(make_service: Factory) -> None:
    model = ScriptedChatModel([echo_facts, echo_facts])
    service = make_service(model, ScriptedIntents(INTENTS), experiments_file=EXAMPLE)
    for customer in ("C0001", "C0002"):
        result = service.chat(f"p-{customer}", customer, "status of my orders", lang=None)
        assert result.route == "llm"
    model.assert_complete()
    standard, concise = (call.messages[0] for call in model.calls)
    assert isinstance(standard, SystemMessage) and isinstance(concise, SystemMessage)
    assert standard.text == load_prompt("respond", "en")
    assert concise.text == load_prompt("respond.concise", "en")


def test_without_a_file_no_variant_is_recorded(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents(INTENTS))
    assert service.experiments is not None and service.experiments.active is None
    service.chat("n1", "C0001", "status of my orders")
    assert [row.variant for row in _rows(service, TurnAuditRow, {"n1"})] == [None]


def test_a_variant_the_policy_refuses_stops_the_service(make_service: Factory, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        "[experiments.t.variants.a]\n[experiments.t.variants.b]\npolicy = { clarify_limit = 0 }\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=rf"experiments file {path}: variant t:b policy: .*clarify_limit"):
        make_service(intents=ScriptedIntents(INTENTS), experiments_file=path)


def _insight(customer: str, segment: str) -> CustomerInsight:
    return CustomerInsight(
        customer_id=CustomerId(customer), at=datetime(2026, 11, 1, 12), features={}, rfm="R5F5M5", segment=segment,
        churn=None, repurchase=None,
    )  # fmt: skip


def test_the_customers_insight_reaches_the_turn_and_the_audit(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents(INTENTS))
    # Stands in for insights.profile.Insights (its own tests cover it): one method, the customer's insight.
    service.insights = SimpleNamespace(customer_insight=lambda customer_id: _insight(customer_id, "champions"))
    result = service.chat("i1", "C0002", "I have a complaint about the courier")
    assert "¥20 coupon" in result.reply
    (audit,) = service.audit("i1", "C0002")
    assert audit.decision.endswith("offer vip_recovery (segment champions; intent complaint)")


def test_a_failing_insight_lookup_leaves_the_turn_alone(
    make_service: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_customer_id: str) -> CustomerInsight:
        raise RuntimeError("models directory unreadable")

    service = make_service(intents=ScriptedIntents(INTENTS))
    service.insights = SimpleNamespace(customer_insight=broken)
    with caplog.at_level(logging.ERROR, logger="serving.service"):
        result = service.chat("i2", "C0002", "I have a complaint about the courier")
    assert result.state == "answer" and "coupon" not in result.reply
    assert "customer insight for C0002 unavailable" in caplog.text


# -- the report: API and CLI -------------------------------------------------------------------


@pytest.fixture
def experiments_settings(settings: Settings) -> Settings:
    local = settings.model_copy(update={"experiments_file": EXAMPLE})
    engine = make_engine(local.resolved_database_url)
    with Session(engine) as session, session.begin():
        for n in range(80):
            variant = "reply_style:standard" if n % 2 else "reply_style:concise"
            at = datetime(2026, 10, 1, 9, n % 60)
            session.add(
                ConversationLogRow(
                    conversation_id=f"ab-{n}", customer_id=f"C{n % 220 + 1:04d}", channel="web", lang="en",
                    started_at=at, last_at=at, turns=2, intents={"order_status": 2}, negative_turns=0,
                    fallback_turns=0, handoff_reason=None if n % 10 else "customer asked for a human",
                    reached_close_deal=n % 5 == 0, satisfaction=None, variant=variant, seeded=False,
                )
            )  # fmt: skip
    engine.dispose()
    return local


@pytest.fixture
def client(experiments_settings: Settings, intent_model: IntentModel, api_key: str) -> Iterator[TestClient]:
    app = create_app(
        experiments_settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model)
    )
    with TestClient(app) as test_client:
        yield test_client


def test_the_report_api_needs_an_api_key(client: TestClient, api_key: str) -> None:
    key = {"Authorization": f"Bearer {api_key}"}
    response = client.get("/v1/insights/experiments", headers=key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["file"] == str(EXAMPLE) and body["active"] == "reply_style"
    reply_style, vip_offers = body["experiments"]
    assert [(v["variant"], v["conversations"]) for v in reply_style["variants"]] == [("standard", 40), ("concise", 40)]
    # Concise (even n) had every 10th conversation handed off: 8 of 40; standard none.
    assert [v["containment_rate"] for v in reply_style["variants"]] == [1.0, 0.8]
    containment = next(c for c in reply_style["comparisons"] if c["metric"] == "containment")
    assert containment["difference"] == -0.2 and containment["p_value"] is not None
    assert containment["test"] == "Fisher exact"  # 8 handoffs in 80: an expected count of 4 per arm
    satisfaction = next(c for c in reply_style["comparisons"] if c["metric"] == "satisfaction")
    assert satisfaction["verdict"] == "not_enough_data"
    assert vip_offers["active"] is False and all(v["conversations"] == 0 for v in vip_offers["variants"])
    session = client.post("/v1/sessions", json={"customer_id": "C0002"}, headers=key).json()["token"]
    refused = client.get("/v1/insights/experiments", headers={"Authorization": f"Bearer {session}"})
    assert refused.status_code == 403 and "API key" in refused.json()["detail"]
    assert client.get("/v1/insights/experiments").status_code == 401


def test_the_cli_prints_the_report(experiments_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DATA_DIR", str(experiments_settings.data_dir))
    monkeypatch.setenv("KEFU_EXPERIMENTS_FILE", str(EXAMPLE))
    if experiments_settings.database_url:
        monkeypatch.setenv("KEFU_DATABASE_URL", experiments_settings.database_url)
    runner = CliRunner()
    as_json = runner.invoke(cli_app, ["experiments", "report", "--json"])
    assert as_json.exit_code == 0, as_json.output
    reports = json.loads(as_json.output)
    assert [r["experiment"] for r in reports] == ["reply_style", "vip_offers"]
    assert reports == [r.model_dump(mode="json") for r in Experiments.load(EXAMPLE).report(
        make_engine(experiments_settings.resolved_database_url)
    )]  # fmt: skip
    table = runner.invoke(cli_app, ["experiments", "report"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "reply_style (active; control standard)" in table.output
    assert "not enough data" in table.output and "Fisher exact" in table.output


def test_the_cli_says_when_no_file_is_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("KEFU_EXPERIMENTS_FILE", raising=False)
    result = CliRunner().invoke(cli_app, ["experiments", "report"])
    assert result.exit_code == 1 and "no experiments file" in result.output
