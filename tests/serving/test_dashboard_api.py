"""The dashboard API on the seeded demo store: the lead-only gate, the summary, CSV exports, the drift watch,
its proposal file, bad input, the access audit, and ``kefu dashboard drift``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from agent.intents import IntentModel
from core.audit import AuditLog
from core.db import ConversationLogRow, TurnAuditRow
from core.settings import Settings
from core.types import CustomerId, SegmentInfo
from core.vault import generate_key
from serving.app import create_app
from serving.auth import hash_password
from serving.cli import app as cli
from serving.dashboard import TIER_NOTE
from serving.service import KefuService

ENDPOINTS = [
    "/v1/dashboard/summary",
    "/v1/dashboard/export.csv?table=daily",
    "/v1/dashboard/drift",
    "/v1/dashboard/drift/proposals.jsonl",
]
# The seeded history ends on 2026-11-01 (core.seed.REFERENCE_DATE): its last 30 days.
SINCE, UNTIL = "2026-10-03", "2026-11-02"


@dataclass
class World:
    """One running app on a copy of the seeded store, with a lead and an agent logged in."""

    client: TestClient
    service: KefuService
    settings: Settings
    lead: TestClient
    agent: TestClient


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
    root = tmp_path_factory.mktemp("dashboard")
    data_dir = root / "var"
    data_dir.mkdir()
    database_url = make_database_url(seeded=True)
    shutil.copytree(seeded_kb, data_dir / "kb")
    # A long retention: the start-up prune (on the real clock) must not clear the demo's questions.
    settings = Settings(  # type: ignore[call-arg]
        data_dir=data_dir,
        cache_dir=root / "cache",
        vault_key=SecretStr(generate_key()),
        retention_days=3650,
        database_url=database_url,
        _env_file=None,
    )
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    with TestClient(app) as client:
        service: KefuService = app.state.service
        service.insights = None  # until a test gives it segments: tiers stand in
        service.desk.add_agent("lin", "Lin", "agent", hash_password("lin-password"))
        service.desk.add_agent("zhao", "Zhao", "lead", hash_password("zhao-password"))
        yield World(client, service, settings, _login(client, "zhao"), _login(client, "lin"))


def _summary(world: World, **params: str) -> dict[str, Any]:
    response = world.lead.get("/v1/dashboard/summary", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("path", ENDPOINTS)
def test_only_leads_get_in(world: World, path: str) -> None:
    assert world.client.get(path).status_code == 401
    forbidden = world.agent.get(path)
    assert forbidden.status_code == 403
    assert "for leads" in forbidden.json()["detail"]
    assert world.lead.get(path).status_code == 200


def test_the_summary_of_the_demo_store(world: World) -> None:
    body = _summary(world)
    assert (body["since"], body["until"], body["channel"]) == (SINCE, UNTIL, None)
    engine = world.service.store.engine
    start, end = datetime(2026, 10, 3), datetime(2026, 11, 2)
    with Session(engine) as session:
        started, at = ConversationLogRow.started_at, TurnAuditRow.created_at
        conversations = session.scalar(select(func.count()).where(started >= start, started < end))
        turns = session.scalar(select(func.count()).where(at >= start, at < end, TurnAuditRow.route != "human"))
    totals = body["totals"]
    assert totals["conversations"] == conversations > 0
    assert totals["turns"] == turns > 0
    assert totals["contained"] + totals["handoffs"] == conversations
    assert 0 < totals["containment"] < 1 and totals["latency_p50"] <= totals["latency_p90"] <= totals["latency_p99"]
    assert len(body["daily"]) == 30
    assert sum(day["conversations"] for day in body["daily"]) == conversations
    assert body["intents"] and body["handoff_reasons"] and body["fallback_kinds"]
    assert body["satisfaction"]["count"] > 0 and 1 <= body["satisfaction"]["mean"] <= 5
    assert body["segments"]["basis"] == "tier" and body["segments"]["note"] == TIER_NOTE
    assert {row["segment"] for row in body["segments"]["rows"]} <= {"standard", "silver", "gold", "vip"}
    questions = body["questions"]
    assert questions and questions[0]["count"] >= questions[-1]["count"] and questions[0]["representative"]
    assert body["drift"]["alerts"], "the demo history drifts in its last days"


def test_a_channel_and_a_date_range(world: World) -> None:
    body = _summary(world, since="2026-10-20", until="2026-10-27", channel="wechat")
    assert (body["since"], body["until"], body["channel"]) == ("2026-10-20", "2026-10-27", "wechat")
    assert len(body["daily"]) == 7
    with Session(world.service.store.engine) as session:
        expected = session.scalar(
            select(func.count()).where(
                ConversationLogRow.channel == "wechat",
                ConversationLogRow.started_at >= datetime(2026, 10, 20),
                ConversationLogRow.started_at < datetime(2026, 10, 27),
            )
        )
    assert body["totals"]["conversations"] == expected


class FakeInsights:
    """Just the two methods the dashboard asks of ``insights.profile.Insights``."""

    def segment_of(self, customer_id: CustomerId) -> str | None:
        return "champions" if int(customer_id[1:]) % 2 else "at_risk"

    def segments(self) -> list[SegmentInfo]:
        return [
            SegmentInfo(name="champions", label_en="Champions", label_zh="核心客户", size=1, traits={}, description=""),
            SegmentInfo(name="at_risk", label_en="At risk", label_zh="流失风险", size=1, traits={}, description=""),
        ]


def test_segments_come_from_the_insights_when_there_are_any(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.service, "insights", FakeInsights())
    segments = _summary(world)["segments"]
    assert segments["basis"] == "segment" and segments["note"] == ""
    rows = {row["segment"]: row for row in segments["rows"]}
    assert set(rows) == {"champions", "at_risk"}
    assert (rows["champions"]["label_en"], rows["champions"]["label_zh"]) == ("Champions", "核心客户")


@pytest.mark.parametrize(
    ("table", "first_columns"),
    [
        ("daily", ["day", "conversations", "contained", "containment"]),
        ("intents", ["intent", "count", "share"]),
        ("handoff_reasons", ["reason", "count", "share"]),
        ("segments", ["segment", "label_en", "label_zh", "basis"]),
        ("questions", ["rank", "count", "representative", "examples"]),
        ("drift", ["day", "turns", "low_confidence", "low_confidence_share"]),
    ],
)
def test_csv_exports(world: World, table: str, first_columns: list[str]) -> None:
    response = world.lead.get("/v1/dashboard/export.csv", params={"table": table})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="kefu-{table}-{SINCE}-{UNTIL}.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][: len(first_columns)] == first_columns
    assert len(rows) > 1 and all(len(row) == len(rows[0]) for row in rows)
    if table == "daily":
        assert len(rows) == 31 and rows[1][0] == SINCE


def test_a_formula_a_customer_typed_is_not_run_by_a_spreadsheet(world: World) -> None:
    engine = world.service.store.engine
    with Session(engine) as session, session.begin():
        session.add(
            TurnAuditRow(
                conversation_id="csv-1", customer_id="C0003", created_at=datetime(2025, 1, 5, 9), intent="out_of_scope",
                confidence=0.1, stage="classifier", thresholds="", decision="", fallback="unsure: clarifying question",
                emotion="calm", state="answer", events=[], tools=[], route="llm", llm_calls=0, latency_ms=5.0,
                channel="web", question='=HYPERLINK("http://evil.example","gift card")',
            )
        )  # fmt: skip
    params = {"table": "questions", "since": "2025-01-05", "until": "2025-01-06"}
    rows = list(csv.reader(io.StringIO(world.lead.get("/v1/dashboard/export.csv", params=params).text)))
    assert rows[1][2] == '\'=HYPERLINK("http://evil.example","gift card")'


def test_the_drift_watch_and_its_proposals(world: World) -> None:
    drift = world.lead.get("/v1/dashboard/drift").json()
    alert_days = sorted({alert["day"] for alert in drift["alerts"]})
    assert alert_days and alert_days[-1] == "2026-11-01"
    assert drift["low_confidence_threshold"] == world.settings.drift_low_confidence_share
    assert drift["unsure_below"] == world.service.policy.unsure_below
    assert any(group["basis"] == "new_topic" for group in drift["proposals"])
    response = world.lead.get("/v1/dashboard/drift/proposals.jsonl")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"].startswith('attachment; filename="kefu-intent-proposals-')
    lines = response.text.splitlines()
    assert len(lines) == sum(len(group["examples"]) for group in drift["proposals"])
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"text", "label", "lang"} and row["text"] and row["lang"] in ("zh", "en")
    quiet = world.lead.get("/v1/dashboard/drift/proposals.jsonl", params={"since": "2026-10-03", "until": "2026-10-10"})
    assert quiet.status_code == 200 and quiet.text == ""


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"since": "2026-13-01"}, "valid date"),
        ({"until": "yesterday"}, "valid date"),
        ({"since": "2026-11-01", "until": "2026-10-01"}, "must be before until"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "at most 1096 days"),
        ({"channel": "fax"}, "web"),
        ({"min_turns": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_input_is_a_422_with_the_reason(world: World, params: dict[str, str], reason: str) -> None:
    response = world.lead.get("/v1/dashboard/summary", params=params)
    assert response.status_code == 422
    assert reason in json.dumps(response.json()["detail"])


def test_an_unknown_table_is_a_422(world: World) -> None:
    response = world.lead.get("/v1/dashboard/export.csv", params={"table": "salaries"})
    assert response.status_code == 422
    assert "daily" in json.dumps(response.json()["detail"])


def test_views_and_exports_are_in_the_access_audit(world: World) -> None:
    audit = AuditLog(world.service.store.engine)
    before = len(audit.query(actor="agent:zhao", limit=1000))
    world.lead.get("/v1/dashboard/summary", params={"since": "2026-10-20", "until": "2026-10-27"})
    world.lead.get("/v1/dashboard/export.csv", params={"table": "segments"})
    world.lead.get("/v1/dashboard/drift/proposals.jsonl")
    world.agent.get("/v1/dashboard/summary")  # refused: nothing shown, nothing recorded
    rows = audit.query(actor="agent:zhao", limit=1000)
    assert len(rows) == before + 3
    newest = sorted(rows[:3], key=lambda row: row.id)
    assert [(r.role, r.action, r.target) for r in newest] == [
        ("lead", "view_dashboard", "dashboard"),
        ("lead", "export", "dashboard:segments"),
        ("lead", "export", "dashboard:drift_proposals"),
    ]
    assert newest[0].detail == "2026-10-20..2026-10-27 channel=all"
    assert audit.query(actor="agent:lin", action="view_dashboard", limit=10) == []


def test_the_dashboard_page_is_served(world: World) -> None:
    page = world.client.get("/dashboard")
    assert page.status_code == 200 and 'src="/dashboard.js"' in page.text
    assert world.client.get("/dashboard.js").headers["content-type"].startswith("text/javascript")
    assert world.client.get("/dashboard.css").headers["content-type"].startswith("text/css")
    assert "http" not in page.text.replace("http://www.w3.org", ""), "no outside URLs: the machine may be offline"


def test_kefu_dashboard_drift(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DATA_DIR", str(world.settings.data_dir))
    monkeypatch.setenv("KEFU_DATABASE_URL", world.settings.resolved_database_url)
    out = tmp_path / "proposals.jsonl"
    result = CliRunner().invoke(cli, ["dashboard", "drift", "--proposals", str(out), "--fail-on-alert"])
    assert result.exit_code == 3, result.output
    assert "2026-11-01" in result.output and "unknown_intent" in result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines and all(set(json.loads(line)) == {"text", "label", "lang"} for line in lines)
    quiet = CliRunner().invoke(cli, ["dashboard", "drift", "--since", "2026-10-03", "--until", "2026-10-10", "--json"])
    assert quiet.exit_code == 0, quiet.output
    report = json.loads(quiet.output)
    assert report["alerts"] == [] and len(report["days"]) == 7
    bad = CliRunner().invoke(cli, ["dashboard", "drift", "--since", "2026-11-01", "--until", "2026-10-01"])
    assert bad.exit_code == 1 and "must be before until" in bad.output
    assert date.fromisoformat(report["days"][0]["day"]) == date(2026, 10, 3)
