"""The lead's dashboard in a real browser (Debian's Chromium driven by Playwright) against the real app
on the seeded demo store: the console login leads there, charts are drawn, the drift banner is up,
a CSV downloads; an agent without the lead role sees the leads-only message.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from core.db import make_engine
from core.desk import DeskStore
from core.settings import Settings
from serving.auth import hash_password

pytestmark = pytest.mark.sqlite_only  # the browser drives the UI; the database under it is tested elsewhere

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with a long retention: the start-up prune runs on the real clock and
    would otherwise clear the words of the demo's questions (dated before 2026-11-01)."""
    return settings.model_copy(update={"retention_days": 3650.0})


@pytest.fixture
def accounts(settings: Settings) -> None:
    """A lead (``zhao``) and an agent (``lin``), written into the database before the app starts."""
    engine = make_engine(settings.resolved_database_url)
    desk = DeskStore(engine)
    desk.add_agent("zhao", "Zhao", "lead", hash_password(PASSWORD))
    desk.add_agent("lin", "Lin", "agent", hash_password(PASSWORD))
    engine.dispose()


@pytest.fixture
def base_url(accounts: None, live_server: str) -> str:
    """The live app, started after the accounts exist."""
    return live_server


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """Browser contexts (separate cookies, like separate people); all closed after the test."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def _page(browser: Browser, base_url: str, contexts: list[BrowserContext]) -> Page:
    context = browser.new_context(base_url=base_url, locale="en-US", accept_downloads=True)
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


def _login(page: Page, user: str) -> None:
    page.fill("#login-user", user)
    page.fill("#login-pass", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#whoami")).to_contain_text(user.capitalize())


def test_a_lead_reads_the_dashboard_and_an_agent_is_turned_away(
    browser: Browser, base_url: str, contexts: list[BrowserContext], tmp_path: Path
) -> None:
    lead = _page(browser, base_url, contexts)
    lead.goto("/dashboard")
    expect(lead).to_have_url(re.compile(r"/console"))  # not logged in: the console's sign-in
    _login(lead, "zhao")
    link = lead.locator("#dashboard-link")
    expect(link).to_be_visible()
    link.click()
    expect(lead).to_have_url(re.compile(r"/dashboard$"))
    expect(lead.locator("body")).to_have_attribute("data-loaded", "true")

    expect(lead.locator("#range-label")).to_contain_text("2026-10-03")
    expect(lead.locator("#kpi-conversations .value")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(lead.locator("#kpi-containment .value")).to_have_text(re.compile(r"^\d+\.\d%$"))
    # Line charts: one path per series with a point for each day that has data.
    volume = lead.locator('#chart-volume svg g[data-series="conversations"]')
    expect(volume.locator("path.series")).to_have_count(1)
    assert volume.locator("circle.point").count() >= 20
    assert len(volume.locator("path.series").get_attribute("d") or "") > 100
    expect(lead.locator('#chart-rates g[data-series="containment"] path')).to_have_count(1)
    expect(lead.locator('#chart-latency g[data-series="p90"] path')).to_have_count(1)
    assert lead.locator("#chart-emotions rect.bar").count() >= 20
    assert lead.locator("#chart-intents rect.hbar").count() >= 5
    assert lead.locator("#chart-handoffs rect.hbar").count() >= 1
    assert lead.locator("#chart-fallbacks rect.hbar").count() >= 1
    assert lead.locator("#chart-satisfaction rect.hbar").count() == 5
    expect(lead.locator('#chart-drift g[data-series="unknown"] path')).to_have_count(1)

    # The demo history drifts at the end: the banner, the alerts and the proposals.
    banner = lead.locator("#drift-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("2026-11-01")
    assert lead.locator("#alerts-table tr.alert").count() >= 2
    expect(lead.locator("#proposals-table")).to_contain_text("new topic")
    assert lead.locator("#questions-table tbody tr").count() >= 3
    assert lead.locator("#segments-table tbody tr").count() >= 2
    # The insight segments when they can be computed, the membership tiers otherwise.
    expect(lead.locator("#segments-note")).to_have_text(re.compile("by insight segment|by tier"))
    lead.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    with lead.expect_download() as info:
        lead.click('.exports a[data-table="daily"]')
    download = info.value
    assert download.suggested_filename == "kefu-daily-2026-10-03-2026-11-02.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0][:3] == ["day", "conversations", "contained"] and len(rows) == 31

    with lead.expect_download() as info:
        lead.click("#proposals-link")
    assert info.value.suggested_filename.startswith("kefu-intent-proposals-")

    # A narrower window and one channel, and the Chinese labels.
    lead.fill("#f-since", "2026-10-25")
    lead.select_option("#f-channel", "web")
    lead.click("#f-apply")
    expect(lead.locator("#range-label")).to_contain_text("2026-10-25")
    expect(lead.locator("#range-label")).to_contain_text("web")
    lead.click("#lang-toggle")
    expect(lead.locator("h1")).to_have_text("客服看板")
    expect(lead.locator("#drift-banner strong")).to_have_text("漂移告警")
    lead.screenshot(path=str(tmp_path / "dashboard-zh.png"), full_page=True)

    agent = _page(browser, base_url, contexts)
    agent.goto("/console")
    _login(agent, "lin")
    expect(agent.locator("#dashboard-link")).to_be_hidden()
    agent.goto("/dashboard")
    expect(agent.locator("#leads-only")).to_be_visible()
    expect(agent.locator("#leads-only")).to_contain_text("team leads")
    expect(agent.locator("#dash")).to_be_hidden()
