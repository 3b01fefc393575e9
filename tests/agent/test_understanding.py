"""Model-free understanding in ``agent.understanding``: language, order numbers, anger, keyword intents."""

# Chinese test messages use full-width punctuation, as customers type them.

from __future__ import annotations

import pytest

from agent.machine import Intent
from agent.understanding import RULE_CONFIDENCE, anger_level, detect_lang, find_order_ids, rule_intent
from core.types import Lang

# ------------------------------------------------------------------------------------- detect_lang


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("我的订单到哪了？", Lang.ZH),
        ("你好", Lang.ZH),
        ("KF101170 还没到", Lang.ZH),
        ("Where is KF101170? 谢谢", Lang.ZH),
        ("Where is my order?", Lang.EN),
        ("KF101170", Lang.EN),
        ("!!!", Lang.EN),
        ("", Lang.EN),
    ],
)
def test_detect_lang(text: str, lang: Lang) -> None:
    assert detect_lang(text) is lang


# ------------------------------------------------------------------------------------- find_order_ids


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("Where is KF101170?", ["KF101170"]),
        ("where is kf101170", ["KF101170"]),
        ("Kf101170 and kF100979", ["KF101170", "KF100979"]),
        ("我的订单KF101170到哪了？", ["KF101170"]),
        ("订单号：kf100979。", ["KF100979"]),
        ("KF101170, kf101170 and KF101170 again", ["KF101170"]),
        ("first KF100979 then KF101170 then KF100979", ["KF100979", "KF101170"]),
        ("(KF101170)", ["KF101170"]),
        ("#KF101170", ["KF101170"]),
        ("XKF1234567", []),
        ("KF1234567", []),
        ("XKF123456", []),
        ("9KF123456", []),
        ("KF12345", []),
        ("KF 123456", []),
        ("no order here", []),
        ("", []),
    ],
)
def test_find_order_ids(text: str, ids: list[str]) -> None:
    assert find_order_ids(text) == ids


# ------------------------------------------------------------------------------------- anger_level


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("Where is my order?", 0),
        ("我的订单到哪了？", 0),
        ("Hello!", 0),
        ("This is ridiculous.", 1),
        ("I am FURIOUS", 1),
        ("This is ridiculous and unacceptable", 2),
        ("Worst shop ever, a scam!!!", 3),
        ("Where is it!!!", 1),
        ("太差了", 1),
        ("气死我了，什么破服务！！！", 3),
        ("你们就是骗子，垃圾", 2),
    ],
)
def test_anger_level(text: str, level: int) -> None:
    assert anger_level(text) == level


def test_angrier_text_scores_higher() -> None:
    assert anger_level("this is terrible") < anger_level("this is terrible and unacceptable!!!")


# ------------------------------------------------------------------------------------- rule_intent

