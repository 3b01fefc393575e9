"""The web chat in a real browser (Debian's Chromium driven by Playwright), against the real app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from core.db import ConversationLogRow, make_engine
from core.settings import Settings

pytestmark = pytest.mark.sqlite_only  # the browser drives the UI; the database under it is tested elsewhere


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server, locale="en-US")
    page = context.new_page()
    yield page
    context.close()


def test_customer_asks_about_orders_and_the_chat_survives_a_reload(page: Page, tmp_path: Path) -> None:
    page.goto("/")
    expect(page.locator("#customer option")).to_have_count(2)
    page.select_option("#customer", "C0002")
    expect(page.locator("#hint")).to_contain_text("Emma Clark")

    page.fill("#text", "Where is my order?")
    with page.expect_request("**/v1/chat") as chat:
        page.click("#send")
    assert chat.value.headers["authorization"].startswith("Bearer ks1."), "the page sends the customer's session token"
    reply = page.locator(".msg.agent").last
    expect(reply).to_contain_text("KF")
    expect(reply.locator(".meta")).to_contain_text("answer · order_status")
    expect(reply.locator(".meta")).to_contain_text("list_recent_orders")
    page.screenshot(path=str(tmp_path / "chat.png"))

    page.reload()
    expect(page.locator(".msg.customer")).to_have_text(["Where is my order?"])
    expect(page.locator(".msg.agent")).to_have_count(1)
    expect(page.locator(".msg.agent").first).to_contain_text("KF")


def test_chinese_customer_and_a_new_conversation(page: Page) -> None:
    page.goto("/")
    page.select_option("#customer", "C0001")
    page.fill("#text", "你好")
    page.press("#text", "Enter")
    expect(page.locator(".msg.agent").last).to_contain_text("您好")
    page.click("#reset")
    expect(page.locator(".msg")).to_have_count(0)


def test_an_error_is_shown_not_swallowed(page: Page) -> None:
    page.goto("/")
    page.evaluate("document.getElementById('text').removeAttribute('maxlength')")
    page.fill("#text", "x" * 4500)
    page.click("#send")
    expect(page.locator(".msg.error")).to_contain_text("Error 422")


def test_the_widget_asks_for_a_rating_when_the_customer_says_goodbye(
    page: Page, settings: Settings, tmp_path: Path
) -> None:
    page.set_default_timeout(20_000)
    page.goto("/demo/shop?customer=C0002")
    page.click("#kefu-launcher")
    expect(page.locator("#kefu-status")).to_have_text("Online")
    page.fill("#kefu-input", "Where is my order?")
    page.press("#kefu-input", "Enter")
    expect(page.locator(".kefu-msg.kefu-agent")).to_have_count(1)
    expect(page.locator(".kefu-rating")).to_have_count(0)  # only once the dialogue has ended

    page.fill("#kefu-input", "bye")
    page.press("#kefu-input", "Enter")
    rating = page.locator(".kefu-rating")
    expect(rating).to_contain_text("How did we do?")
    stars = rating.locator("button.kefu-star")
    expect(stars).to_have_count(5)
    expect(stars.nth(3)).to_have_attribute("aria-label", "4 stars")
    stars.nth(3).hover()
    page.screenshot(path=str(tmp_path / "rating.png"))
    with page.expect_response("**/feedback") as answer:
        stars.nth(3).click()
    assert answer.value.status == 200
    expect(rating).to_have_text("Thanks for your rating!")

    conversation_id = page.evaluate("window.Kefu.widget.conversationId")
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        log = session.get(ConversationLogRow, conversation_id)
        assert log is not None and (log.customer_id, log.satisfaction, log.seeded) == ("C0002", 4, False)
    engine.dispose()

    page.reload()  # the history says the dialogue ended, but this conversation is rated already
    page.click("#kefu-launcher")
    expect(page.locator(".kefu-msg.kefu-agent")).to_have_count(2)
    expect(page.locator(".kefu-rating")).to_have_count(0)
