"""The widget and the agent console in a real browser (Debian's Chromium driven by Playwright), against the real app.

A customer in the demo shop talks to the bot, asks for a human, and an agent in a second browser
context takes the conversation over, replies, notes, and hands it back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, expect

from core.db import make_engine
from core.desk import DeskStore
from core.settings import Settings
from serving.auth import hash_password

pytestmark = pytest.mark.sqlite_only  # the browser drives the UI; the database under it is tested elsewhere

PASSWORD = "correct horse battery"


@pytest.fixture
def agent_account(settings: Settings) -> None:
    """The console account ``lin``, written into the database before the app starts."""
    engine = make_engine(settings.resolved_database_url)
    DeskStore(engine).add_agent("lin", "Lin", "agent", hash_password(PASSWORD))
    engine.dispose()


@pytest.fixture
def base_url(agent_account: None, live_server: str) -> str:
    """The live app, started after the agent account exists."""
    return live_server


@pytest.fixture
def contexts(browser: Browser, base_url: str) -> Iterator[list[BrowserContext]]:
    """Browser contexts (separate cookies and storage, like separate people); all closed after the test."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def _page(browser: Browser, base_url: str, contexts: list[BrowserContext]) -> Page:
    context = browser.new_context(base_url=base_url, locale="en-US")
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def _record_frames(page: Page) -> list[dict[str, Any]]:
    """Every JSON frame the page's WebSockets receive, in order."""
    frames: list[dict[str, Any]] = []

    def on_socket(socket: WebSocket) -> None:
        def on_frame(payload: str | bytes) -> None:
            frames.append(json.loads(payload))

        socket.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    return frames


def _say(shop: Page, text: str) -> None:
    shop.fill("#kefu-input", text)
    shop.press("#kefu-input", "Enter")


def _open_shop(shop: Page) -> None:
    shop.goto("/demo/shop?customer=C0002")
    expect(shop.locator("#shop-title")).to_have_text("Kefu Demo Shop")
    shop.click("#kefu-launcher")
    expect(shop.locator("#kefu-panel")).to_be_visible()
    expect(shop.locator("#kefu-status")).not_to_have_text(re.compile("Connecting|Reconnecting"))


def _login(console: Page, password: str = PASSWORD) -> None:
    console.goto("/console")
    console.fill("#login-user", "lin")
    console.fill("#login-pass", password)
    console.click("#login-submit")


