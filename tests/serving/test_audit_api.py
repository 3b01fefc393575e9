"""The access audit end to end: what each route records, ``GET /v1/audit`` and its gate, the lead-only
unredacted view of a handoff, and ``kefu audit``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect
from pydantic import SecretStr
from typer.testing import CliRunner

from agent.intents import IntentModel
from core.audit import AuditLog
from core.db import make_engine
from core.desk import DeskStore
from core.settings import Settings
from core.types import AccessAuditEntry, Channel
from core.vault import generate_key
from serving import cli as kefu_cli
from serving.app import create_app
from serving.auth import create_api_key, hash_password
from serving.cli import app as cli
from serving.service import KefuService

PHONE = "13812345678"
EMAIL = "li.lei@example.cn"


@dataclass
class World:
    """One running app on one copy of the seeded store, with people to act in it."""

    client: TestClient
    service: KefuService
    settings: Settings
    key_id: str
    key: dict[str, str]
    lead: TestClient
    agent: TestClient
    customer: dict[str, str]
    handoff_id: int
    conversation: str

    def rows(self, **filters: Any) -> list[AccessAuditEntry]:
        return AuditLog(self.service.store.engine).query(limit=1000, **filters)


def _login(client: TestClient, user: str) -> TestClient:
    console = TestClient(client.app)
    response = console.post("/v1/console/login", json={"username": user, "password": f"{user}-password"})
    assert response.status_code == 200, response.text
    return console


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    make_database_url: Callable[..., str],
    seeded_kb: Path,
    intent_model: IntentModel,
) -> Iterator[World]:
    """The real app (rules only); C0002 handed off a conversation that holds a phone number and an e-mail."""
    root = tmp_path_factory.mktemp("audit")
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
    with TestClient(app) as client:
        service: KefuService = app.state.service
        service.desk.add_agent("lin", "Lin", "agent", hash_password("lin-password"))
        service.desk.add_agent("zhao", "Zhao", "lead", hash_password("zhao-password"))
        secret, listing = create_api_key(service.desk, "audit-tests", Channel.APP)
        key = {"Authorization": f"Bearer {secret}"}
        token = client.post("/v1/sessions", json={"customer_id": "C0002"}, headers=key).json()["token"]
        customer = {"Authorization": f"Bearer {token}"}
        said = client.post(
            "/v1/conversations/au-1/messages",
            json={"text": f"My phone is {PHONE} and my e-mail is {EMAIL}. Where is my order?"},
            headers=customer,
        )
        assert said.status_code == 200, said.text
        handed = client.post(
            "/v1/conversations/au-1/messages", json={"text": "I want to talk to a human agent"}, headers=customer
        )
        assert handed.json()["state"] == "handoff", handed.text
        lead = _login(client, "zhao")
        handoff_id = lead.get("/v1/console/queue").json()[0]["id"]
        yield World(
            client, service, settings, listing.id, key, lead, _login(client, "lin"), customer, handoff_id, "au-1"
        )


def test_opening_a_handoff_records_the_agent(world: World) -> None:
    detail = world.agent.get(f"/v1/console/handoffs/{world.handoff_id}")
    assert detail.status_code == 200
    assert PHONE not in detail.text and EMAIL not in detail.text, "agents see the redacted transcript"
    row = world.rows(actor="agent:lin", action="view_conversation")[0]
    assert (row.role, row.target, row.detail) == ("agent", world.conversation, f"handoff {world.handoff_id}")


def test_a_lead_sees_the_real_values_and_the_view_is_audited(world: World) -> None:
    response = world.lead.get(f"/v1/console/handoffs/{world.handoff_id}/unredacted")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["id"] == world.handoff_id and body["conversation_id"] == world.conversation
    values = {item["placeholder"]: item["value"] for item in body["values"]}
    assert values["<CN_MOBILE_1>"] == PHONE
    assert EMAIL in values.values()
    transcript = world.lead.get(f"/v1/console/handoffs/{world.handoff_id}").json()["transcript"]
    assert "<CN_MOBILE_1>" in transcript[0]["text"], "the placeholders the values belong to"

    row = world.rows(action="view_unredacted")[0]
    assert (row.actor, row.role, row.target) == ("agent:zhao", "lead", world.conversation)
    assert row.detail == f"handoff {world.handoff_id}: {', '.join(sorted(values))}"
    assert PHONE not in row.detail and EMAIL not in row.detail, "the audit names placeholders, never values"


def test_an_agent_may_not_see_unredacted_values(world: World) -> None:
    response = world.agent.get(f"/v1/console/handoffs/{world.handoff_id}/unredacted")
    assert response.status_code == 403
    assert PHONE not in response.text and "lead" in response.json()["detail"]
    assert world.rows(actor="agent:lin", action="view_unredacted") == []
    assert world.client.get(f"/v1/console/handoffs/{world.handoff_id}/unredacted").status_code == 401
    assert world.lead.get("/v1/console/handoffs/999999/unredacted").status_code == 404


def test_api_key_reads_of_a_conversation_are_recorded_and_the_customers_own_are_not(world: World) -> None:
    query = {"customer_id": "C0002"}
    assert world.client.get(f"/v1/conversations/{world.conversation}", params=query, headers=world.key).is_success
    audit = world.client.get(f"/v1/conversations/{world.conversation}/audit", params=query, headers=world.key)
    assert audit.is_success
    assert world.client.get(f"/v1/conversations/{world.conversation}", headers=world.customer).is_success
    rows = world.rows(actor=f"key:{world.key_id}", action="view_conversation")
    assert [(r.role, r.target, r.detail) for r in rows] == [
        ("key", world.conversation, "turn audit"),
        ("key", world.conversation, "history"),
    ]
    assert world.rows(actor="session:*", action="view_conversation") == []


def test_a_next_best_action_is_recorded_with_its_reason(world: World) -> None:
    response = world.client.post("/v1/insights/next-best-action", json={"customer_id": "C0001"}, headers=world.key)
    assert response.status_code == 200, response.text
    decision = response.json()
    row = world.rows(action="decision:nba", target="C0001")[0]
    assert (row.actor, row.role) == ("kefu", "system")
    assert row.detail.startswith(decision["action"]) and f"key:{world.key_id}" in row.detail
    assert decision["rationale"][:200] in row.detail


def test_the_audit_api_for_leads_and_api_keys(world: World) -> None:
    # Something of each kind to find.
    world.agent.get(f"/v1/console/handoffs/{world.handoff_id}")
    world.lead.get(f"/v1/console/handoffs/{world.handoff_id}/unredacted")
    listed = world.lead.get("/v1/audit", params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    ats = [row["at"] for row in rows]
    assert ats == sorted(ats, reverse=True) and ats[0].endswith("Z"), "newest first, in UTC"
    assert {"view_conversation", "view_unredacted"} <= {row["action"] for row in rows}

    by_key = world.client.get("/v1/audit", params={"actor": "agent:*", "target": world.conversation}, headers=world.key)
    assert by_key.status_code == 200
    assert by_key.json() and {row["actor"] for row in by_key.json()} <= {"agent:lin", "agent:zhao"}
    only = world.client.get("/v1/audit", params={"action": "view_unredacted", "limit": 1}, headers=world.key).json()
    assert len(only) == 1 and only[0]["actor"] == "agent:zhao"
    long_ago = {"since": "2000-01-01T00:00:00", "until": "2000-01-02T00:00:00"}
    assert world.client.get("/v1/audit", params=long_ago, headers=world.key).json() == []

    # Reading the audit is itself recorded, with the filters used.
    seen = world.rows(action="view_audit")
    assert {(r.actor, r.role) for r in seen} == {("agent:zhao", "lead"), (f"key:{world.key_id}", "key")}
    assert any(r.detail == "action=view_unredacted" for r in seen)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"since": "2026-11-02T00:00:00", "until": "2026-11-01T00:00:00"}, "since is after until"),
        ({"since": "yesterday"}, "since"),
        ({"actor": "x" * 82}, "actor"),
    ],
)
def test_bad_filters_are_422_with_the_reason(world: World, params: dict[str, Any], reason: str) -> None:
    response = world.client.get("/v1/audit", params=params, headers=world.key)
    assert response.status_code == 422
    assert reason in response.text


def test_who_may_not_read_the_audit(world: World) -> None:
    agent = world.agent.get("/v1/audit")
    assert agent.status_code == 403 and "leads" in agent.json()["detail"]
    session = world.client.get("/v1/audit", headers=world.customer)
    assert session.status_code == 403 and "session token" in session.json()["detail"]
    assert world.client.get("/v1/audit").status_code == 401
    assert world.client.get("/v1/audit", headers={"Authorization": "Bearer kf_nope_nope"}).status_code == 401


def test_kefu_audit_prints_the_filtered_table(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.agent.get(f"/v1/console/handoffs/{world.handoff_id}")
    world.lead.get(f"/v1/console/handoffs/{world.handoff_id}/unredacted")
    monkeypatch.setenv("KEFU_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.setenv("KEFU_DATABASE_URL", world.settings.resolved_database_url)
    monkeypatch.setenv("KEFU_VAULT_KEY", generate_key())
    monkeypatch.setattr(kefu_cli.console, "width", 240)  # a whole row on one line, whatever the terminal
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", "--action", "view_unredacted", "--limit", "1"])
    assert result.exit_code == 0, result.output
    flat = re.sub(r"\s+", " ", re.sub(r"[│┃━─┏┓┗┛┡┩╇┳┴┬┼└┘┌┐╭╮╰╯]", " ", result.output))
    assert "agent:zhao" in flat and "view_unredacted" in flat and world.conversation in flat
    assert "1 row" in flat
    assert PHONE not in result.output
    everyone = runner.invoke(cli, ["audit", "--actor", "agent:*", "--since", "2000-01-01"])
    assert everyone.exit_code == 0 and "agent:lin" in everyone.output
    none = runner.invoke(cli, ["audit", "--actor", "nobody"])
    assert none.exit_code == 0 and "no audit rows" in none.output
    bad = runner.invoke(cli, ["audit", "--limit", "5000"])
    assert bad.exit_code != 0


@pytest.fixture
def console_server(settings: Settings, api_key: str) -> Iterator[None]:
    """Console accounts lin (agent) and zhao (lead), written before the live app starts."""
    engine = make_engine(settings.resolved_database_url)
    desk = DeskStore(engine)
    desk.add_agent("lin", "Lin", "agent", hash_password("lin-password"))
    desk.add_agent("zhao", "Zhao", "lead", hash_password("zhao-password"))
    engine.dispose()
    yield


@pytest.mark.sqlite_only  # a browser test
def test_the_console_shows_a_lead_the_personal_data_on_request(
    console_server: None, api_key: str, live_server: str, browser: Browser, tmp_path: Path
) -> None:
    with httpx.Client(base_url=live_server, headers={"Authorization": f"Bearer {api_key}"}) as http:
        token = http.post("/v1/sessions", json={"customer_id": "C0002"}).json()["token"]
        customer = {"Authorization": f"Bearer {token}"}
        http.post("/v1/conversations/ui-1/messages", json={"text": f"My phone is {PHONE}"}, headers=customer)
        handed = http.post("/v1/conversations/ui-1/messages", json={"text": "I want a human agent"}, headers=customer)
        assert handed.json()["state"] == "handoff", handed.text

    def console_of(user: str) -> Page:
        page = browser.new_context(base_url=live_server, locale="en-US").new_page()
        page.set_default_timeout(20_000)
        page.goto("/console")
        page.fill("#login-user", user)
        page.fill("#login-pass", f"{user}-password")
        page.click("#login-submit")
        page.locator("#queue .queue-item").filter(has_text="C0002").click()
        expect(page.locator("#transcript")).to_contain_text("<CN_MOBILE_1>")
        return page

    agent = console_of("lin")
    expect(agent.locator("#reveal")).to_be_hidden()
    agent.context.close()

    lead = console_of("zhao")
    expect(lead.locator("#revealed")).to_be_hidden()
    lead.click("#reveal")
    expect(lead.locator("#revealed")).to_be_visible()
    expect(lead.locator("#revealed")).to_contain_text("<CN_MOBILE_1>")
    expect(lead.locator("#revealed")).to_contain_text(PHONE)
    expect(lead.locator("#transcript")).not_to_contain_text(PHONE)  # the transcript itself stays redacted
    lead.screenshot(path=str(tmp_path / "lead-personal-data.png"), full_page=True)
    lead.context.close()
