"""The web chat in a real browser (Debian's Chromium driven by Playwright), against the real app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect


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