def test_a_customer_reaches_a_human_and_goes_back_to_the_bot(
    browser: Browser, base_url: str, contexts: list[BrowserContext], tmp_path: Path
) -> None:
    shop = _page(browser, base_url, contexts)
    frames = _record_frames(shop)
    _open_shop(shop)
    bot = shop.locator(".kefu-msg.kefu-agent")

    _say(shop, "Where is my order?")
    expect(shop.locator(".kefu-msg.kefu-customer")).to_have_text(["Where is my order?"])
    expect(bot.last).to_contain_text("KF")
    pieces = [f for f in frames if f["type"] == "token"]
    assert len(pieces) > 1, "the reply is streamed in pieces"
    assert [f["type"] for f in frames][:2] == ["ack", "typing"]
    expect(shop.locator(".kefu-typing")).to_have_count(0)

    _say(shop, "I want to talk to a human")
    expect(bot).to_have_count(2)
    expect(bot.last).to_contain_text("human colleague")
    shop.screenshot(path=str(tmp_path / "1-customer-asks-for-a-human.png"))

    console = _page(browser, base_url, contexts)
    _login(console)
    expect(console.locator("#whoami")).to_contain_text("Lin")
    item = console.locator("#queue .queue-item").filter(has_text="C0002")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("gold")
    item.click()
    expect(console.locator("#packet")).to_be_visible()
    expect(console.locator("#packet-summary")).to_contain_text("order_status")
    expect(console.locator("#packet-summary")).to_contain_text("Orders looked up: KF")
    expect(console.locator("#packet-orders")).to_contain_text("KF")
    expect(console.locator("#transcript .line").first).to_contain_text("Where is my order?")
    console.screenshot(path=str(tmp_path / "2-console-packet.png"), full_page=True)

    console.click("#take")
    expect(console.locator("#detail-status")).to_contain_text("active")
    expect(shop.locator(".kefu-msg.kefu-notice").last).to_contain_text("Agent Lin has joined")
    expect(shop.locator("#kefu-status")).to_have_text("Lin (human)")

    console.fill("#reply-text", "Hi, I am Lin, let me check.")
    console.click("#reply-send")
    human = shop.locator(".kefu-msg.kefu-human")
    expect(human).to_have_count(1)
    expect(human).to_contain_text("Hi, I am Lin, let me check.")
    expect(human.locator(".kefu-name")).to_have_text("Lin")
    expect(console.locator("#transcript .line.human")).to_have_count(1)  # the echo confirms, not duplicates

    _say(shop, "Thanks")
    expect(console.locator("#transcript .line.customer").last).to_contain_text("Thanks")
    expect(shop.locator(".kefu-typing")).to_have_count(0)

    console.fill("#note-text", "Courier delay likely; offer a voucher")
    console.click("#note-send")
    expect(console.locator("#notes .note")).to_have_count(1)
    expect(console.locator("#notes .note")).to_contain_text("Courier delay likely")
    console.screenshot(path=str(tmp_path / "3-console-active.png"), full_page=True)

    expect(bot).to_have_count(2)  # the bot stayed silent while the human had the conversation
    expect(shop.locator("#kefu-panel")).not_to_contain_text("Courier")

    shop.reload()
    shop.click("#kefu-launcher")
    expect(bot).to_have_count(2)
    expect(bot.first).to_contain_text("KF")
    expect(shop.locator(".kefu-msg.kefu-customer")).to_have_text(
        ["Where is my order?", "I want to talk to a human", "Thanks"]
    )
    expect(human).to_have_text(re.compile("Lin.*Hi, I am Lin, let me check."))
    expect(shop.locator(".kefu-msg.kefu-notice")).to_contain_text(["has joined"])
    expect(shop.locator("#kefu-status")).to_have_text("Lin (human)")
    expect(shop.locator("#kefu-panel")).not_to_contain_text("Courier")
    shop.screenshot(path=str(tmp_path / "4-customer-after-reload.png"))

    console.click("#release")
    expect(console.locator("#detail-status")).to_contain_text("handed back")
    expect(console.locator("#queue .queue-item")).to_have_count(0)
    expect(shop.locator(".kefu-msg.kefu-notice").last).to_contain_text("the assistant is back")
    expect(shop.locator("#kefu-status")).to_have_text("Online")

    _say(shop, "Where is my order?")
    expect(bot).to_have_count(3)
    expect(bot.last).to_contain_text("KF")
    shop.screenshot(path=str(tmp_path / "5-back-to-the-bot.png"))


def test_a_wrong_password_is_refused_with_the_reason(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    console = _page(browser, base_url, contexts)
    _login(console, password="not the password")
    expect(console.locator("#login-error")).to_contain_text("Sign-in failed")
    expect(console.locator("#app-view")).to_be_hidden()

    _login(console)
    expect(console.locator("#app-view")).to_be_visible()
    console.click("#logout")
    expect(console.locator("#login-user")).to_be_visible()
    console.reload()
    expect(console.locator("#login-user")).to_be_visible()  # the cookie is gone


def test_the_widget_reconnects_and_sends_what_was_typed_meanwhile_once(
    browser: Browser, base_url: str, contexts: list[BrowserContext]
) -> None:
    shop = _page(browser, base_url, contexts)
    frames = _record_frames(shop)
    _open_shop(shop)
    shop.evaluate("Kefu.widget.socket.close()")
    _say(shop, "Where is my order?")
    expect(shop.locator(".kefu-msg.kefu-customer.kefu-queued")).to_have_count(1)
    expect(shop.locator("#kefu-status")).to_have_text("Reconnecting…")

    expect(shop.locator("#kefu-status")).to_have_text("Online")
    expect(shop.locator(".kefu-msg.kefu-agent")).to_contain_text(["KF"])
    expect(shop.locator(".kefu-msg.kefu-customer")).to_have_text(["Where is my order?"])
    expect(shop.locator(".kefu-msg.kefu-queued")).to_have_count(0)
    assert [f["type"] for f in frames].count("reply") == 1

    shop.reload()
    shop.click("#kefu-launcher")
    expect(shop.locator(".kefu-msg.kefu-customer")).to_have_text(["Where is my order?"])
    expect(shop.locator(".kefu-msg.kefu-agent")).to_have_count(1)
