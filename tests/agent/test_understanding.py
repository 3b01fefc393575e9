"""Model-free reads: language, explicit requests for a human, short yeses."""

from __future__ import annotations

import pytest

from agent.understanding import asks_for_human, detect_lang, is_affirmative
from core.types import Lang


@pytest.mark.parametrize(
    ("text", "lang"),
    [("你好", Lang.ZH), ("订单KF100234到哪了", Lang.ZH), ("hello", Lang.EN), ("KF100234?", Lang.EN), ("", Lang.EN)],
)
def test_detect_lang(text: str, lang: Lang) -> None:
    assert detect_lang(text) is lang


@pytest.mark.parametrize(
    "text",
    ["I want a human", "can I talk to someone please", "get me a real person", "转人工", "我要人工客服", "找真人"],
)
def test_explicit_requests_for_a_human(text: str) -> None:
    assert asks_for_human(text)


@pytest.mark.parametrize("text", ["where is my order", "humane treatment of animals", "我的订单到哪了", "thanks"])
def test_other_messages_do_not_ask_for_a_human(text: str) -> None:
    assert not asks_for_human(text)


@pytest.mark.parametrize("text", ["yes", "Yes please", "ok!", "sure", "好的", "是的，谢谢", "要", "嗯嗯"])
def test_short_yes(text: str) -> None:
    assert is_affirmative(text)


@pytest.mark.parametrize("text", ["no", "no thanks", "yes, where is my order KF100234?", "不用了", "我的订单呢"])
def test_not_a_short_yes(text: str) -> None:
    assert not is_affirmative(text)