RULE_EXAMPLES: list[tuple[str, Intent]] = [
    # human_agent
    ("I want to talk to a human", Intent.HUMAN_AGENT),
    ("Can I speak to a real person?", Intent.HUMAN_AGENT),
    ("get me an agent", Intent.HUMAN_AGENT),
    ("转人工", Intent.HUMAN_AGENT),
    ("我要找真人客服", Intent.HUMAN_AGENT),
    # cancel_order
    ("Please cancel my order KF101182", Intent.CANCEL_ORDER),
    ("我想取消订单", Intent.CANCEL_ORDER),
    # return_refund
    ("I want to return these headphones", Intent.RETURN_REFUND),
    ("Can I get a refund?", Intent.RETURN_REFUND),
    ("我要退货", Intent.RETURN_REFUND),
    ("什么时候退款？", Intent.RETURN_REFUND),
    # complaint
    ("I want to make a complaint", Intent.COMPLAINT),
    ("我要投诉", Intent.COMPLAINT),
    ("我对服务很不满意", Intent.COMPLAINT),
    # order_status
    ("Where is my order?", Intent.ORDER_STATUS),
    ("What's the tracking number?", Intent.ORDER_STATUS),
    ("我的订单到哪了？", Intent.ORDER_STATUS),
    ("什么时候发货？", Intent.ORDER_STATUS),
    ("KF101170", Intent.ORDER_STATUS),
    ("kf101170?", Intent.ORDER_STATUS),
    # shipping_delivery
    ("How much is shipping?", Intent.SHIPPING_DELIVERY),
    ("Do you deliver to Hangzhou?", Intent.SHIPPING_DELIVERY),
    ("运费多少？", Intent.SHIPPING_DELIVERY),
    ("一般几天到？", Intent.SHIPPING_DELIVERY),
    # purchase
    ("I'll take it", Intent.PURCHASE),
    ("I want to buy it now", Intent.PURCHASE),
    ("我要买这个", Intent.PURCHASE),
    ("直接下单", Intent.PURCHASE),
    # product_recommendation
    ("Can you recommend some earbuds?", Intent.PRODUCT_RECOMMENDATION),
    ("Which one is better for running?", Intent.PRODUCT_RECOMMENDATION),
    ("推荐一款跑步耳机", Intent.PRODUCT_RECOMMENDATION),
    ("哪款好？", Intent.PRODUCT_RECOMMENDATION),
    # product_inquiry
    ("What's the price of the speaker?", Intent.PRODUCT_INQUIRY),
    ("Is it in stock?", Intent.PRODUCT_INQUIRY),
    ("这个多少钱？", Intent.PRODUCT_INQUIRY),
    ("保修多久？", Intent.PRODUCT_INQUIRY),
    # account_profile
    ("How many points do I have?", Intent.ACCOUNT_PROFILE),
    ("What is my membership tier?", Intent.ACCOUNT_PROFILE),
    ("我的积分有多少？", Intent.ACCOUNT_PROFILE),
    ("我是什么会员等级？", Intent.ACCOUNT_PROFILE),
    # goodbye
    ("Thank you, bye", Intent.GOODBYE),
    ("that's all", Intent.GOODBYE),
    ("好的，谢谢", Intent.GOODBYE),
    ("再见", Intent.GOODBYE),
    # greeting
    ("Hello", Intent.GREETING),
    ("hi there", Intent.GREETING),
    ("Good morning!", Intent.GREETING),
    ("你好", Intent.GREETING),
    ("在吗？", Intent.GREETING),
]


@pytest.mark.parametrize(("text", "expected"), RULE_EXAMPLES)
def test_rule_intent(text: str, expected: Intent) -> None:
    assert rule_intent(text) is expected


def test_every_keyword_intent_has_zh_and_en_examples() -> None:
    keyword_intents = set(Intent) - {Intent.CHITCHAT, Intent.OUT_OF_SCOPE}
    for intent in keyword_intents:
        texts = [text for text, expected in RULE_EXAMPLES if expected is intent]
        langs = {detect_lang(text) for text in texts}
        assert langs == {Lang.ZH, Lang.EN}, intent


@pytest.mark.parametrize(
    "text",
    [
        "天气怎么样",
        "what's the weather",
        "What's the weather like today?",
        "今天天气不错",
        "tell me a joke",
        "this is it",  # 'hi' only counts as a whole word
        "",
    ],
)
def test_rule_intent_is_none_for_unrelated_text(text: str) -> None:
    assert rule_intent(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A specific intent wins over a generic one in the same message.
        ("Hi, where is my order?", Intent.ORDER_STATUS),
        ("你好，我要退货", Intent.RETURN_REFUND),
        ("I want to cancel and get a refund", Intent.CANCEL_ORDER),
        ("取消订单", Intent.CANCEL_ORDER),
        ("I want to complain, get me a human", Intent.HUMAN_AGENT),
    ],
)
def test_rule_intent_order_of_precedence(text: str, expected: Intent) -> None:
    assert rule_intent(text) is expected


def test_rule_intent_is_case_insensitive() -> None:
    assert rule_intent("WHERE IS MY ORDER") is Intent.ORDER_STATUS
    assert rule_intent("REFUND") is Intent.RETURN_REFUND


def test_rule_confidence_is_enough_to_act_but_not_certain() -> None:
    assert 0.5 <= RULE_CONFIDENCE < 1.0
